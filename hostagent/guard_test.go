package hostagent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/clock"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// guardBound is how late after its deadline a guard may fence on a
// loaded machine before a test calls it broken.
const guardBound = 5 * time.Second

// sleeper is a real process standing in for a primary-role service.
type sleeper struct {
	pid    int
	target driver.FenceTarget
	exited chan struct{}
}

// startSleeper runs sleep in its own process group, as the process
// driver runs services, and kills it at cleanup.
func startSleeper(t *testing.T) *sleeper {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	s := &sleeper{pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-s.pid, syscall.SIGKILL)
		<-s.exited
	})
	ticks, alive := driver.ProcStartTicks(s.pid)
	require.True(t, alive)
	s.target = driver.FenceTarget{Pid: s.pid, StartTicks: ticks, Group: true, Signal: syscall.SIGKILL, Primary: true}
	return s
}

func (s *sleeper) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// waitExited waits until s is gone and returns when that was noticed.
func (s *sleeper) waitExited(t *testing.T, within time.Duration) time.Time {
	t.Helper()
	select {
	case <-s.exited:
		return time.Now()
	case <-time.After(within):
		t.Fatalf("pid %d still runs after %s", s.pid, within)
		return time.Time{}
	}
}

// runGuard runs RunLeaseGuard in-process on a pipe; the returned channel
// yields its result.
func runGuard(t *testing.T, ctx context.Context, dir string) (*json.Encoder, io.Closer, <-chan error) {
	t.Helper()
	return runGuardOn(t, ctx, dir, nil)
}

// runGuardOn is runGuard with the guard on clk (nil: the real clock).
func runGuardOn(t *testing.T, ctx context.Context, dir string, clk clock.Clock) (*json.Encoder, io.Closer, <-chan error) {
	t.Helper()
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- RunLeaseGuard(ctx, GuardConfig{Dir: dir, In: r, Clock: clk, Logger: hclog.New(&hclog.LoggerOptions{Name: "guard", Output: &testLogWriter{t: t}})})
		_ = r.Close()
	}()
	t.Cleanup(func() { _ = w.Close() })
	return json.NewEncoder(w), w, done
}

// readGuardRecords returns the records in dir without consuming them.
func readGuardRecords(t *testing.T, dir string) []guardRecord {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, guardRecordPrefix+"*.json"))
	require.NoError(t, err)
	var out []guardRecord
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		var rec guardRecord
		require.NoError(t, json.Unmarshal(b, &rec))
		out = append(out, rec)
	}
	return out
}

func TestLeaseGuard_FencesAtDeadline_OnlyTheRegisteredProcess(t *testing.T) {
	dir := t.TempDir()
	primary, reused := startSleeper(t), startSleeper(t)
	// reused stands for a pid the kernel gave to another process since
	// it was registered: its start time differs, so it must be spared.
	stale := reused.target
	stale.StartTicks++
	enc, _, _ := runGuard(t, context.Background(), dir)
	const ttl = 500 * time.Millisecond
	sent := time.Now()
	require.NoError(t, enc.Encode(guardUpdate{RemainingMS: ttl.Milliseconds(), Targets: []guardTarget{
		{Service: "engine", FenceTarget: primary.target}, {Service: "other", FenceTarget: stale},
	}}))
	took := primary.waitExited(t, ttl+guardBound).Sub(sent)
	t.Logf("fenced %s after an update granting %s", took.Round(time.Millisecond), ttl)
	require.GreaterOrEqual(t, took, ttl, "fenced before the deadline")
	require.True(t, reused.alive(), "a reused pid must not be signalled")
	testutil.WaitForResult(t, guardBound, func() (bool, error) {
		recs := readGuardRecords(t, dir)
		return len(recs) == 1, fmt.Errorf("%d records", len(recs))
	})
	rec := readGuardRecords(t, dir)[0]
	require.Equal(t, []guardFencing{{Service: "engine", Pid: primary.pid, Signal: syscall.SIGKILL.String()}}, rec.Services)
}

// TestLeaseGuard_FencesExactlyAtDeadline runs the guard on a virtual
// clock: the deadline counts from the update's arrival, and the guard
// fences at it, not 1ns before.
func TestLeaseGuard_FencesExactlyAtDeadline(t *testing.T) {
	ctx := ctxT(t)
	clk := clock.NewFake(time.Now())
	s := startSleeper(t)
	dir := t.TempDir()
	enc, _, _ := runGuardOn(t, context.Background(), dir, clk)
	const remaining = 500 * time.Millisecond
	require.NoError(t, enc.Encode(guardUpdate{RemainingMS: remaining.Milliseconds(), Targets: []guardTarget{{Service: "engine", FenceTarget: s.target}}}))
	require.NoError(t, clk.BlockUntil(ctx, 1), "the guard armed no deadline")
	deadline, _ := clk.Next()
	require.Equal(t, clk.Now().Add(remaining), deadline)

	clk.Advance(remaining - time.Nanosecond)
	require.True(t, s.alive(), "fenced before the deadline")
	clk.Advance(time.Nanosecond)
	s.waitExited(t, guardBound)
	waitGuardRecord(t, dir)
}

