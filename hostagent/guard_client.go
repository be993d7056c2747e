package hostagent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/hashicorp/go-hclog"
)

// guardRestartDelay spaces restarts of a guard that keeps dying.
const guardRestartDelay = time.Second

// guardClient is the agent's side of its lease guard (see guard.go): it
// starts the guard, sends it the lease and the fence targets when they
// change, and restarts it when it dies. Only the fencer goroutine calls
// it; the writes happen on a goroutine of their own, so a guard that does
// not read never blocks the fencer.
type guardClient struct {
	argv   []string
	dir    string
	logger hclog.Logger

	proc      *guardProc // nil until started, or after it died
	lastStart time.Time
	previous  guardPid // the guard to stand down once proc has the state
	// standingDown is set once previous was told to stand down.
	standingDown bool
	sent         guardUpdate
	sentAt       time.Time // the lease deadline sent, to resend on change
}

// guardProc is one running guard.
type guardProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mail   chan guardUpdate // the latest update not yet written
	ready  chan struct{}    // closed once the guard took its first update
	exited chan struct{}
	done   chan struct{} // closes the writer
}

func newGuardClient(argv []string, dir string, logger hclog.Logger) *guardClient {
	c := &guardClient{argv: argv, dir: dir, logger: logger}
	c.previous, _ = readGuardPid(dir)
	return c
}

// update makes sure a guard runs and knows the lease deadline and the
// targets; it sends only what changed.
func (c *guardClient) update(now, deadline time.Time, epoch uint64, targets []guardTarget) {
	if c.proc != nil {
		select {
		case <-c.proc.exited:
			c.logger.Error("lease guard exited, restarting it", "pid", c.proc.cmd.Process.Pid, "state", c.proc.cmd.ProcessState.String())
			close(c.proc.done)
			c.proc = nil
		default:
		}
	}
	// A guard a previous agent left stands down once this agent's took
	// the state.
	defer c.standDownPrevious()
	fresh := false
	if c.proc == nil {
		// A guard runs only once there is something to guard, or a
		// previous agent's guard to take over from: most hosts (a DR
		// site's) never need one, and a booting agent is not slowed.
		if len(targets) == 0 && !c.previous.alive() {
			c.previous = guardPid{}
			return
		}
		if now.Sub(c.lastStart) < guardRestartDelay {
			return
		}
		c.lastStart = now
		if err := c.start(); err != nil {
			c.logger.Error("failed to start lease guard", "error", err)
			return
		}
		fresh = true
	}
	if !fresh && deadline.Equal(c.sentAt) && epoch == c.sent.Epoch && slices.Equal(targets, c.sent.Targets) {
		return
	}
	u := guardUpdate{RemainingMS: deadline.Sub(now).Milliseconds(), Epoch: epoch, Targets: targets}
	if u.RemainingMS < 0 {
		u.RemainingMS = 0
	}
	c.sent, c.sentAt = u, deadline
	c.proc.post(u)
}

// start starts a guard in its own process group, so that signals meant
// for the agent's group (a terminal's ^Z or ^C) do not reach it, and
// records it in lease-guard.pid. The guard that file named before is
// remembered, to stand down once the new one has the state.
func (c *guardClient) start() error {
	c.previous, _ = readGuardPid(c.dir)
	cmd := exec.Command(c.argv[0], append(slices.Clone(c.argv[1:]), "--dir", c.dir)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// An *os.File is inherited as is: the guard logs to the agent's
	// stderr without the agent copying, which a frozen agent could not.
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("start lease guard: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("start lease guard: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start lease guard: %w", err)
	}
	p := &guardProc{cmd: cmd, stdin: stdin, mail: make(chan guardUpdate, 1), ready: make(chan struct{}),
		exited: make(chan struct{}), done: make(chan struct{})}
	go func() {
		// The guard says "ready" once, then nothing: read it, then
		// wait for the exit (Wait closes stdout).
		if line, _ := bufio.NewReader(stdout).ReadString('\n'); line == "ready\n" {
			close(p.ready)
		}
		_ = cmd.Wait()
		close(p.exited)
	}()
	go p.write(c.logger)
	c.proc = p
	ticks, _ := driver.ProcStartTicks(cmd.Process.Pid)
	if err := writeFileSync(filepath.Join(c.dir, guardPidFile), guardPid{Pid: cmd.Process.Pid, StartTicks: ticks}); err != nil {
		c.logger.Error("failed to record lease guard pid", "error", err)
	}
	c.logger.Info("started lease guard", "pid", cmd.Process.Pid)
	return nil
}

// standDownPrevious tells the guard lease-guard.pid named before this
// agent's started (a previous agent's, still enforcing that agent's last
// lease) to exit without fencing. It signals again on every call until
// that guard is gone: a guard still starting up ignores the signal.
func (c *guardClient) standDownPrevious() {
	prev := c.previous
	if prev.Pid <= 0 || c.proc == nil {
		return
	}
	select {
	case <-c.proc.ready:
	default:
		return // the new guard has no state yet: the old one enforces
	}
	if !prev.alive() {
		c.previous = guardPid{}
		return
	}
	if err := syscall.Kill(prev.Pid, syscall.SIGUSR1); err == nil && !c.standingDown {
		c.standingDown = true
		c.logger.Info("previous lease guard standing down", "pid", prev.Pid)
	}
}

// close ends the guard's input after a last update: the guard keeps
// enforcing the last lease and exits once it lapsed (see guard.go).
func (c *guardClient) close(now, deadline time.Time, epoch uint64, targets []guardTarget) {
	c.update(now, deadline, epoch, targets)
	if c.proc != nil {
		close(c.proc.done)
		c.proc = nil
	}
}

// post replaces any update not yet written with u.
func (p *guardProc) post(u guardUpdate) {
	select {
	case <-p.mail:
	default:
	}
	p.mail <- u
}

// write writes posted updates to the guard until done, then the last one
// still posted, and closes its input.
func (p *guardProc) write(logger hclog.Logger) {
	defer p.stdin.Close()
	for {
		var u guardUpdate
		select {
		case <-p.done:
			select {
			case u = <-p.mail:
				_ = p.send(u)
			default:
			}
			return
		case u = <-p.mail:
		}
		if err := p.send(u); err != nil {
			logger.Warn("failed to update lease guard", "error", err)
			return
		}
	}
}

func (p *guardProc) send(u guardUpdate) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	_, err = p.stdin.Write(append(b, '\n'))
	return err
}

