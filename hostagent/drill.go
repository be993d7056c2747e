package hostagent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/hostagent/health"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/names"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// drillIDRE is what a drill id may be: it names a directory, so no dots
// or slashes.
var drillIDRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// drillDirName is the directory under data_dir that holds drill copies:
// drill/<id>/<service>.
const drillDirName = "drill"

// drillActions are the actions a drill copy takes.
var drillActions = []pb.StepAction{pb.StepAction_STEP_ACTION_START, pb.StepAction_STEP_ACTION_CHECK, pb.StepAction_STEP_ACTION_STOP}

// drillStep returns the step for a start, check or stop with
// Args["drill"]: it acts on the service's isolated drill copy only. The
// service itself, the lease, its fence and the epoch are left alone: a
// drill copy holds no production role.
func (a *Agent) drillStep(req *pb.ExecuteRequest, svc *service, id string) (stepFunc, error) {
	action, kind := actionName(req), req.GetAction()
	if !drillIDRE.MatchString(id) {
		return nil, invalidStep("%s: drill %q is not a drill id (1 to 64 letters, digits and -)", action, id)
	}
	if !slices.Contains(drillActions, kind) {
		return nil, invalidStep("%s: a drill only starts, checks and stops copies of services; it never runs %s", action, action)
	}
	if _, ok := req.GetArgs()["after_position"]; ok {
		return nil, invalidStep("%s: after_position does not apply to a drill copy", action)
	}
	driller, ok := svc.driver.(driver.Driller)
	if !ok {
		return nil, invalidStep("%s: service %q (driver %s) cannot run a drill copy", action, svc.cfg.Name, svc.cfg.Driver)
	}
	dir, err := namedDir(filepath.Join(a.config.DataDir, drillDirName, id), svc.cfg.Name)
	if err != nil {
		return nil, invalidStep("%s: service %v: it cannot name a drill directory", action, err)
	}
	d := driver.Drill{ID: id, Dir: dir}
	if dc := svc.cfg.Drill; dc != nil {
		d.Port, d.Command, d.Env = dc.Port, dc.Command, dc.Env
	}
	switch kind {
	case pb.StepAction_STEP_ACTION_START:
		// Without a drill block the copy would run exactly as production
		// does: same port, same mode.
		if svc.cfg.Drill == nil {
			return nil, invalidStep("start: service %q declares no drill block; add drill { ... } to its config to say how its copy differs", svc.cfg.Name)
		}
		return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
			return a.startDrill(ctx, svc, driller, d, p)
		}, nil
	case pb.StepAction_STEP_ACTION_CHECK:
		return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
			return nil, a.checkDrill(ctx, svc, driller, d, p)
		}, nil
	}
	// A stop needs no drill block: the copy is found on disk, so
	// `drplane drill --cleanup` works after a restart or a config change.
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		return nil, a.stopDrill(ctx, driller, d, p)
	}, nil
}

// startDrill starts svc's drill copy and, when the drill block declares
// a health check, waits until the copy passes it.
func (a *Agent) startDrill(ctx context.Context, svc *service, driller driver.Driller, d driver.Drill, p driver.Progress) (map[string]string, error) {
	// Copies of one service share its drill port and settings: a second
	// drill's copy would clone everything only to fail to bind.
	for _, other := range a.drillIDs(svc.cfg.Name) {
		if other != d.ID {
			return nil, fmt.Errorf("drill %s still has a copy of %s; stop it first (drplane drill --cleanup %s)", other, svc.cfg.Name, other)
		}
	}
	if err := a.prepareDrillDir(svc, d.ID); err != nil {
		return nil, err
	}
	if err := driller.StartDrill(ctx, d, p); err != nil {
		return nil, err
	}
	if h := svc.cfg.Drill.Health; h != nil {
		check := newHealthCheck(h)
		p("waiting for the drill copy of %s to pass %s", svc.cfg.Name, check)
		if err := waitHealthy(ctx, check, h.Interval); err != nil {
			return nil, fmt.Errorf("drill copy of %s: %w", svc.cfg.Name, err)
		}
		p("drill copy of %s is healthy", svc.cfg.Name)
	}
	return map[string]string{"dir": d.Dir}, nil
}

// checkDrill checks the drill copy once: the driver's own check, then
// the drill block's health check when it declares one. The service's
// own health check would test production, not the copy.
func (a *Agent) checkDrill(ctx context.Context, svc *service, driller driver.Driller, d driver.Drill, p driver.Progress) error {
	if err := driller.CheckDrill(ctx, d, p); err != nil {
		return err
	}
	if svc.cfg.Drill == nil || svc.cfg.Drill.Health == nil {
		p("no drill health check declared for %s", svc.cfg.Name)
		return nil
	}
	check := newHealthCheck(svc.cfg.Drill.Health)
	if err := check.Check(ctx); err != nil {
		return fmt.Errorf("drill health check of %s (%s) failed: %w", svc.cfg.Name, check, err)
	}
	p("drill copy of %s passes %s", svc.cfg.Name, check)
	return nil
}

// stopDrill stops the drill copy and removes its directory, and the
// drill's directory once no other service's copy is left in it.
func (a *Agent) stopDrill(ctx context.Context, driller driver.Driller, d driver.Drill, p driver.Progress) error {
	if _, err := driller.StopDrill(ctx, d, p); err != nil {
		return err
	}
	err := os.Remove(filepath.Dir(d.Dir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		a.logger.Warn("failed to remove drill directory", "path", filepath.Dir(d.Dir), "error", err)
	}
	return nil
}

// prepareDrillDir creates data_dir/drill/<id>. A postgres copy runs as
// run_as, which must pass through data_dir to reach it: data_dir gains
// o+x (traverse, not list; what is in it stays private by its own
// modes) and the drill directories are 0711.
func (a *Agent) prepareDrillDir(svc *service, id string) error {
	perm := os.FileMode(0o700)
	if svc.cfg.Driver == config.DriverPostgres {
		perm = 0o711
		if err := addDirMode(a.config.DataDir, 0o001); err != nil {
			return fmt.Errorf("prepare drill directory: make data_dir traversable for %s: %w", svc.cfg.RunAs, err)
		}
	}
	// An existing directory may have been made for a process copy.
	for _, dir := range []string{filepath.Join(a.config.DataDir, drillDirName), filepath.Join(a.config.DataDir, drillDirName, id)} {
		if err := addDirMode(dir, perm); err != nil {
			return fmt.Errorf("prepare drill directory: %w", err)
		}
	}
	return nil
}

// drillIDs lists the drills that have a copy of the named service on
// disk, for the probe's message.
func (a *Agent) drillIDs(name string) []string {
	if !names.Valid(name) {
		return nil
	}
	root := filepath.Join(a.config.DataDir, drillDirName)
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var ids []string
	for _, e := range entries {
		if _, err := os.Lstat(filepath.Join(root, e.Name(), name)); err == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// waitHealthy runs check every interval until it passes or ctx ends.
func waitHealthy(ctx context.Context, check health.Check, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := check.Check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not pass: %w", check, errors.Join(ctx.Err(), err))
		case <-t.C:
		}
	}
}
