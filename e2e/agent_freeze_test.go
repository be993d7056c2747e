package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// TestAgentFrozen_LeaseGuardFencesPrimary freezes (SIGSTOP) a `drplane
// agent` process whose engine, a primary-role service with restart
// policy "always", runs under a lease the leader keeps renewing: the
// frozen agent cannot fence, so its lease guard does, within lease_ttl of
// the last renewal. Meanwhile the dr site becomes active, as a failover
// would make it. Continued, the agent reports the engine fenced by the
// guard and does not start it again, restart policy notwithstanding.
func TestAgentFrozen_LeaseGuardFencesPrimary(t *testing.T) {
	c := newAgentCluster(t, "primary")
	ctx := testContext(t, 3*time.Minute)
	app := startAgent(t, c, devcluster.AgentSpec{HostID: "app-1", Site: "primary",
		Services: []config.ServiceConfig{{
			Name: "engine", Driver: config.DriverProcess, Command: []string{"/bin/sleep", "300"},
			Restart: "always", StopTimeout: 5 * time.Second,
		}},
	})
	_, res, err := c.Execute(ctx, app, &pb.ExecuteRequest{ExecutionId: "e2e-freeze", StepId: "start-engine", Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "engine"})
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	enginePID, err := app.ServicePID("engine")
	require.NoError(t, err)
	require.NotZero(t, enginePID)
	// The leader has probed the agent since the start, so the lease runs
	// and the guard knows the engine.
	waitForAgent(t, c, "app-1", 30*time.Second, func(as cli.AgentJSON) error {
		if err := hasRole("engine", "primary", false)(as); err != nil {
			return err
		}
		if !as.LeaseValid {
			return fmt.Errorf("no lease")
		}
		return nil
	})

	frozenAt := time.Now()
	require.NoError(t, syscall.Kill(app.Pid(), syscall.SIGSTOP))
	thawed := false
	t.Cleanup(func() {
		if !thawed {
			_ = syscall.Kill(app.Pid(), syscall.SIGCONT)
		}
	})
	// The last renewal came before the freeze, so the lease lapses within
	// lease_ttl of it; the bound adds room for a loaded machine.
	testutil.WaitForResult(t, leaseTTL+10*time.Second, func() (bool, error) {
		return !devcluster.ProcessAlive(enginePID), fmt.Errorf("the engine (pid %d) still runs %s after its agent froze",
			enginePID, time.Since(frozenAt).Round(time.Millisecond))
	})
	fencedAfter := time.Since(frozenAt)
	t.Logf("the lease guard fenced the engine %s after its agent froze (lease_ttl %s)", fencedAfter.Round(time.Millisecond), leaseTTL)
	require.Less(t, fencedAfter, leaseTTL+5*time.Second, "fenced later than lease_ttl after the last renewal, with room for a loaded machine")
	epoch, err := c.SetActiveSite(ctx, "dr", "e2e: failover while app-1's agent is frozen")
	require.NoError(t, err)

	logBefore := fileSize(t, app.LogPath)
	require.NoError(t, syscall.Kill(app.Pid(), syscall.SIGCONT))
	thawed = true
	waitForAgent(t, c, "app-1", 30*time.Second, func(as cli.AgentJSON) error {
		if as.Epoch != epoch {
			return fmt.Errorf("epoch %d, want %d", as.Epoch, epoch)
		}
		return hasRole("engine", "fenced", true)(as)
	})
	resp, err := probe(ctx, c, app, epoch, "dr")
	require.NoError(t, err)
	require.Contains(t, resp.GetFenceReason(), "fenced by the lease guard")
	// Its restart delay (1s) passes twice: nothing brings the engine back.
	time.Sleep(2 * time.Second)
	pid, err := app.ServicePID("engine")
	require.NoError(t, err)
	require.Zero(t, pid, "the fenced engine must stay down")
	logged := logSince(t, app.LogPath, logBefore)
	require.Contains(t, logged, "lease guard fenced service")
	require.NotContains(t, logged, "started service", "a fenced primary must not be restarted")
	if strings.Contains(logged, "lease guard exited") {
		t.Errorf("the guard died while the agent was frozen:\n%s", logged)
	}
}
