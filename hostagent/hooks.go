package hostagent

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// hookStep runs a hook declared in this agent's config. The command comes
// from the config file only; the request names the hook and nothing else.
func (a *Agent) hookStep(req *pb.ExecuteRequest) (stepFunc, error) {
	i := slices.IndexFunc(a.config.Hooks, func(h config.HookConfig) bool { return h.Name == req.GetTarget() })
	if i < 0 {
		names := make([]string, len(a.config.Hooks))
		for j, h := range a.config.Hooks {
			names[j] = h.Name
		}
		return nil, invalidStep("hook %q is not declared in this agent's config (hooks: %v)", req.GetTarget(), names)
	}
	hook := a.config.Hooks[i]
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		ctx, cancel := context.WithTimeout(ctx, hook.Timeout)
		defer cancel()
		p("running hook %s", hook.Name)
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, hook.Command[0], hook.Command[1:]...)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		tail := lastLines(out.String(), 20)
		if err != nil {
			return map[string]string{"output": tail}, fmt.Errorf("hook %s: %w: %s", hook.Name, err, tail)
		}
		return map[string]string{"output": tail}, nil
	}, nil
}

// lastLines keeps the end of a command's output for results and errors.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