// guardPid is lease-guard.pid: the running guard.
type guardPid struct {
	Pid        int    `json:"pid"`
	StartTicks uint64 `json:"start_ticks"`
}

// alive reports whether the guard still runs.
func (gp guardPid) alive() bool {
	if gp.Pid <= 0 {
		return false
	}
	ticks, alive := driver.ProcStartTicks(gp.Pid)
	return alive && ticks == gp.StartTicks
}

// readGuardPid returns the guard lease-guard.pid names; zero when none.
func readGuardPid(dir string) (guardPid, error) {
	var gp guardPid
	b, err := os.ReadFile(filepath.Join(dir, guardPidFile))
	if err != nil {
		return gp, err
	}
	return gp, json.Unmarshal(b, &gp)
}

// guardFences returns the records guards wrote and removes them: each is
// applied once.
func guardFences(dir string, logger hclog.Logger) []guardRecord {
	paths, _ := filepath.Glob(filepath.Join(dir, guardRecordPrefix+"*.json"))
	var recs []guardRecord
	for _, path := range paths {
		if strings.HasSuffix(path, ".tmp") {
			continue
		}
		b, err := os.ReadFile(path)
		if err == nil {
			err = os.Remove(path)
		}
		var rec guardRecord
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			logger.Error("failed to read lease guard record", "path", path, "error", err)
			continue
		}
		recs = append(recs, rec)
	}
	return recs
}

// guardTargets returns the processes of the services that run in the
// primary role, for the guard to fence should the lease lapse.
func (a *Agent) guardTargets() []guardTarget {
	var out []guardTarget
	for _, name := range a.order {
		svc := a.services[name]
		ft, ok := svc.driver.(driver.FenceTargeter)
		if !ok {
			continue
		}
		for _, t := range ft.FenceTargets() {
			if t.Primary || svc.lastObservedRole() == driver.RolePrimary {
				out = append(out, guardTarget{Service: name, FenceTarget: t})
			}
		}
	}
	return out
}

// applyGuardFences marks the services a guard fenced as fenced and stops
// them through their drivers (a process service's restart policy must not
// bring it back), so that they report fenced and nothing on this host
// restarts them as primary.
func (a *Agent) applyGuardFences(ctx context.Context) {
	for _, rec := range guardFences(a.config.DataDir, a.logger) {
		for _, f := range rec.Services {
			svc, ok := a.services[f.Service]
			if !ok {
				continue
			}
			// The same lease-lapse cause as the agent's own fence, so the
			// leader restarts it in place if this epoch's site is still
			// active (structs.RestartableInPlace).
			lapsed := leaseLapsedFence(rec.Epoch, fmt.Sprintf("fenced by the lease guard at %s while the agent could not act: pid %d, %s",
				rec.FencedAt.Format(time.RFC3339Nano), f.Pid, f.Signal))
			a.logger.Warn("lease guard fenced service", "service", f.Service, "pid", f.Pid, "signal", f.Signal, "fenced_at", rec.FencedAt, "error", f.Error)
			if err := a.fenceService(ctx, svc, lapsed, nil); err != nil {
				a.logger.Error("failed to stop service the lease guard fenced", "service", f.Service, "error", err)
			}
		}
	}
}
