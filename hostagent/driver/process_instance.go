package driver

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// adoptedPollInterval is how often the driver looks in /proc for an
// adopted process, which it cannot wait on.
const adoptedPollInterval = 200 * time.Millisecond

// instance is one run of a service's command: a child the driver started
// or a process it adopted from a previous agent.
type instance struct {
	pid int
	// startTicks is the process's start time from /proc/<pid>/stat; with
	// pid it identifies the process even after the pid is recycled.
	startTicks uint64
	startedAt  time.Time // zero when unknown
	adopted    bool
	cmd        *exec.Cmd // nil when adopted

	// sigMu orders signals before the reaping of a child: until it is
	// reaped, a child's pid (and so its process group id) cannot be
	// reused, so a signal never reaches a stranger.
	sigMu  sync.Mutex
	reaped bool

	// done is closed once the process is gone and its exit recorded.
	done chan struct{}
}

// exitInfo is how a process ended.
type exitInfo struct {
	desc   string
	failed bool // for the on-failure policy
}

// adoptedExit is the exit of an adopted process: its parent, not the
// agent, collected the status.
var adoptedExit = exitInfo{desc: "exited (adopted, exit status unknown)"}

// signal sends sig to in's process group. It does nothing once the
// process is known to be gone.
func (in *instance) signal(sig syscall.Signal) error {
	in.sigMu.Lock()
	defer in.sigMu.Unlock()
	if in.reaped {
		return nil
	}
	target := -in.pid
	if in.adopted {
		// Not our child, so nothing pins its pid: check it is still the
		// process we adopted (a small race remains between this check
		// and the kill; the start time makes reuse in between unlikely).
		st, err := readProcStat(in.pid)
		if err != nil || st.gone() || st.startTicks != in.startTicks {
			return nil
		}
		if st.pgrp != in.pid {
			target = in.pid
		}
	}
	err := syscall.Kill(target, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// waitAndReap blocks until the child exits, kills what is left of its
// process group and reaps it.
func (in *instance) waitAndReap() exitInfo {
	// Wait without reaping first (WNOWAIT), so that the group kill below
	// runs while the exited leader still holds the process group id.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, in.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	in.sigMu.Lock()
	defer in.sigMu.Unlock()
	// The service is its whole process group: a worker that outlived the
	// leader could keep serving after a fence, or hold the port a restart
	// needs.
	_ = syscall.Kill(-in.pid, syscall.SIGKILL)
	err := in.cmd.Wait()
	in.reaped = true
	return describeExit(err)
}

// describeExit turns the error of exec.Cmd.Wait into an exitInfo.
func describeExit(err error) exitInfo {
	if err == nil {
		return exitInfo{desc: "exited with status 0"}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return exitInfo{desc: "wait failed: " + err.Error(), failed: true}
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitInfo{desc: fmt.Sprintf("killed by signal %d (%s)", ws.Signal(), ws.Signal()), failed: true}
	}
	return exitInfo{desc: fmt.Sprintf("exited with status %d", ee.ExitCode()), failed: true}
}

// alive reports whether an adopted process still runs. A zombie is gone:
// it only waits for its parent to collect it.
func (in *instance) alive() bool {
	st, err := readProcStat(in.pid)
	return err == nil && !st.gone() && st.startTicks == in.startTicks
}