// waitGuardRecord waits until the guard recorded its fence in dir: its
// last act before it waits again.
func waitGuardRecord(t *testing.T, dir string) {
	t.Helper()
	testutil.WaitForResult(t, guardBound, func() (bool, error) {
		recs := readGuardRecords(t, dir)
		return len(recs) == 1, fmt.Errorf("%d records", len(recs))
	})
}

// TestLeaseGuard_NewerUpdateReplacesDeadline checks in virtual time that a
// renewal postpones the fence and a revoke fences at once.
func TestLeaseGuard_NewerUpdateReplacesDeadline(t *testing.T) {
	clk := clock.NewFake(time.Now())
	start := clk.Now()
	s := startSleeper(t)
	dir := t.TempDir()
	enc, _, _ := runGuardOn(t, context.Background(), dir, clk)
	target := []guardTarget{{Service: "engine", FenceTarget: s.target}}
	first := 2 * time.Second
	require.NoError(t, enc.Encode(guardUpdate{RemainingMS: first.Milliseconds(), Targets: target}))
	require.NoError(t, enc.Encode(guardUpdate{RemainingMS: time.Hour.Milliseconds(), Targets: target}))
	testutil.WaitForResult(t, guardBound, func() (bool, error) {
		next, ok := clk.Next()
		return ok && next.Equal(start.Add(time.Hour)), fmt.Errorf("guard deadline %s, want %s", next, start.Add(time.Hour))
	})
	clk.Advance(first + time.Second)
	require.True(t, s.alive(), "a renewal must postpone the fence")
	// A revoke (nothing left of the lease) fences at once.
	require.NoError(t, enc.Encode(guardUpdate{RemainingMS: 0, Targets: target}))
	s.waitExited(t, guardBound)
	waitGuardRecord(t, dir)
}

func TestLeaseGuard_Ends(t *testing.T) {
	cases := []struct {
		name string
		// end ends the guard's input or context after it got a lease of
		// an hour with one target.
		end    func(enc *json.Encoder, in io.Closer, cancel context.CancelFunc)
		remain time.Duration
		fenced bool
	}{
		{"told to stop", func(enc *json.Encoder, _ io.Closer, _ context.CancelFunc) { _ = enc.Encode(guardUpdate{Stop: true}) }, time.Hour, false},
		{"stood down by a newer guard", func(_ *json.Encoder, _ io.Closer, cancel context.CancelFunc) { cancel() }, time.Hour, false},
		{"agent gone: enforces the last lease", func(_ *json.Encoder, in io.Closer, _ context.CancelFunc) { _ = in.Close() }, 300 * time.Millisecond, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startSleeper(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			enc, in, done := runGuard(t, ctx, t.TempDir())
			require.NoError(t, enc.Encode(guardUpdate{RemainingMS: tc.remain.Milliseconds(), Targets: []guardTarget{{Service: "engine", FenceTarget: s.target}}}))
			tc.end(enc, in, cancel)
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(tc.remain + guardBound):
				t.Fatal("the guard did not end")
			}
			if tc.fenced {
				// Signalled before the guard returned; gone soon after.
				s.waitExited(t, guardBound)
				return
			}
			require.True(t, s.alive(), "the guard must end without fencing")
		})
	}
}

func TestLeaseGuard_AgentGoneWithNothingToGuard_Exits(t *testing.T) {
	_, in, done := runGuard(t, context.Background(), t.TempDir())
	require.NoError(t, in.Close())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(guardBound):
		t.Fatal("the guard did not exit")
	}
}

// guardedAgent starts a test agent whose service "engine" is a real
// process-driver service (sleep) with the given restart policy, and
// whose lease guard is this test binary (see TestMain).
func guardedAgent(t *testing.T, leaseTTL time.Duration, restart string) *testAgent {
	t.Helper()
	return newTestAgent(t, leaseTTL, nil, func(ta *testAgent) {
		ta.real = true
		ta.guard = []string{os.Args[0], "agent", "lease-guard"}
		ta.cfg.Services = []config.ServiceConfig{{Name: "engine", Driver: config.DriverProcess, Command: []string{"/bin/sleep", "300"}, Restart: restart, StopTimeout: 5 * time.Second}}
		ta.t.Cleanup(func() { killGuards(ta.dataDir) })
	})
}

