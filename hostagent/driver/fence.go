package driver

import (
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FenceTarget is one process that must be signalled to fence a service
// without the driver's help: the agent's lease guard, a separate process,
// signals it when the lease lapses while the agent itself cannot act
// (frozen, crashed). It is identified by pid and start time, so that a
// recycled pid is never signalled.
type FenceTarget struct {
	// Pid is the process to signal.
	Pid int `json:"pid"`
	// StartTicks is the process's start time from /proc/<pid>/stat.
	StartTicks uint64 `json:"start_ticks"`
	// Group signals Pid's whole process group (Pid leads it).
	Group bool `json:"group,omitempty"`
	// Signal fences at once: SIGKILL for a process service, SIGQUIT
	// (immediate shutdown) for a PostgreSQL postmaster.
	Signal syscall.Signal `json:"signal"`
	// Primary says the driver knows the process serves in the primary
	// role whenever it runs (a process service). When false the role
	// needs a query, and the agent goes by the role it last read.
	Primary bool `json:"primary,omitempty"`
}

// FenceTargeter is implemented by drivers whose service is one process
// tree a signal can fence. Drivers without it (systemd) are fenced by the
// agent alone.
type FenceTargeter interface {
	// FenceTargets returns the processes to signal to fence the service
	// as it runs now; none when it does not run. It must be cheap (the
	// agent calls it every fencer tick) and must not block.
	FenceTargets() []FenceTarget
}

// ProcStartTicks returns the start time of pid from /proc, and false
// when pid does not run (or is a zombie).
func ProcStartTicks(pid int) (uint64, bool) {
	st, err := readProcStat(pid)
	if err != nil || st.gone() {
		return 0, false
	}
	return st.startTicks, true
}

var _ FenceTargeter = (*Process)(nil)
var _ FenceTargeter = (*Postgres)(nil)

// FenceTargets returns the service's process group with SIGKILL: a
// process service that runs is a primary, and after a lapsed lease it
// must stop at once, not after a graceful stop timeout.
func (p *Process) FenceTargets() []FenceTarget {
	p.mu.Lock()
	in := p.current
	p.mu.Unlock()
	if in == nil {
		return nil
	}
	group := true
	if in.adopted {
		// An adopted process may not lead its own group (started by an
		// older agent); signal it alone then, as instance.signal does.
		st, err := readProcStat(in.pid)
		if err != nil || st.gone() || st.startTicks != in.startTicks {
			return nil
		}
		group = st.pgrp == in.pid
	}
	return []FenceTarget{{Pid: in.pid, StartTicks: in.startTicks, Group: group, Signal: syscall.SIGKILL, Primary: true}}
}

// pgStartSlack is how far the start time in postmaster.pid may be from
// the kernel's start time of that pid for it to be the postmaster.
const pgStartSlack = 5 * time.Second

// FenceTargets returns the postmaster with SIGQUIT: an immediate shutdown
// stops accepting writes at once and, unlike a fast one, does not wait for
// walsenders to drain to a standby that may be unreachable.
func (p *Postgres) FenceTargets() []FenceTarget {
	lines := p.postmasterLines()
	if len(lines) < 3 {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return nil
	}
	st, err := readProcStat(pid)
	if err != nil || st.gone() {
		return nil
	}
	// A stale postmaster.pid (after a crash) may name a pid the kernel
	// gave to another process: it is the postmaster only if it started
	// when the file says.
	started, err1 := strconv.ParseInt(strings.TrimSpace(lines[2]), 10, 64)
	at, err2 := processStartTime(st.startTicks)
	if err1 != nil || err2 != nil {
		return nil
	}
	if d := at.Sub(time.Unix(started, 0)); d > pgStartSlack || d < -pgStartSlack {
		return nil
	}
	return []FenceTarget{{Pid: pid, StartTicks: st.startTicks, Signal: syscall.SIGQUIT}}
}
