package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
)

var _ Driller = (*Process)(nil)

// processDrillLog is a drill copy's stdout and stderr, in its directory.
const processDrillLog = "process.log"

// StartDrill starts a second, separate instance of the service's command
// for a drill: the drill's command when it names one, the service's
// environment with the drill's merged over it, its own process group,
// and its own pid file and log in d.Dir. The service's own instance is
// not touched. The copy is never restarted (a drill measures what
// happens) and, like the service, outlives an agent restart: the pid file
// lets a restarted agent adopt it and stop it.
func (p *Process) StartDrill(ctx context.Context, d Drill, progress Progress) error {
	p.drillMu.Lock()
	defer p.drillMu.Unlock()
	c, err := p.drillCopyLocked(d)
	if err != nil {
		return fmt.Errorf("start drill %s of %s: %w", d.ID, p.cfg.Name, err)
	}
	return c.Start(ctx, progress)
}

// CheckDrill checks that the drill copy runs.
func (p *Process) CheckDrill(ctx context.Context, d Drill, progress Progress) error {
	p.drillMu.Lock()
	defer p.drillMu.Unlock()
	c, err := p.existingDrillCopyLocked(d)
	if err != nil {
		return fmt.Errorf("check drill %s of %s: %w", d.ID, p.cfg.Name, err)
	}
	if c == nil {
		return fmt.Errorf("check drill %s of %s: no drill copy in %s (start the drill first)", d.ID, p.cfg.Name, d.Dir)
	}
	st, err := c.Status(ctx)
	if err != nil {
		return fmt.Errorf("check drill %s of %s: %w", d.ID, p.cfg.Name, err)
	}
	if st.Role != RolePrimary {
		return fmt.Errorf("check drill %s of %s: the drill copy does not run: %s", d.ID, p.cfg.Name, st.Message)
	}
	progress("drill copy %s of %s runs: %s", d.ID, p.cfg.Name, st.Message)
	return nil
}

// StopDrill stops the drill copy (SIGTERM, then SIGKILL after the stop
// timeout) and removes d.Dir. A copy that does not exist is already
// cleaned up.
func (p *Process) StopDrill(ctx context.Context, d Drill, progress Progress) (bool, error) {
	p.drillMu.Lock()
	defer p.drillMu.Unlock()
	c, err := p.existingDrillCopyLocked(d)
	if err != nil {
		return true, fmt.Errorf("stop drill %s of %s: %w", d.ID, p.cfg.Name, err)
	}
	if c == nil {
		progress("drill copy %s of %s does not exist (already cleaned up)", d.ID, p.cfg.Name)
		return false, nil
	}
	if err := c.Stop(ctx, progress); err != nil {
		return true, fmt.Errorf("stop drill %s of %s: %w", d.ID, p.cfg.Name, err)
	}
	delete(p.drills, d.Dir)
	progress("removing drill copy %s", d.Dir)
	if err := os.RemoveAll(d.Dir); err != nil {
		return true, fmt.Errorf("stop drill %s of %s: remove its directory: %w", d.ID, p.cfg.Name, err)
	}
	return true, nil
}

// existingDrillCopyLocked returns the drill copy in d.Dir, adopting it
// from its pid file after an agent restart, or nil when there is none.
func (p *Process) existingDrillCopyLocked(d Drill) (*Process, error) {
	if c := p.drills[d.Dir]; c != nil {
		return c, nil
	}
	if _, err := os.Lstat(d.Dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return p.drillCopyLocked(d)
}

// drillCopyLocked returns the driver of the drill copy in d.Dir,
// creating it (which adopts a copy its pid file names) on first use. The
// caller holds drillMu.
func (p *Process) drillCopyLocked(d Drill) (*Process, error) {
	if c := p.drills[d.Dir]; c != nil {
		return c, nil
	}
	cmd := d.Command
	if len(cmd) == 0 {
		cmd = p.cfg.Command
	}
	env := maps.Clone(p.cfg.Env)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, d.Env)
	c, err := NewProcess(ProcessConfig{
		Name: p.cfg.Name + "-drill-" + d.ID, Command: cmd, Env: env, Dir: p.cfg.Dir,
		StopTimeout: p.cfg.StopTimeout, Restart: restartNo, RunAs: p.cfg.RunAs,
		LogFile: filepath.Join(d.Dir, processDrillLog), StateDir: d.Dir,
	}, p.logger.Named("drill-"+d.ID))
	if err != nil {
		return nil, err
	}
	if p.drills == nil {
		p.drills = map[string]*Process{}
	}
	p.drills[d.Dir] = c
	return c, nil
}