// killGuards kills the guard lease-guard.pid names, so a test leaves
// nothing behind (a guard alone would exit at its deadline).
func killGuards(dir string) {
	if gp, err := readGuardPid(dir); err == nil && gp.Pid > 0 {
		if ticks, alive := driver.ProcStartTicks(gp.Pid); alive && ticks == gp.StartTicks {
			_ = syscall.Kill(gp.Pid, syscall.SIGKILL)
		}
	}
}

// enginePid returns the engine's pid from the process driver's pid file.
func (ta *testAgent) enginePid() int {
	b, err := os.ReadFile(filepath.Join(ta.dataDir, "services", "engine", "process.pid"))
	if err != nil {
		return 0
	}
	var pid int
	var ticks uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &ticks); err != nil {
		return 0
	}
	if got, alive := driver.ProcStartTicks(pid); !alive || got != ticks {
		return 0
	}
	return pid
}

// TestAgent_LeaseGuard_FencesWhenAgentGone stops the agent while its
// engine runs under a lease: the guard, a separate process, fences the
// engine when the lease lapses, and the next agent reports it fenced and
// does not start it. (The stopped agent's driver lives on in this test
// process, as it would not on a host, so the engine has no restart
// policy here; e2e's frozen-agent test covers one.)
func TestAgent_LeaseGuard_FencesWhenAgentGone(t *testing.T) {
	const ttl = time.Second
	ta := guardedAgent(t, ttl, "no")
	_, res, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "start", Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "engine"})
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	pid := ta.enginePid()
	require.NotZero(t, pid)
	// The guard knows the engine once the fencer ticked after the start.
	testutil.WaitForResult(t, guardBound, func() (bool, error) {
		gp, err := readGuardPid(ta.dataDir)
		return err == nil && gp.Pid > 0, fmt.Errorf("no lease guard recorded: %v", err)
	})
	require.NoError(t, ta.agent.Shutdown(context.Background()))
	stopped := time.Now()
	testutil.WaitForResult(t, ttl+guardBound, func() (bool, error) {
		_, alive := driver.ProcStartTicks(pid)
		return !alive, fmt.Errorf("engine pid %d still runs %s after the agent stopped", pid, time.Since(stopped).Round(time.Millisecond))
	})
	t.Logf("engine fenced %s after the agent stopped (lease_ttl %s)", time.Since(stopped).Round(time.Millisecond), ttl)

	ta.start()
	testutil.WaitForResult(t, guardBound, func() (bool, error) {
		resp := ta.observe(1)
		return resp.GetFenced() && serviceRole(resp, "engine") == string(driver.RoleFenced),
			fmt.Errorf("engine is %s, fenced %v", serviceRole(resp, "engine"), resp.GetFenced())
	})
	resp := ta.observe(1)
	require.Contains(t, resp.GetFenceReason(), "fenced by the lease guard")
	require.Equal(t, pb.FenceCause_FENCE_CAUSE_LEASE_LAPSED, serviceStatus(resp, "engine").GetFenceCause(),
		"the guard's fence is a lease lapse, restartable in place like the agent's own")
	// Nothing brings it back (a negative check needs a wait).
	time.Sleep(2 * time.Second)
	require.Zero(t, ta.enginePid(), "the engine must stay fenced")
}

// TestAgent_LeaseGuard_RestartedAgentTakesOver restarts the agent while
// its engine runs under a lease a leader keeps renewing: the new agent's
// guard takes over and the old one stands down, so the engine outlives
// the old lease.
func TestAgent_LeaseGuard_RestartedAgentTakesOver(t *testing.T) {
	// Long enough that a probe delayed on a loaded machine is no lapse.
	const ttl = 3 * time.Second
	ta := guardedAgent(t, ttl, "no")
	_, res, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "start", Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "engine"})
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	pid := ta.enginePid()
	var old guardPid
	testutil.WaitForResult(t, guardBound, func() (bool, error) {
		old, err = readGuardPid(ta.dataDir)
		return err == nil && old.Pid > 0, fmt.Errorf("no lease guard recorded: %v", err)
	})
	ta.restart()
	renewUntil := time.Now().Add(2 * ttl)
	for time.Now().Before(renewUntil) {
		_, err := ta.client.Probe(ctxT(t), &pb.ProbeRequest{Epoch: 1, ActiveSite: "primary", LeaseTtlMs: uint64(ttl.Milliseconds())})
		require.NoError(t, err)
		time.Sleep(ttl / 5)
	}
	require.Equal(t, pid, ta.enginePid(), "the engine must outlive the old agent's lease while a leader renews the new one's")
	_, alive := driver.ProcStartTicks(old.Pid)
	require.False(t, alive, "the old guard must have stood down")
}
