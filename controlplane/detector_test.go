package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// fastFailover shortens the failure-detection timings for tests, keeping
// 3 x probe_interval <= lease_ttl < failover_timeout.
func fastFailover(automatic bool) func(*config.ServerConfig) {
	return func(cfg *config.ServerConfig) {
		cfg.Failover.Automatic = automatic
		cfg.Failover.ProbeInterval = 100 * time.Millisecond
		cfg.Failover.ProbeTimeout = 300 * time.Millisecond
		cfg.Failover.LeaseTTL = 1500 * time.Millisecond
		cfg.Failover.FailoverTimeout = 2 * time.Second
		cfg.Failover.ClockSkewMargin = 100 * time.Millisecond
	}
}

// newDetectorSites is newTwoSites with partitionRaftConfig: once a server
// is killed the leader keeps its quorum through one link only, and a
// leader deposed by a scheduling stall on this loaded machine leaves the
// freshly promoted primaries without renewals for longer than lease_ttl
// (their promotion grants only the leader's lease_ttl).
func newDetectorSites(t *testing.T, configure func(*config.ServerConfig)) *twoSites {
	return newTwoSitesIn(t, newTestClusterOn(t, nil, partitionRaftConfig, 3, configure))
}

// losePrimaryAgents stops the primary site's agents, as a dead site would.
func (ts *twoSites) losePrimaryAgents(t *testing.T) {
	t.Helper()
	for _, host := range []string{"db-1", "app-1"} {
		require.NoError(t, ts.agents[host].Shutdown(context.Background()))
	}
}

func (ts *twoSites) server(site string) *testServer {
	for _, s := range ts.c.servers {
		if s.cfg.Site == site {
			return s
		}
	}
	return nil
}

// automation polls the leader's status until cond holds on its automation
// report.
func (ts *twoSites) waitAutomation(t *testing.T, cond func(*pb.Automation) bool) *pb.Automation {
	t.Helper()
	var a *pb.Automation
	testutil.WaitForResult(t, 60*time.Second, func() (bool, error) {
		resp, err := ts.c.client(ts.c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
		if err != nil {
			return false, err
		}
		a = resp.GetAutomation()
		return cond(a), fmt.Errorf("automation %+v", a)
	})
	return a
}

func executions(t *testing.T, ts *twoSites) []*pb.Execution {
	t.Helper()
	var out []*pb.Execution
	// A call can fail while leadership moves, or while a connection is
	// set up on a loaded machine: ask again.
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		resp, err := ts.c.client(ts.c.waitForLeader()).ListExecutions(testCtx(t), &pb.ListExecutionsRequest{})
		if err != nil {
			return false, err
		}
		out = resp.GetExecutions()
		return true, nil
	})
	return out
}

func TestDetector_PrimarySiteLost_AutomaticFailover(t *testing.T) {
	ts := newDetectorSites(t, fastFailover(true))
	ts.losePrimaryAgents(t)
	ts.c.kill(ts.server("primary"))

	ex := ts.waitLastExecution(t)
	require.Equal(t, "automatic", structs.TriggerName(ex.GetTrigger()))
	require.Equal(t, "failover", ex.GetKind())
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	// The trigger is the first missed probe, before the execution started.
	require.True(t, ex.GetTriggeredAt().AsTime().Before(ex.GetStartedAt().AsTime()))
	requireFailoverRTO(t, ex, "primary")
	require.Equal(t, driver.RolePrimary, ts.db2["postgres"].Role())
	require.Equal(t, driver.RolePrimary, ts.app2["engine"].Role())

	// Anti-flapping: a further automatic failover is blocked until ack.
	a := ts.waitAutomation(t, func(a *pb.Automation) bool { return a.GetBlocked() != "" })
	require.Contains(t, a.GetBlocked(), "cooldown")
	_, err := ts.c.client(ts.c.waitForLeader()).SetAutomation(testCtx(t), &pb.SetAutomationRequest{Action: "ack"})
	require.NoError(t, err)
	ts.waitAutomation(t, func(a *pb.Automation) bool { return a.GetBlocked() == "" })
}

func TestDetector_SilentAgentsButServerAnswers_NoFailover(t *testing.T) {
	ts := newDetectorSites(t, fastFailover(true))
	ts.losePrimaryAgents(t)
	a := ts.waitAutomation(t, func(a *pb.Automation) bool {
		return strings.Contains(a.GetReason(), "not a site loss")
	})
	require.False(t, a.GetSiteLost())
	require.Empty(t, executions(t, ts), "a host outage with the site's servers up is not a site loss")
}

func TestDetector_Paused_NoFailover(t *testing.T) {
	ts := newDetectorSites(t, fastFailover(true))
	_, err := ts.c.client(ts.c.waitForLeader()).SetAutomation(testCtx(t), &pb.SetAutomationRequest{Action: "pause", Reason: "maintenance"})
	require.NoError(t, err)
	ts.losePrimaryAgents(t)
	ts.c.kill(ts.server("primary"))
	a := ts.waitAutomation(t, func(a *pb.Automation) bool { return a.GetSiteLost() })
	require.False(t, a.GetWouldFire())
	require.Contains(t, a.GetReason(), "paused")
	require.Empty(t, executions(t, ts))
}

