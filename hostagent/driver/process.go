package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/drplane/drplane/internal/osuser"
)

// Restart policies of the process driver, as in a service's restart
// setting.
const (
	restartNo        = "no"
	restartOnFailure = "on-failure"
	restartAlways    = "always"
)

// Defaults for the zero values of ProcessConfig.
const (
	processDefaultStopTimeout  = 10 * time.Second
	processDefaultRestartDelay = time.Second
)

// ProcessConfig describes a service the process driver runs directly.
type ProcessConfig struct {
	// Name is the service's name.
	Name string
	// Command is the argv; it is executed directly, never through a shell.
	Command []string
	// Env is added to the agent's environment, overriding what is there
	// (a drill starts a copy in safe mode this way).
	Env map[string]string
	// Dir is the working directory; the agent's when empty.
	Dir string
	// StopTimeout is how long Stop waits after SIGTERM before it sends
	// SIGKILL; 10s when zero.
	StopTimeout time.Duration
	// Restart is "no" (the default), "on-failure" or "always".
	Restart string
	// RestartDelay is the pause before a restart; 1s when zero.
	RestartDelay time.Duration
	// LogFile receives stdout and stderr, appended; discarded when empty.
	LogFile string
	// StateDir holds the pid file (the agent's data_dir/services/<name>).
	StateDir string
	// RunAs is a user name to run as; the agent's user when empty.
	RunAs string
}

// Process is the process driver: it runs one service as a child of the
// agent in its own process group and records it in a pid file, so that a
// restarted agent adopts the service instead of starting it twice.
//
// The service must stay in the foreground: a command that daemonizes
// (forks and exits) looks to the driver like a service that exited.
type Process struct {
	cfg    ProcessConfig
	logger hclog.Logger
	cred   *syscall.Credential // nil without RunAs
	env    []string

	// op serialises Start and Stop, so that a Start racing a Stop either
	// finds the service running before it or starts it again after it.
	op chan struct{}

	mu       sync.Mutex
	current  *instance // the running process; nil when none runs
	stopped  bool      // Stop was called since the last Start: no restarts
	restarts int       // restarts by the policy since the last Start
	lastExit string    // how the last process ended, for Status
	// restartTimer is a pending restart; restartGen tells a timer that
	// fired after it was cancelled that it is stale.
	restartTimer *time.Timer
	restartGen   uint64

	// drillMu guards drills, the drill copies started or adopted by this
	// agent, by directory. It is not mu: stopping a copy never holds up
	// the service.
	drillMu sync.Mutex
	drills  map[string]*Process
}

var _ Driver = (*Process)(nil)

// NewProcess validates cfg, fills its defaults and adopts the service
// when the pid file in cfg.StateDir names a process that still runs. It
// starts nothing itself.
func NewProcess(cfg ProcessConfig, logger hclog.Logger) (*Process, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("process driver for %s: %w", cfg.Name, err)
	}
	cfg.setDefaults()
	p := &Process{
		cfg:      cfg,
		logger:   logger.Named("process"),
		op:       make(chan struct{}, 1),
		lastExit: "never started",
	}
	var runAsEnv []string
	if cfg.RunAs != "" {
		u, err := osuser.Lookup(cfg.RunAs)
		if err != nil {
			return nil, fmt.Errorf("process driver for %s: %w", cfg.Name, err)
		}
		// The service sees its own user's login variables, not the agent's.
		p.cred, runAsEnv = u.Credential(), u.LoginEnv()
	}
	p.env = processEnv(runAsEnv, cfg.Env)
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("process driver for %s: create state dir: %w", cfg.Name, err)
	}
	p.adopt()
	return p, nil
}

func (c *ProcessConfig) validate() error {
	switch {
	case c.Name == "":
		return errors.New("service name is empty")
	case len(c.Command) == 0 || c.Command[0] == "":
		return errors.New("command is empty")
	case c.StateDir == "":
		return errors.New("state dir is empty")
	case c.StopTimeout < 0 || c.RestartDelay < 0:
		return errors.New("negative stop timeout or restart delay")
	}
	switch c.Restart {
	case "", restartNo, restartOnFailure, restartAlways:
		return nil
	}
	return fmt.Errorf("restart %q is not one of no, on-failure, always", c.Restart)
}

func (c *ProcessConfig) setDefaults() {
	if c.StopTimeout == 0 {
		c.StopTimeout = processDefaultStopTimeout
	}
	if c.RestartDelay == 0 {
		c.RestartDelay = processDefaultRestartDelay
	}
	if c.Restart == "" {
		c.Restart = restartNo
	}
}

