package hostagent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/clock"
	"github.com/hashicorp/go-hclog"
)

// The lease guard (`drplane agent lease-guard`) is a small process the
// agent starts beside itself, in its own process group, that fences the
// host's primary-role services when the lease lapses even though the agent
// cannot: frozen (SIGSTOP, a VM pause, stuck I/O) or crashed. The leader
// promotes another site lease_ttl + clock_skew_margin after the last
// renewal it could have delivered, trusting this host to have fenced
// itself (invariant 4); the agent's own fencer alone would leave a frozen
// agent's PostgreSQL accepting writes. Patroni's answer is a watchdog; the
// guard is ours.
//
// The agent writes its state to the guard's stdin as JSON lines: how long
// the lease still runs (a duration, so the guard's deadline is on its own
// monotonic clock, and no wall clock is involved) and the processes to
// signal, which come only from the agent's own drivers. The guard keeps
// enforcing the last state it got when the agent stops writing (frozen),
// and when its stdin ends (the agent exited or crashed): at the deadline
// it signals the targets still alive, records what it did in
// guard-fenced-*.json in the data dir, and, with no agent left, exits.
//
// A pipe rather than a unix socket: there is no address anyone else could
// write to, and end of file tells the guard its agent is gone. A restarted
// agent does not reconnect; it starts a new guard and, once that one says
// it took its first update, tells the old one (named in lease-guard.pid)
// to stand down with SIGUSR1: the two overlap instead of leaving a gap. After a clean agent stop the guard
// keeps enforcing the current lease too: nothing renews it any more, and
// the leader counts on it lapsing. Stopping the whole process group or
// cgroup (e.g. systemd's default KillMode) stops the guard with it.

const (
	// guardPidFile names the running guard: pid and start time.
	guardPidFile = "lease-guard.pid"
	// guardRecordPrefix starts the name of each record a guard writes
	// when it fences; the agent consumes them.
	guardRecordPrefix = "guard-fenced-"
)

// guardUpdate is one state the agent sends its guard.
type guardUpdate struct {
	// RemainingMS is how long the lease still runs; zero or less is a
	// lapsed lease.
	RemainingMS int64 `json:"remaining_ms"`
	// Epoch is the epoch of the lease: the guard's record says in which
	// epoch the lease lapsed.
	Epoch uint64 `json:"epoch,omitempty"`
	// Targets are the primary-role processes to signal at the deadline.
	Targets []guardTarget `json:"targets,omitempty"`
	// Stop ends the guard without fencing.
	Stop bool `json:"stop,omitempty"`
}

// guardTarget is a service's process to fence.
type guardTarget struct {
	Service string `json:"service"`
	driver.FenceTarget
}

// guardRecord is what a guard did when the lease lapsed.
type guardRecord struct {
	FencedAt time.Time      `json:"fenced_at"`
	Epoch    uint64         `json:"epoch"`
	Services []guardFencing `json:"services"`
}

// guardFencing is one process the guard signalled.
type guardFencing struct {
	Service string `json:"service"`
	Pid     int    `json:"pid"`
	Signal  string `json:"signal"`
	Error   string `json:"error,omitempty"`
}

// GuardConfig configures RunLeaseGuard.
type GuardConfig struct {
	// Dir is the agent's data dir, where records are written.
	Dir string
	// In carries the agent's updates; its end means the agent is gone.
	In io.Reader
	// Ready, when set, gets one line once the first update is taken: the
	// agent then lets a previous agent's guard stand down. Only one, so a
	// frozen agent that reads nothing never blocks the guard.
	Ready io.Writer
	// Logger logs what the guard does.
	Logger hclog.Logger
	// Clock measures the lease the guard enforces; nil means the real
	// clock (monotonic). Tests pass a virtual one.
	Clock clock.Clock
}