func TestDetector_LagAboveGuard_AutomaticFailoverRefused(t *testing.T) {
	ts := newDetectorSites(t, fastFailover(true))
	ts.db2["postgres"].SetReplication(driver.Replication{Position: "0/1000000", ReceivePosition: "0/2000000",
		LagBytes: 16 << 20, LastReplayAt: time.Now().Add(-2 * time.Minute)})
	ts.losePrimaryAgents(t)
	ts.c.kill(ts.server("primary"))

	ex := ts.waitLastExecution(t)
	require.Equal(t, "automatic", structs.TriggerName(ex.GetTrigger()))
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "failed", structs.ExecStateName(ex.GetState()), "the RPO guard refuses an automatic failover beyond max_data_loss")
	require.Contains(t, ex.GetMessage(), "exceeds max_data_loss")
	promotes, _ := ts.db2["postgres"].Transitions()
	require.Zero(t, promotes)
	st, err := ts.c.client(ts.c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "primary", st.GetActiveSite(), "nothing was activated")
}

// TestDetector_PrimaryDatabaseHostLost_AutomaticFailover: only the host
// of the primary database goes (its agent with it); the rest of the site
// answers. Nothing can restart the database in place, so the leader fails
// the site over as for a site loss: trigger automatic, the reason in
// history, the RTO counted from that host's own last answer.
func TestDetector_PrimaryDatabaseHostLost_AutomaticFailover(t *testing.T) {
	ts := newDetectorSites(t, fastFailover(true))
	require.NoError(t, ts.agents["db-1"].Shutdown(context.Background()))

	ex := ts.waitLastExecution(t)
	require.Equal(t, "automatic", structs.TriggerName(ex.GetTrigger()))
	require.Contains(t, ex.GetRpoDetail(), "primary host db-1 of site primary lost")
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	requireFailoverRTO(t, ex, "db-1")
	require.Equal(t, driver.RolePrimary, ts.db2["postgres"].Role())
	require.Equal(t, driver.RolePrimary, ts.app2["engine"].Role())
	require.Equal(t, structs.StepSucceeded, structs.StepStateName(stepOf(t, ex, "fence@app-1").GetState()), "the host that answers is fenced by the plan")
	require.NotEqual(t, driver.RolePrimary, ts.app1["engine"].Role())
}

// TestDetector_PrimaryDatabaseCrashed_RestartedInPlace: the primary
// database dies while its agent answers; the leader restarts it in place
// (audited), in the same epoch, and nothing fails over.
func TestDetector_PrimaryDatabaseCrashed_RestartedInPlace(t *testing.T) {
	ts := newDetectorSites(t, fastFailover(true))
	pg := ts.db1["postgres"]
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		return pg.Role() == driver.RolePrimary, fmt.Errorf("db-1 postgres is %s", pg.Role())
	})
	starts, _ := pg.Counts()
	pg.Crash()
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		n, _ := pg.Counts()
		return n > starts && pg.Role() == driver.RolePrimary, fmt.Errorf("db-1 postgres is %s after %d restarts", pg.Role(), n-starts)
	})
	// Judged for longer than failover_timeout since.
	time.Sleep(3 * time.Second)
	require.Equal(t, driver.RolePrimary, pg.Role())
	require.Empty(t, executions(t, ts), "a database restarted in place is not a failover")
	st, err := ts.c.client(ts.c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.GetEpoch())
	audit := restartsInPlace(t, ts.c)
	require.NotEmpty(t, audit)
	require.Contains(t, audit[0], "restart postgres on db-1 in place")
	require.Contains(t, audit[0], "is down since, while db-1 answers with a lease of epoch 1")
}

// TestDetector_PrimaryDatabaseCrashed_RestartFails_AutomaticFailover: the
// primary database dies while its agent answers and cannot be started
// again; once the restart in place failed and failover_timeout passed,
// the leader fails the site over, its RTO counted from the last probe
// that found the database running.
func TestDetector_PrimaryDatabaseCrashed_RestartFails_AutomaticFailover(t *testing.T) {
	ts := newDetectorSites(t, fastFailover(true))
	pg := ts.db1["postgres"]
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		return pg.Role() == driver.RolePrimary, fmt.Errorf("db-1 postgres is %s", pg.Role())
	})
	pg.FailWith("start", errors.New("could not open data directory"))
	crashedAt := time.Now()
	pg.Crash()

	ex := ts.waitLastExecution(t)
	require.Equal(t, "automatic", structs.TriggerName(ex.GetTrigger()))
	require.Contains(t, ex.GetRpoDetail(), "primary down on db-1 of site primary")
	require.Contains(t, ex.GetRtoDetail(), "when the leader's probe last found running the primary postgres on db-1 (restart in place failed: ")
	require.Contains(t, ex.GetRtoDetail(), "could not open data directory")
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.True(t, ex.GetHasRto())
	lastGate := lastHealthGate(ex)
	require.GreaterOrEqual(t, ex.GetRtoSeconds(), lastGate.Sub(crashedAt).Seconds(), "the RTO counts from before the crash: %s", ex.GetRtoDetail())
	require.Equal(t, driver.RolePrimary, ts.db2["postgres"].Role())
	require.NotEqual(t, driver.RolePrimary, pg.Role())
}

