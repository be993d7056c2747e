package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/structs"
)

// stonithOutputLimit bounds how much of a STONITH hook's output is kept
// for the log.
const stonithOutputLimit = 4096

// runStonith runs the STONITH hook of site and returns its confirmation
// only when it exited 0 within its timeout: the hook's word that the site
// is fenced (powered off, cut off) is what makes failing over on quorum
// loss safe. The command comes from this server's own configuration only.
func (s *Server) runStonith(ctx context.Context, site string) (*structs.SiteFence, error) {
	hook, ok := s.config.Failover.StonithFor(site)
	if !ok {
		return nil, fmt.Errorf("no stonith hook for site %s", site)
	}
	if len(hook.Command) == 0 {
		return nil, fmt.Errorf("stonith hook for site %s has no command", site)
	}
	timeout := hook.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, hook.Command[0], hook.Command[1:]...)
	cmd.Env = append(os.Environ(), "DRPLANE_STONITH_SITE="+site, "DRPLANE_NODE_ID="+s.config.NodeID)
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	start := time.Now()
	s.logger.Warn("running stonith hook", "site", site, "command", hook.Command[0])
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	output := strings.TrimSpace(out.String())
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %s", timeout)
		}
		s.logger.Error("stonith hook failed", "site", site, "took", took, "error", err, "output", output)
		return nil, fmt.Errorf("stonith hook for site %s failed: %w", site, err)
	}
	s.logger.Warn("stonith hook confirmed the fence", "site", site, "took", took, "output", output)
	return &structs.SiteFence{Site: site, At: time.Now().UTC(), Output: output}, nil
}

// limitedBuffer keeps the first stonithOutputLimit bytes written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := stonithOutputLimit - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
