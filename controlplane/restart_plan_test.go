package controlplane

import (
	"testing"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestExecutor_Restart_InDependencyOrder: a restart stops the active
// site's engine before its database and starts the database before the
// engine, each once, health-gated; nothing moves (same epoch and active
// site), the RPO is 0 and the RTO measured.
func TestExecutor_Restart_InDependencyOrder(t *testing.T) {
	ts := newTwoSites(t, nil)
	pg, engine := ts.db1["postgres"], ts.app1["engine"]
	pgStarts, pgStops := pg.Counts()
	engineStarts, engineStops := engine.Counts()

	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "restart"})
	require.Equal(t, "primary", ex.GetFrom())
	require.Equal(t, "primary", ex.GetTo())
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())

	for name, f := range map[string]struct {
		fake          *driver.Fake
		starts, stops int
	}{"postgres": {pg, pgStarts, pgStops}, "engine": {engine, engineStarts, engineStops}} {
		starts, stops := f.fake.Counts()
		require.Equal(t, f.starts+1, starts, "%s started once", name)
		require.Equal(t, f.stops+1, stops, "%s stopped once", name)
		require.Equal(t, driver.RolePrimary, f.fake.Role(), "%s runs again", name)
	}
	at := func(id string) *pb.ExecutionStep { return stepOf(t, ex, id) }
	require.False(t, at("stop:postgres@db-1").GetStartedAt().AsTime().Before(at("stop:engine@app-1").GetEndedAt().AsTime()),
		"the database stops after the engine that depends on it")
	require.False(t, at("start:engine@app-1").GetStartedAt().AsTime().Before(at("start:postgres@db-1").GetEndedAt().AsTime()),
		"the engine starts after its database")
	require.True(t, ex.GetHasRto())
	require.True(t, ex.GetHasRpo())
	require.Zero(t, ex.GetRpoSeconds(), ex.GetRpoDetail())
	ts.requireActive(t, "primary", 1)
	standbyStarts, _ := ts.db2["postgres"].Counts()
	require.Zero(t, standbyStarts, "nothing at dr is touched")
}

// TestExecutor_Restart_OneService: --service engine restarts the engine
// and leaves its database running; an unknown service is refused before
// anything stops.
func TestExecutor_Restart_OneService(t *testing.T) {
	ts := newTwoSites(t, nil)
	pgStarts, pgStops := ts.db1["postgres"].Counts()
	engineStarts, _ := ts.app1["engine"].Counts()

	_, err := ts.c.client(ts.c.follower()).StartExecution(testCtx(t), &pb.StartExecutionRequest{Kind: "restart", Service: "engin"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), `declares service "engin"; did you mean "engine"?`)
	_, err = ts.c.client(ts.c.follower()).StartExecution(testCtx(t), &pb.StartExecutionRequest{Kind: "switchover", To: "dr", Service: "engine"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Empty(t, executions(t, ts), "nothing started")

	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "restart", Service: "engine"})
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	starts, stops := ts.db1["postgres"].Counts()
	require.Equal(t, pgStarts, starts, "the database is not restarted")
	require.Equal(t, pgStops, stops)
	starts, _ = ts.app1["engine"].Counts()
	require.Equal(t, engineStarts+1, starts)
}

// TestListPlans_Scenarios: every kind's plan and every named plan, with
// the objectives a run is measured against (a plan block's over the
// top-level ones), through a follower.
func TestListPlans_Scenarios(t *testing.T) {
	f, err := plan.Parse([]byte(`objectives { rto = "15m"  rpo = "5m" }
plan "failover" {
  objectives { rto = "10m" }
}
plan "live-system-failure" {
  kind = "restart"
  objectives { rto = "15m"  rpo = "0s" }
}
`), "server.hcl")
	require.NoError(t, err)
	c := newTestClusterWith(t, 3, func(cfg *config.ServerConfig) { cfg.Objectives, cfg.Plans = f.Objectives, f.Plans })
	c.waitForLeader()
	resp, err := c.client(c.follower()).ListPlans(testCtx(t), &pb.ListPlansRequest{})
	require.NoError(t, err)
	got := map[string]*pb.PlanScenario{}
	var names []string
	for _, p := range resp.GetPlans() {
		got[p.GetName()] = p
		names = append(names, p.GetName())
	}
	require.Equal(t, []string{"failover", "switchover", "failback", "drill", "restart", "restore", "live-system-failure"}, names)
	require.Equal(t, 600.0, got["failover"].GetRtoTargetSeconds(), "the plan block's RTO")
	require.Equal(t, 300.0, got["failover"].GetRpoTargetSeconds(), "the top-level RPO")
	require.Equal(t, 900.0, got["switchover"].GetRtoTargetSeconds())
	lsf := got["live-system-failure"]
	require.Equal(t, "restart", lsf.GetKind())
	require.True(t, lsf.GetHasRpoTarget())
	require.Zero(t, lsf.GetRpoTargetSeconds(), "rpo = \"0s\" is a target of zero loss")
}