// TestDetector_PrimaryDatabaseCrashedThenHostLost_AutomaticFailover: the
// primary database stops, its agent reports it so, and then the host goes
// silent before the database is back: its last answer shows no primary,
// but it was the last host found running one, so the site fails over, and
// the RTO counts from the last probe that found the database running, not
// from the host's silence.
func TestDetector_PrimaryDatabaseCrashedThenHostLost_AutomaticFailover(t *testing.T) {
	ts := newDetectorSites(t, fastFailover(true))
	pg := ts.db1["postgres"]
	role := func() string {
		a, _, err := agentStatus(t, ts.c, "db-1")
		if err != nil || !a.GetProbe().GetReachable() {
			return "unreachable"
		}
		for _, s := range a.GetProbe().GetServices() {
			if s.GetName() == "postgres" {
				return structs.RoleName(s.GetRole())
			}
		}
		return "missing"
	}
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		r := role()
		return r == "primary", fmt.Errorf("the leader sees db-1 postgres %s", r)
	})
	pg.FailWith("start", errors.New("could not open data directory"))
	crashedAt := time.Now()
	pg.Crash()
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		r := role()
		return r == "stopped", fmt.Errorf("the leader sees db-1 postgres %s", r)
	})
	require.NoError(t, ts.agents["db-1"].Shutdown(context.Background()))

	ex := ts.waitLastExecution(t)
	require.Equal(t, "automatic", structs.TriggerName(ex.GetTrigger()))
	require.Contains(t, ex.GetRpoDetail(), "primary down on db-1 of site primary")
	require.Contains(t, ex.GetRtoDetail(), "when the leader's probe last found running the primary postgres on db-1 (then its host went silent)")
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.True(t, ex.GetHasRto())
	lastGate := lastHealthGate(ex)
	require.GreaterOrEqual(t, ex.GetRtoSeconds(), lastGate.Sub(crashedAt).Seconds(), "the RTO counts from before the crash: %s", ex.GetRtoDetail())
	require.Equal(t, driver.RolePrimary, ts.db2["postgres"].Role())
}

// lastHealthGate is when ex's last health-gated step ended.
func lastHealthGate(ex *pb.Execution) time.Time {
	var last time.Time
	for _, st := range ex.GetSteps() {
		if st.GetStep().GetHealthGate() && st.GetEndedAt().AsTime().After(last) {
			last = st.GetEndedAt().AsTime()
		}
	}
	return last
}

// TestDetector_ApplicationHostLost_NoFailover: a silent host that runs no
// primary database is not a reason to fail the site over.
func TestDetector_ApplicationHostLost_NoFailover(t *testing.T) {
	ts := newDetectorSites(t, fastFailover(true))
	require.NoError(t, ts.agents["app-1"].Shutdown(context.Background()))
	ts.waitAutomation(t, func(a *pb.Automation) bool {
		return strings.Contains(a.GetReason(), "site primary is up: db-1 answered")
	})
	// Judged for more than failover_timeout after the host went silent.
	time.Sleep(3 * time.Second)
	a := ts.waitAutomation(t, func(a *pb.Automation) bool { return strings.Contains(a.GetReason(), "site primary is up") })
	require.False(t, a.GetSiteLost(), a.GetReason())
	require.Empty(t, executions(t, ts))
}

// requireFailoverRTO checks what a failover away from site recorded as
// its RTO: counted from the site's last sign of life, at or before the
// trigger, so never shorter than the outage; or unknown, when the leader
// fell with the site and nothing bounds when the outage began (the fake
// standbys hear from their primary to the last).
func requireFailoverRTO(t *testing.T, ex *pb.Execution, site string) {
	t.Helper()
	if !ex.GetHasRto() {
		require.Contains(t, ex.GetRtoDetail(), "unknown: no survivor saw "+site+" alive")
		return
	}
	require.Contains(t, ex.GetRtoDetail(), "the last sign of life of "+site+": ")
	lastGate := lastHealthGate(ex)
	fromTrigger := lastGate.Sub(ex.GetTriggeredAt().AsTime()).Seconds()
	require.GreaterOrEqual(t, ex.GetRtoSeconds(), fromTrigger, "%s", ex.GetRtoDetail())
}

// waitLastExecution waits until an execution started and returns the
// newest.
func (ts *twoSites) waitLastExecution(t *testing.T) *pb.Execution {
	t.Helper()
	var ex *pb.Execution
	testutil.WaitForResult(t, 60*time.Second, func() (bool, error) {
		for _, e := range executions(t, ts) {
			ex = e
		}
		return ex != nil, fmt.Errorf("no execution started")
	})
	return ex
}