// RunLeaseGuard is the lease guard's main loop. It returns nil when told
// to stop, when ctx ends (a newer guard took over), or when its agent is
// gone and nothing is left to enforce.
func RunLeaseGuard(ctx context.Context, cfg GuardConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	g := &leaseGuard{dir: cfg.Dir, logger: cfg.Logger, clock: clock.OrReal(cfg.Clock)}
	updates, closed := readGuardUpdates(ctx, cfg.In, cfg.Logger)
	timer := g.clock.NewTimer(time.Hour)
	defer timer.Stop()
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			g.logger.Info("lease guard standing down")
			return nil
		case u := <-updates:
			if u.Stop {
				g.logger.Info("lease guard told to stop")
				return nil
			}
			g.set(u, timer)
			if cfg.Ready != nil {
				_, _ = io.WriteString(cfg.Ready, "ready\n")
				cfg.Ready = nil
			}
		case <-closed:
			closed = nil
			g.agentGone = true
			if len(g.targets) == 0 {
				g.logger.Info("agent gone, nothing to guard")
				return nil
			}
			g.logger.Warn("agent gone, guarding its last lease", "remaining", g.deadline.Sub(g.clock.Now()).Round(time.Millisecond), "targets", len(g.targets))
		case <-timer.C():
			g.fire()
			if g.agentGone {
				return nil
			}
		}
	}
}

// leaseGuard is the state of the guard's loop.
type leaseGuard struct {
	dir       string
	logger    hclog.Logger
	clock     clock.Clock
	deadline  time.Time // on clock (monotonic when real)
	epoch     uint64
	targets   []guardTarget
	agentGone bool
}

// set takes an update: the new deadline counts from its arrival, which is
// no earlier than the agent measured the remaining time.
func (g *leaseGuard) set(u guardUpdate, timer clock.Timer) {
	remaining := time.Duration(u.RemainingMS) * time.Millisecond
	g.deadline = g.clock.Now().Add(remaining)
	g.targets, g.epoch = u.Targets, u.Epoch
	timer.Stop()
	if len(g.targets) > 0 {
		timer.Reset(remaining)
	}
}

// fire fences every target that is still the process it was registered
// as, and records what it did.
func (g *leaseGuard) fire() {
	targets := g.targets
	g.targets = nil
	rec := guardRecord{FencedAt: time.Now().UTC(), Epoch: g.epoch}
	for _, t := range targets {
		if err := signalTarget(t.FenceTarget); errors.Is(err, errTargetGone) {
			continue
		} else if err != nil {
			g.logger.Error("failed to fence service", "service", t.Service, "pid", t.Pid, "error", err)
			rec.Services = append(rec.Services, guardFencing{Service: t.Service, Pid: t.Pid, Signal: t.Signal.String(), Error: err.Error()})
			continue
		}
		g.logger.Warn("lease lapsed: fenced service", "service", t.Service, "pid", t.Pid, "signal", t.Signal.String())
		rec.Services = append(rec.Services, guardFencing{Service: t.Service, Pid: t.Pid, Signal: t.Signal.String()})
	}
	if len(rec.Services) == 0 {
		return
	}
	path := filepath.Join(g.dir, fmt.Sprintf("%s%d.json", guardRecordPrefix, time.Now().UnixNano()))
	if err := writeFileSync(path, rec); err != nil {
		g.logger.Error("failed to record fencing", "path", path, "error", err)
	}
}

// errTargetGone is a target that no longer runs (or whose pid was reused).
var errTargetGone = errors.New("process gone")

// signalTarget signals t if its pid still runs with the recorded start
// time. A small race remains between the check and the kill; the start
// time makes a reuse in between very unlikely.
func signalTarget(t driver.FenceTarget) error {
	ticks, alive := driver.ProcStartTicks(t.Pid)
	if !alive || ticks != t.StartTicks {
		return errTargetGone
	}
	pid := t.Pid
	if t.Group {
		pid = -pid
	}
	err := syscall.Kill(pid, t.Signal)
	if errors.Is(err, syscall.ESRCH) {
		return errTargetGone
	}
	return err
}

// readGuardUpdates decodes updates from r until it ends, then closes the
// second channel. A line that does not decode is logged and skipped.
func readGuardUpdates(ctx context.Context, r io.Reader, logger hclog.Logger) (<-chan guardUpdate, <-chan struct{}) {
	updates, closed := make(chan guardUpdate), make(chan struct{})
	go func() {
		defer close(closed)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var u guardUpdate
			if err := json.Unmarshal(sc.Bytes(), &u); err != nil {
				logger.Error("ignoring malformed update", "error", err, "line", strings.TrimSpace(sc.Text()))
				continue
			}
			select {
			case updates <- u:
			case <-ctx.Done():
				return
			}
		}
	}()
	return updates, closed
}