// processEnv is the agent's environment, then RunAs's HOME, USER and
// LOGNAME, then the service's own variables in a stable order. exec.Cmd
// keeps the last value of a duplicated key, so later entries override.
func processEnv(runAs []string, extra map[string]string) []string {
	env := append(os.Environ(), runAs...)
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env
}

// Status reports primary while the process runs, stopped otherwise. It
// never fails.
func (p *Process) Status(context.Context) (Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if in := p.runningLocked(); in != nil {
		return Status{Role: RolePrimary, Message: p.runningMessageLocked(in)}, nil
	}
	return Status{Role: RoleStopped, Message: p.stoppedMessageLocked()}, nil
}

func (p *Process) runningMessageLocked(in *instance) string {
	msg := fmt.Sprintf("pid %d", in.pid)
	if in.adopted {
		msg += " (adopted)"
	}
	if !in.startedAt.IsZero() {
		msg += fmt.Sprintf(", up %s", time.Since(in.startedAt).Round(time.Second))
	}
	return fmt.Sprintf("%s, restarts: %d", msg, p.restarts)
}

func (p *Process) stoppedMessageLocked() string {
	msg := p.lastExit
	if p.restartTimer != nil {
		msg += fmt.Sprintf(", restarting in %s", p.cfg.RestartDelay)
	}
	return fmt.Sprintf("%s, restarts: %d", msg, p.restarts)
}

// Start runs the command unless the service already runs (started or
// adopted), in which case it does nothing. A restart the policy has
// scheduled is replaced by this start.
func (p *Process) Start(ctx context.Context, progress Progress) error {
	if err := p.acquire(ctx); err != nil {
		return fmt.Errorf("start %s: %w", p.cfg.Name, err)
	}
	defer p.release()
	p.mu.Lock()
	defer p.mu.Unlock()
	if in := p.runningLocked(); in != nil {
		progress("%s already runs as pid %d", p.cfg.Name, in.pid)
		return nil
	}
	p.cancelRestartLocked()
	p.stopped = false
	p.restarts = 0
	in, err := p.spawnLocked()
	if err != nil {
		return fmt.Errorf("start %s: %w", p.cfg.Name, err)
	}
	progress("started %s as pid %d", p.cfg.Name, in.pid)
	return nil
}

// Stop sends SIGTERM to the service's process group, SIGKILL after
// StopTimeout, and returns once the process is gone or ctx ends. It
// cancels any pending restart; on a stopped service it does nothing.
func (p *Process) Stop(ctx context.Context, progress Progress) error {
	if err := p.acquire(ctx); err != nil {
		return fmt.Errorf("stop %s: %w", p.cfg.Name, err)
	}
	defer p.release()
	p.mu.Lock()
	p.stopped = true
	p.cancelRestartLocked()
	in := p.runningLocked()
	p.mu.Unlock()
	if in == nil {
		return nil
	}
	progress("stopping %s (pid %d)", p.cfg.Name, in.pid)
	if err := p.terminate(ctx, in, progress); err != nil {
		return fmt.Errorf("stop %s (pid %d): %w", p.cfg.Name, in.pid, err)
	}
	progress("stopped %s", p.cfg.Name)
	return nil
}

