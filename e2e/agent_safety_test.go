package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestAgentSafety_RealProcesses checks the agent's safety guarantees
// (DESIGN.md section 4) on a `drplane agent` process that is killed and
// restarted: bad input is refused clearly while the agent keeps serving;
// a step re-sent after a crash gets the journaled result and does not run
// again, directly and through the control plane; a primary adopted at
// boot is fenced within lease_ttl when its site is no longer active, and
// after exactly the boot window when no leader is left to vouch for it;
// and the epoch survives SIGKILL, so a lower one is refused even when no
// leader is left to teach the restarted agent the current one.
func TestAgentSafety_RealProcesses(t *testing.T) {
	c := newAgentCluster(t, "primary")
	ctx := testContext(t, 3*time.Minute)
	dir := t.TempDir()
	counter, stateDir := filepath.Join(dir, "hook-runs"), filepath.Join(dir, "state")
	writeFiles(t, stateDir, map[string]string{"positions.db": "alpha"})
	app := startAgent(t, c, devcluster.AgentSpec{HostID: "app-1", Site: "primary",
		Services: []config.ServiceConfig{{
			// The agent supervises it; it stands for a trading engine. It
			// ends on its own should every cleanup fail.
			Name: "engine", Driver: config.DriverProcess, Command: []string{"/bin/sleep", "300"}, StopTimeout: 5 * time.Second,
		}},
		// Every run leaves a line, so runs can be counted.
		Hooks:     []config.HookConfig{{Name: "count", Command: []string{"/bin/sh", "-c", "echo ran >> " + counter}, Timeout: 10 * time.Second}},
		Snapshots: []config.SnapshotConfig{{Name: "state", Paths: []string{stateDir}}},
	})

	t.Run("bad input is refused and the agent keeps serving", func(t *testing.T) {
		// The agent knows epoch 1 from the leader's probes.
		cases := []struct {
			name string
			req  *pb.ExecuteRequest
			code codes.Code
			want string
		}{
			{"unknown service", &pb.ExecuteRequest{ExecutionId: "e2e-bad", StepId: "1", Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "redis"},
				codes.InvalidArgument, `service "redis" is not declared in this agent's config (services: [engine])`},
			{"undeclared hook", &pb.ExecuteRequest{ExecutionId: "e2e-bad", StepId: "2", Epoch: 1, Action: pb.StepAction_STEP_ACTION_HOOK, Target: "rm-rf"},
				codes.InvalidArgument, `hook "rm-rf" is not declared in this agent's config (hooks: [count])`},
			{"undeclared sync block", &pb.ExecuteRequest{ExecutionId: "e2e-bad", StepId: "3", Epoch: 1, Action: pb.StepAction_STEP_ACTION_RSYNC, Target: "etc"},
				codes.InvalidArgument, `sync block "etc" is not declared`},
			{"missing ids", &pb.ExecuteRequest{Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "engine"},
				codes.InvalidArgument, "malformed step: execution_id and step_id are required"},
			{"empty action", &pb.ExecuteRequest{ExecutionId: "e2e-bad", StepId: "4", Epoch: 1, Target: "engine"},
				codes.InvalidArgument, "malformed step: action is empty"},
			{"unknown action", &pb.ExecuteRequest{ExecutionId: "e2e-bad", StepId: "5", Epoch: 1, Action: pb.StepAction(99), Target: "engine"},
				codes.InvalidArgument, `unknown action 99`},
			{"step id with a path", &pb.ExecuteRequest{ExecutionId: "e2e-bad", StepId: "../../epoch", Epoch: 1, Action: pb.StepAction_STEP_ACTION_STOP, Target: "engine"},
				codes.InvalidArgument, `malformed step: execution id "e2e-bad" and step id "../../epoch" must match`},
			{"promote of a process", &pb.ExecuteRequest{ExecutionId: "e2e-bad", StepId: "6", Epoch: 1, Action: pb.StepAction_STEP_ACTION_PROMOTE, Target: "engine"},
				codes.InvalidArgument, `service "engine" (driver process) cannot be promoted`},
			{"lower epoch", &pb.ExecuteRequest{ExecutionId: "e2e-bad", StepId: "7", Epoch: 0, Action: pb.StepAction_STEP_ACTION_START, Target: "engine"},
				codes.FailedPrecondition, "instruction carries epoch 0, but this agent has seen epoch 1"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, res, err := c.Execute(ctx, app, tc.req)
				require.Nil(t, res)
				require.Equal(t, tc.code, status.Code(err), "%v", err)
				require.Contains(t, status.Convert(err).Message(), tc.want)
				resp, err := probe(ctx, c, app, 1, "primary")
				require.NoError(t, err, "the agent must keep serving after bad input")
				require.Equal(t, "app-1", resp.GetHostId())
			})
		}
		pid, err := app.ServicePID("engine")
		require.NoError(t, err)
		require.Zero(t, pid, "no refused step may start anything")

		// Through the control plane and the CLI, as an operator would.
		via := c.Nodes[0]
		_, err = c.CLI(ctx, via, "snapshot", "create", "--host", "app-1", "--name", "keys")
		require.ErrorContains(t, err, `snapshot block "keys" is not declared in this agent's config`)
		_, err = c.CLI(ctx, via, "snapshot", "create", "--host", "db-9", "--name", "state")
		require.ErrorContains(t, err, `host "db-9" is not registered`)
	})

	// The leader starts the engine (a primary-role service) and runs the
	// hook once; an operator takes a snapshot through the control plane
	// with a request id it may retry.
	runHook := &pb.ExecuteRequest{ExecutionId: "e2e-safety", StepId: "count", Epoch: 1, Action: pb.StepAction_STEP_ACTION_HOOK, Target: "count"}
	_, res, err := c.Execute(ctx, app, &pb.ExecuteRequest{ExecutionId: "e2e-safety", StepId: "start-engine", Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "engine"})
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	enginePID, err := app.ServicePID("engine")
	require.NoError(t, err)
	require.NotZero(t, enginePID)
	_, first, err := c.Execute(ctx, app, runHook)
	require.NoError(t, err)
	require.True(t, first.GetOk(), first.GetMessage())
	require.Equal(t, "ran\n", readFile(t, counter))
	cp, err := c.Operator()
	require.NoError(t, err)
	snapshotReq := &pb.RunHostStepRequest{Write: &pb.WriteOptions{RequestId: uuid.NewString()}, HostId: "app-1", Action: pb.StepAction_STEP_ACTION_SNAPSHOT, Target: "state"}
	snap, err := cp.RunHostStep(ctx, snapshotReq)
	require.NoError(t, err)
	require.True(t, snap.GetResult().GetOk(), snap.GetResult().GetMessage())
	waitForAgent(t, c, "app-1", 30*time.Second, hasRole("engine", "primary", false))

	// The agent crashes; meanwhile the dr site becomes active. The engine
	// keeps running: services outlive their agent.
	require.NoError(t, app.Kill())
	epoch, err := c.SetActiveSite(ctx, "dr", "e2e: the primary site is lost")
	require.NoError(t, err)
	require.Equal(t, uint64(2), epoch)
	require.True(t, devcluster.ProcessAlive(enginePID), "the engine must outlive its agent")

	// Boot fencing on a site that is no longer active: the restarted agent
	// adopts the engine, and no leader will renew a lease for it, so it is
	// fenced within the boot window of one lease_ttl. Unless the crashed
	// agent's lease guard fenced it first, at the end of that agent's last
	// lease, should the restarted agent be slow to take over.
	logBefore := fileSize(t, app.LogPath)
	require.NoError(t, app.Start())
	elapsed := waitFenced(t, enginePID, time.Now())
	t.Logf("adopted engine fenced %s after the agent restarted, its site no longer active (lease_ttl %s)", elapsed, leaseTTL)
	logged := waitFencedBy(t, app.LogPath, logBefore, "adopted running service")
	require.NotContains(t, logged, "started service", "an agent never starts a service on its own")
	fenced := waitForAgent(t, c, "app-1", 30*time.Second, hasRole("engine", "fenced", true))
	require.Equal(t, epoch, fenced.Epoch)
	require.False(t, fenced.LeaseValid)

	// At most once: the re-sent hook step gets the journaled result, and
	// the hook does not run again.
	_, again, err := c.Execute(ctx, app, &pb.ExecuteRequest{ExecutionId: runHook.ExecutionId, StepId: runHook.StepId,
		Epoch: epoch, Action: runHook.Action, Target: runHook.Target})
	require.NoError(t, err)
	require.True(t, again.GetReplayed(), "a re-sent step must be answered from the journal")
	require.True(t, again.GetOk())
	require.Equal(t, first.GetStartedAt().AsTime(), again.GetStartedAt().AsTime())
	require.Equal(t, "ran\n", readFile(t, counter), "the hook must not run a second time")

	// The operator's retry of the snapshot (same request id) reaches the
	// agent as the same step: the journaled result, no second snapshot.
	retried, err := cp.RunHostStep(ctx, snapshotReq)
	require.NoError(t, err)
	require.True(t, retried.GetResult().GetReplayed(), "a retried operator step must be answered from the journal")
	require.Equal(t, snap.GetResult().GetOutputs()["snapshot_id"], retried.GetResult().GetOutputs()["snapshot_id"])
	list, err := c.CLI(ctx, c.Nodes[0], "snapshot", "list", "--host", "app-1", "--name", "state", "--json")
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(list, `"id"`), "exactly one snapshot: %s", list)

	// Every server goes. The stand-in leader starts the engine again (its
	// instruction is a lease of one lease_ttl) and the agent crashes at
	// once: the restarted agent adopts an engine nobody vouches for.
	for _, n := range c.Nodes {
		require.NoError(t, c.Kill(n))
	}
	startedAt := time.Now()
	_, res, err = c.Execute(ctx, app, &pb.ExecuteRequest{ExecutionId: "e2e-safety", StepId: "restart-engine", Epoch: epoch, Action: pb.StepAction_STEP_ACTION_START, Target: "engine"})
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	enginePID, err = app.ServicePID("engine")
	require.NoError(t, err)
	require.NoError(t, app.Kill())
	require.True(t, devcluster.ProcessAlive(enginePID), "the engine must outlive its agent")

	// Boot fencing without a leader: the agent waits one lease_ttl for a
	// leader to vouch for the engine, then fences it; or the crashed
	// agent's lease guard fences it when the start's lease ends, if the
	// restarted agent did not take over before. Either way not before the
	// lease the start granted ends.
	logBefore = fileSize(t, app.LogPath)
	require.NoError(t, app.Start())
	elapsed = waitFenced(t, enginePID, startedAt)
	t.Logf("adopted engine fenced %s after the stand-in leader started it, its agent restarted with no leader (lease_ttl %s)", elapsed, leaseTTL)
	require.GreaterOrEqual(t, elapsed, leaseTTL, "the lease a start grants runs one lease_ttl")
	waitFencedBy(t, app.LogPath, logBefore, "adopted running service", "lease expired")

	// The epoch is on disk: with no leader to tell the restarted agent
	// the current epoch, a lower one is still refused, naming both, and
	// the agent still serves the current one.
	_, err = probe(ctx, c, app, epoch-1, "primary")
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), fmt.Sprintf("instruction carries epoch %d, but this agent has seen epoch %d", epoch-1, epoch))
	_, _, err = c.Execute(ctx, app, &pb.ExecuteRequest{ExecutionId: "e2e-safety", StepId: "stale-start", Epoch: epoch - 1, Action: pb.StepAction_STEP_ACTION_START, Target: "engine"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	resp, err := probe(ctx, c, app, epoch, "dr")
	require.NoError(t, err)
	require.Equal(t, epoch, resp.GetEpoch())
	pid, err := app.ServicePID("engine")
	require.NoError(t, err)
	require.Zero(t, pid, "a refused step must not start the engine")
}

// waitFencedBy waits until the log an agent wrote since offset shows it
// adopted and fenced the service (every one of want), or found it fenced
// by the lease guard of the agent before it, and returns that log.
func waitFencedBy(t *testing.T, path string, offset int64, want ...string) string {
	t.Helper()
	var logged string
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		logged = logSince(t, path, offset)
		if strings.Contains(logged, "lease guard fenced service") {
			return true, nil
		}
		for _, w := range want {
			if !strings.Contains(logged, w) {
				return false, fmt.Errorf("the agent did not log %q:\n%s", w, logged)
			}
		}
		return true, nil
	})
	return logged
}

// waitFenced waits until the adopted service pid is gone, at most
// lease_ttl and a margin for a loaded machine after since, and returns how
// long after since it went.
func waitFenced(t *testing.T, pid int, since time.Time) time.Duration {
	t.Helper()
	testutil.WaitForResult(t, leaseTTL+10*time.Second, func() (bool, error) {
		return !devcluster.ProcessAlive(pid), fmt.Errorf("the adopted service (pid %d) still runs %s after the agent restarted",
			pid, time.Since(since).Round(time.Millisecond))
	})
	return time.Since(since).Round(time.Millisecond)
}