// terminate signals in's group and waits for in to be gone.
func (p *Process) terminate(ctx context.Context, in *instance, progress Progress) error {
	if err := in.signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("send SIGTERM: %w", err)
	}
	timer := time.NewTimer(p.cfg.StopTimeout)
	defer timer.Stop()
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	}
	p.logger.Warn("service ignored SIGTERM, killing it", "service", p.cfg.Name, "pid", in.pid, "stop_timeout", p.cfg.StopTimeout)
	progress("%s still runs after %s, sending SIGKILL", p.cfg.Name, p.cfg.StopTimeout)
	if err := in.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("send SIGKILL: %w", err)
	}
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Process) acquire(ctx context.Context) error {
	select {
	case p.op <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Process) release() { <-p.op }

// runningLocked returns the running process, or nil. An adopted process
// is checked in /proc right now rather than at its watcher's next poll,
// so that Status never reports a dead process as primary.
func (p *Process) runningLocked() *instance {
	in := p.current
	if in != nil && in.adopted && !in.alive() {
		p.exitedLocked(in, adoptedExit)
		return nil
	}
	return in
}

// spawnLocked starts the command, records it in the pid file and starts
// its watcher.
func (p *Process) spawnLocked() (*instance, error) {
	cmd := exec.Command(p.cfg.Command[0], p.cfg.Command[1:]...)
	cmd.Dir = p.cfg.Dir
	cmd.Env = p.env
	// Setpgid gives the service its own process group: Stop signals all of
	// it, and signals meant for the agent's group never reach it. There is
	// deliberately no Pdeathsig: services outlive an agent restart.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred}
	if p.cfg.LogFile != "" {
		f, err := os.OpenFile(p.cfg.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open log file: %w", err)
		}
		defer f.Close() // the child holds its own descriptor
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", p.cfg.Command[0], err)
	}
	in := &instance{pid: cmd.Process.Pid, startedAt: time.Now(), cmd: cmd, done: make(chan struct{})}
	st, err := readProcStat(in.pid)
	if err == nil {
		in.startTicks = st.startTicks
		err = writePidFile(p.pidPath(), in.pid, in.startTicks)
	}
	if err != nil {
		// A process missing from the pid file would be started a second
		// time after an agent restart: kill it rather than leave it
		// unrecorded. Its watcher reaps it; it is not current, so nothing
		// else happens.
		_ = in.signal(syscall.SIGKILL)
		go p.waitChild(in)
		return nil, fmt.Errorf("record pid %d: %w", in.pid, err)
	}
	p.current = in
	p.logger.Info("started service", "service", p.cfg.Name, "pid", in.pid)
	go p.waitChild(in)
	return in, nil
}

// exitedLocked records that in ended and applies the restart policy. It
// runs once per instance: later calls find in is no longer current.
func (p *Process) exitedLocked(in *instance, ex exitInfo) {
	removePidFile(p.pidPath(), in.pid, in.startTicks)
	if p.current != in {
		return
	}
	p.current = nil
	if p.stopped {
		p.lastExit = "stopped (" + ex.desc + ")"
		p.logger.Info("service stopped", "service", p.cfg.Name, "pid", in.pid, "exit", ex.desc)
		return
	}
	p.lastExit = ex.desc
	if !shouldRestart(p.cfg.Restart, ex) {
		p.logger.Warn("service exited", "service", p.cfg.Name, "pid", in.pid, "exit", ex.desc)
		return
	}
	p.logger.Warn("service exited, restarting", "service", p.cfg.Name, "pid", in.pid, "exit", ex.desc,
		"restart_delay", p.cfg.RestartDelay, "restarts", p.restarts)
	p.scheduleRestartLocked()
}

// shouldRestart applies a restart policy to an exit. The exit status of
// an adopted process is unknown, so only "always" restarts it.
func shouldRestart(policy string, ex exitInfo) bool {
	switch policy {
	case restartAlways:
		return true
	case restartOnFailure:
		return ex.failed
	}
	return false
}

func (p *Process) scheduleRestartLocked() {
	p.restartGen++
	gen := p.restartGen
	p.restartTimer = time.AfterFunc(p.cfg.RestartDelay, func() { p.restart(gen) })
}

func (p *Process) cancelRestartLocked() {
	if p.restartTimer != nil {
		p.restartTimer.Stop()
		p.restartTimer = nil
	}
	p.restartGen++
}

// restart is the restart timer's callback. A failure to start counts as
// a failed run, so it is retried after the delay again.
func (p *Process) restart(gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.restartGen || p.stopped || p.current != nil {
		return
	}
	p.restartTimer = nil
	p.restarts++
	if _, err := p.spawnLocked(); err != nil {
		p.lastExit = "restart failed: " + err.Error()
		p.logger.Error("failed to restart service", "service", p.cfg.Name, "restarts", p.restarts, "error", err)
		p.scheduleRestartLocked()
	}
}

// waitChild waits for a child the driver started, reaps it and records
// its exit.
func (p *Process) waitChild(in *instance) {
	ex := in.waitAndReap()
	p.mu.Lock()
	p.exitedLocked(in, ex)
	p.mu.Unlock()
	// done closes only after the exit is recorded, so that a Status after
	// Stop returns reports stopped.
	close(in.done)
}

// watchAdopted polls /proc until an adopted process is gone: it is not
// the agent's child, so there is nothing to wait on.
func (p *Process) watchAdopted(in *instance) {
	t := time.NewTicker(adoptedPollInterval)
	defer t.Stop()
	for range t.C {
		if !in.alive() {
			break
		}
	}
	p.mu.Lock()
	p.exitedLocked(in, adoptedExit)
	p.mu.Unlock()
	close(in.done)
}
