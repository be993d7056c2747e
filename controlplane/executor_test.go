package controlplane

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent"
	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// testService is one fake service of a test agent.
type testService struct {
	name       string
	role       driver.Role
	dependsOn  []string
	promotable bool
}

// appDriver hides the fake's data-service methods: an application service
// that cannot be promoted but can run a drill copy.
type appDriver struct {
	driver.Driver
	driver.Driller
}

// planAgent is a test agent whose fakes and data dir outlive it, as a
// host's services and disk outlive its agent process.
type planAgent struct {
	fakes map[string]*driver.Fake
	agent *hostagent.Agent
	cfg   *config.AgentConfig
	deps  hostagent.Deps
	ep    string // the agent's netsim endpoint, with c.net
}

// startPlanAgent runs an agent whose services are fakes, registered with
// the cluster, and keeps what a restart needs.
func startPlanAgent(t *testing.T, c *testCluster, hostID, site string, services ...testService) *planAgent {
	t.Helper()
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.tlsDir, Name: hostID, Role: tlsutil.RoleAgent})
	require.NoError(t, err)
	fakes := map[string]*driver.Fake{}
	drivers := map[string]driver.Driver{}
	cfg := &config.AgentConfig{
		HostID: hostID, Site: site, DataDir: t.TempDir(), Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", LeaseTTL: 3 * time.Second,
		TLS: config.TLSConfig{CAFile: filepath.Join(c.tlsDir, "ca.pem"), CertFile: filepath.Join(c.tlsDir, hostID+".pem"), KeyFile: filepath.Join(c.tlsDir, hostID+"-key.pem")},
	}
	if c.agentLeaseTTL > 0 {
		cfg.LeaseTTL = c.agentLeaseTTL
	}
	for _, ts := range c.servers {
		cfg.Servers = append(cfg.Servers, ts.grpcAddr)
	}
	for _, svc := range services {
		f := driver.NewFake(svc.role)
		fakes[svc.name] = f
		drivers[svc.name] = appDriver{f, f}
		sc := config.ServiceConfig{Name: svc.name, Driver: config.DriverProcess, DependsOn: svc.dependsOn, Drill: &config.DrillConfig{}}
		if svc.promotable {
			drivers[svc.name] = f
			sc.Driver, sc.Port, sc.Drill.Port = config.DriverPostgres, 5432, 15432
		}
		cfg.Services = append(cfg.Services, sc)
	}
	pa := &planAgent{fakes: fakes, cfg: cfg, deps: hostagent.Deps{
		Logger: testLogger(t, hostID, &lockedBuffer{}),
		TLS:    c.material(hostID),
		NewDriver: func(sc config.ServiceConfig, _ string, _ hclog.Logger) (driver.Driver, error) {
			return drivers[sc.Name], nil
		},
	}}
	if c.net != nil {
		pa.ep = site + "/" + hostID
		pa.deps.Dial = c.net.Dialer(pa.ep)
	}
	pa.start(t, c, "127.0.0.1:0")
	return pa
}

// start runs the agent listening on addr.
func (pa *planAgent) start(t *testing.T, c *testCluster, addr string) {
	t.Helper()
	deps := pa.deps
	if c.net != nil {
		deps.Listener = c.net.Listen(pa.ep, listen(t, addr))
	} else if addr != "127.0.0.1:0" {
		deps.Listener = listen(t, addr)
	}
	a, err := hostagent.New(pa.cfg, deps)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	pa.agent = a
}

// restart stops the agent and starts it again on the same address, data
// dir and services, as an agent process restarted on its host.
func (pa *planAgent) restart(t *testing.T, c *testCluster) {
	t.Helper()
	addr := pa.agent.Addr()
	require.NoError(t, pa.agent.Shutdown(context.Background()))
	pa.start(t, c, addr)
}

// twoSites is a primary site and a DR site, each with a database host and
// an application host whose engine depends on the database.
type twoSites struct {
	c                    *testCluster
	db1, app1, db2, app2 map[string]*driver.Fake
	agents               map[string]*hostagent.Agent
	hosts                map[string]*planAgent
}

func newTwoSites(t *testing.T, configure func(*config.ServerConfig)) *twoSites {
	return newTwoSitesIn(t, newTestClusterWith(t, 3, configure))
}

// newTwoSitesOn is newTwoSites with servers in sites.
func newTwoSitesOn(t *testing.T, sites []string, configure func(*config.ServerConfig)) *twoSites {
	return newTwoSitesIn(t, newTestClusterOf(t, sites, configure))
}

// newTwoSitesIn starts the two sites' agents with the servers of c.
func newTwoSitesIn(t *testing.T, c *testCluster) *twoSites {
	ts := &twoSites{c: c, agents: map[string]*hostagent.Agent{}, hosts: map[string]*planAgent{}}
	start := func(host, site string, svc testService) map[string]*driver.Fake {
		pa := startPlanAgent(t, c, host, site, svc)
		ts.agents[host], ts.hosts[host] = pa.agent, pa
		return pa.fakes
	}
	ts.db1 = start("db-1", "primary", testService{name: "postgres", role: driver.RolePrimary, promotable: true})
	ts.app1 = start("app-1", "primary", testService{name: "engine", role: driver.RolePrimary, dependsOn: []string{"postgres"}})
	ts.db2 = start("db-2", "dr", testService{name: "postgres", role: driver.RoleStandby, promotable: true})
	ts.app2 = start("app-2", "dr", testService{name: "engine", role: driver.RoleStopped, dependsOn: []string{"postgres"}})
	// Plans are derived from registrations, and the guard from probes:
	// wait until the leader has both for every host.
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		resp, err := c.client(c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
		if err != nil {
			return false, err
		}
		n := 0
		for _, a := range resp.GetAgents() {
			if a.GetProbe().GetReachable() {
				n++
			}
		}
		return n == 4, fmt.Errorf("%d of 4 agents registered and probed", n)
	})
	return ts
}

// startExecution starts a plan through a follower, as an operator would.
func (ts *twoSites) startExecution(t *testing.T, req *pb.StartExecutionRequest) *pb.Execution {
	t.Helper()
	resp, err := ts.c.client(ts.c.follower()).StartExecution(testCtx(t), req)
	require.NoError(t, err)
	return resp.GetExecution()
}

// waitEnded waits until the execution ends and returns it.
func (ts *twoSites) waitEnded(t *testing.T, id string) *pb.Execution {
	t.Helper()
	var ex *pb.Execution
	testutil.WaitForResult(t, 60*time.Second, func() (bool, error) {
		resp, err := ts.c.client(ts.c.waitForLeader()).GetExecution(testCtx(t), &pb.GetExecutionRequest{Id: id})
		if err != nil {
			return false, err
		}
		ex = resp.GetExecution()
		return ex.GetState() != pb.ExecutionState_EXECUTION_STATE_RUNNING, fmt.Errorf("execution %s is %s", id, ex.GetState())
	})
	return ex
}

func stepOf(t *testing.T, ex *pb.Execution, id string) *pb.ExecutionStep {
	t.Helper()
	i := slices.IndexFunc(ex.GetSteps(), func(s *pb.ExecutionStep) bool { return s.GetStep().GetId() == id })
	require.GreaterOrEqual(t, i, 0, "step %s not in plan", id)
	return ex.GetSteps()[i]
}

func stepIDs(ex *pb.Execution, action string) []string {
	var ids []string
	for _, s := range ex.GetSteps() {
		if structs.ActionName(s.GetStep().GetAction()) == action {
			ids = append(ids, s.GetStep().GetId())
		}
	}
	return ids
}

func TestExecutor_Failover_PromotesThenStartsInOrder(t *testing.T) {
	ts := newTwoSites(t, nil)
	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failover", To: "dr"})
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.True(t, ex.GetHasRpo())
	// The standby had replayed all its primary wrote: at most the writes
	// since the leader's last look at the primary are at risk.
	require.Less(t, ex.GetRpoSeconds(), 5.0)

	promotes, _ := ts.db2["postgres"].Transitions()
	starts, _ := ts.app2["engine"].Counts()
	require.Equal(t, 1, promotes)
	require.Equal(t, 1, starts)
	require.Equal(t, driver.RolePrimary, ts.db2["postgres"].Role())
	require.Equal(t, driver.RolePrimary, ts.app2["engine"].Role())
	require.Equal(t, driver.RoleStopped, ts.db1["postgres"].Role(), "the old site is fenced")

	// Order: activate before promote (invariant 1), promote before the
	// engine that depends on it starts.
	activate := stepOf(t, ex, stepIDs(ex, plan.ActionActivate)[0])
	promote := stepOf(t, ex, stepIDs(ex, plan.ActionPromote)[0])
	start := stepOf(t, ex, stepIDs(ex, plan.ActionStart)[0])
	require.False(t, promote.GetStartedAt().AsTime().Before(activate.GetEndedAt().AsTime()))
	require.False(t, start.GetStartedAt().AsTime().Before(promote.GetEndedAt().AsTime()))
	require.True(t, ex.GetHasRto())
	require.Greater(t, ex.GetRtoSeconds(), 0.0)

	ts.requireActive(t, "dr", 2)
}

func TestExecutor_Guard_RefusesLagBeyondMaxDataLoss(t *testing.T) {
	ts := newTwoSites(t, nil)
	// The standby is two minutes behind, with WAL still to replay.
	ts.db2["postgres"].SetReplication(driver.Replication{Position: "0/1000000", ReceivePosition: "0/2000000",
		LagBytes: 16 << 20, LastReplayAt: time.Now().Add(-2 * time.Minute)})
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		a, _, err := agentStatus(t, ts.c, "db-2")
		if err != nil {
			return false, err
		}
		svcs := a.GetProbe().GetServices()
		return len(svcs) > 0 && svcs[0].GetReplication().GetLagBytes() > 0, fmt.Errorf("lag not observed yet")
	})

	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failover", To: "dr"})
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "failed", structs.ExecStateName(ex.GetState()))
	require.Contains(t, ex.GetMessage(), "exceeds max_data_loss")
	require.Contains(t, ex.GetMessage(), "--allow-data-loss")
	promotes, _ := ts.db2["postgres"].Transitions()
	require.Zero(t, promotes, "nothing is promoted beyond the RPO guard (invariant 7)")
	st, err := ts.c.client(ts.c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "primary", st.GetActiveSite(), "a refused failover leaves the active site alone")

	// The operator accepts the loss.
	ex = ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failover", To: "dr", AllowDataLoss: true})
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.InDelta(t, 120, ex.GetRpoSeconds(), 30, "the RPO is the exposure at the trigger")
}

func TestExecutor_SecondConcurrentExecution_Refused(t *testing.T) {
	ts := newTwoSites(t, nil)
	block := make(chan struct{})
	ts.app2["engine"].Block = block
	first := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failover", To: "dr", AllowDataLoss: true})
	_, err := ts.c.client(ts.c.waitForLeader()).StartExecution(testCtx(t), &pb.StartExecutionRequest{Kind: "drill"})
	require.Error(t, err)
	require.Contains(t, err.Error(), first.GetId(), "the refusal names the running execution")
	close(block)
	require.Equal(t, "succeeded", structs.ExecStateName(ts.waitEnded(t, first.GetId()).GetState()))
}

func TestExecutor_LeaderKilledMidStep_ResumesAndRunsEachStepOnce(t *testing.T) {
	ts := newTwoSites(t, nil)
	block := make(chan struct{})
	ts.app2["engine"].Block = block
	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failover", To: "dr", AllowDataLoss: true})

	// Wait until the engine's start is in progress on the agent, then
	// kill the leader that sent it.
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		starts, _ := ts.app2["engine"].Counts()
		return starts == 1, fmt.Errorf("engine started %d times", starts)
	})
	old := ts.c.waitForLeader()
	ts.c.kill(old)
	newLeader := ts.c.waitForLeader()
	require.NotEqual(t, old.cfg.NodeID, newLeader.cfg.NodeID)
	close(block)

	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	starts, _ := ts.app2["engine"].Counts()
	promotes, _ := ts.db2["postgres"].Transitions()
	require.Equal(t, 1, starts, "the re-sent start attached to the run in progress (invariant 3)")
	require.Equal(t, 1, promotes)
	st, err := ts.c.client(newLeader).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, uint64(2), st.GetEpoch(), "the site was activated exactly once")
}

// TestExecutor_PromoteAnswerLost_ResentAndVerified: db-2's agent stops
// while it promotes, after the database became primary, so the leader
// sees the stream break (Unavailable) instead of a result. The leader
// re-sends the same step to the restarted agent, which finds the service
// primary: the step succeeds, verified, without a second promote, and the
// failover completes.
func TestExecutor_PromoteAnswerLost_ResentAndVerified(t *testing.T) {
	ts := newTwoSites(t, nil)
	ts.db2["postgres"].PromoteHold = make(chan struct{}) // never released
	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failover", To: "dr", AllowDataLoss: true})
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		role := ts.db2["postgres"].Role()
		return role == driver.RolePrimary, fmt.Errorf("db-2's postgres is %s", role)
	})
	ts.hosts["db-2"].restart(t, ts.c)

	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	promote := stepOf(t, ex, stepIDs(ex, plan.ActionPromote)[0])
	require.Equal(t, structs.StepSucceeded, structs.StepStateName(promote.GetState()), promote.GetMessage())
	require.True(t, promote.GetVerified(), "the leader records the agent's verified answer")
	require.Contains(t, promote.GetMessage(), "the step's effect is in place: postgres is primary")
	require.Equal(t, int32(1), promote.GetAttempt(), "the same step was re-sent, not retried as a new one")
	promotes, _ := ts.db2["postgres"].Transitions()
	require.Equal(t, 1, promotes, "the promote ran once")
	require.Equal(t, driver.RolePrimary, ts.app2["engine"].Role(), "the failover went on after the promote")
}

// failoverWaitingForApproval starts a failover whose plan has an approval
// step "go-ahead" before activation, and waits until that step waits.
func failoverWaitingForApproval(t *testing.T) (*twoSites, *pb.Execution, testClient) {
	t.Helper()
	ts := newTwoSites(t, func(cfg *config.ServerConfig) {
		cfg.Plans = []*plan.Definition{{Name: "failover", Kind: plan.KindFailover, Steps: []plan.StepDef{
			{Name: "go-ahead", Action: plan.ActionApproval, Before: plan.PhaseActivate},
		}}}
	})
	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failover", To: "dr", AllowDataLoss: true})
	client := ts.c.client(ts.c.waitForLeader())
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		resp, err := client.GetExecution(testCtx(t), &pb.GetExecutionRequest{Id: ex.GetId()})
		if err != nil {
			return false, err
		}
		st := stepOf(t, resp.GetExecution(), "go-ahead")
		return st.GetState() == pb.StepState_STEP_STATE_WAITING, fmt.Errorf("approval is %s", st.GetState())
	})
	return ts, ex, client
}

func TestExecutor_Approval_PausesUntilApproved(t *testing.T) {
	ts, ex, client := failoverWaitingForApproval(t)
	promotes, _ := ts.db2["postgres"].Transitions()
	require.Zero(t, promotes, "nothing after the approval runs before it is given")
	_, err := client.ApproveExecution(testCtx(t), &pb.ApproveExecutionRequest{Id: ex.GetId()})
	require.NoError(t, err)
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.NotEmpty(t, stepOf(t, ex, "go-ahead").GetApprovedBy())
}

func TestExecutor_Cancel_StopsScheduling(t *testing.T) {
	ts, ex, client := failoverWaitingForApproval(t)
	_, err := client.CancelExecution(testCtx(t), &pb.CancelExecutionRequest{Id: ex.GetId()})
	require.NoError(t, err)
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "cancelled", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	promotes, _ := ts.db2["postgres"].Transitions()
	require.Zero(t, promotes)
	for _, id := range stepIDs(ex, plan.ActionPromote) {
		require.Equal(t, structs.StepSkipped, structs.StepStateName(stepOf(t, ex, id).GetState()))
	}
	st, err := client.GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "primary", st.GetActiveSite())
}

func TestExecutor_Drill_ProductionUntouched_CleansUp(t *testing.T) {
	ts := newTwoSites(t, nil)
	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "drill"})
	require.Equal(t, "dr", ex.GetTo())
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.True(t, ex.GetHasRto())

	// Production roles and the epoch are untouched; the copies are gone.
	require.Equal(t, driver.RolePrimary, ts.db1["postgres"].Role())
	require.Equal(t, driver.RoleStandby, ts.db2["postgres"].Role())
	require.Equal(t, driver.RoleStopped, ts.app2["engine"].Role())
	promotes, _ := ts.db2["postgres"].Transitions()
	require.Zero(t, promotes)
	require.Empty(t, ts.db2["postgres"].Drills())
	require.Empty(t, ts.app2["engine"].Drills())
	st, err := ts.c.client(ts.c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.GetEpoch())
	require.Equal(t, "primary", st.GetActiveSite())
}

func TestExecutor_Switchover_ThenFailback(t *testing.T) {
	ts := newTwoSites(t, nil)
	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "switchover", To: "dr"})
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.True(t, ex.GetHasRpo())
	require.Zero(t, ex.GetRpoSeconds(), "a switchover loses nothing")
	require.Equal(t, driver.RolePrimary, ts.db2["postgres"].Role())
	require.Equal(t, driver.RoleStandby, ts.db1["postgres"].Role(), "the old primary is reprotected as a standby")
	require.Equal(t, driver.RoleStopped, ts.app1["engine"].Role(), "drained")
	require.Equal(t, driver.RolePrimary, ts.app2["engine"].Role())

	ex = ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failback"})
	require.Equal(t, "primary", ex.GetTo())
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.Equal(t, driver.RolePrimary, ts.db1["postgres"].Role())
	require.Equal(t, driver.RoleStandby, ts.db2["postgres"].Role())
	require.Equal(t, driver.RolePrimary, ts.app1["engine"].Role())
	require.Equal(t, driver.RoleStopped, ts.app2["engine"].Role())
	st, err := ts.c.client(ts.c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, uint64(3), st.GetEpoch())
	require.Equal(t, "primary", st.GetActiveSite())
}

// TestExecutor_Switchover_FailsBeforeActivation_RollsBack: a catch-up that
// fails (a full disk on the DR database host) stops the switchover before
// dr is activated; the execution then starts again, in dependency order,
// what it had stopped at primary, and says so.
func TestExecutor_Switchover_FailsBeforeActivation_RollsBack(t *testing.T) {
	ts := newTwoSites(t, nil)
	ts.db2["postgres"].FailWith("catchup", errors.New("write /var/lib/drplane/journal: no space left on device"))

	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "switchover", To: "dr"})
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "failed", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.Contains(t, ex.GetMessage(), "step catchup:postgres@db-2 failed on db-2")
	require.Contains(t, ex.GetMessage(), "rolled back: primary was not activated and serves as before; started again: postgres on db-1, engine on app-1")

	require.Equal(t, driver.RolePrimary, ts.db1["postgres"].Role(), "the primary database runs again")
	require.Equal(t, driver.RolePrimary, ts.app1["engine"].Role(), "and the engine on it")
	require.Equal(t, driver.RoleStandby, ts.db2["postgres"].Role())
	require.Equal(t, driver.RoleStopped, ts.app2["engine"].Role())
	pg, engine := stepOf(t, ex, "rollback:postgres@db-1"), stepOf(t, ex, "rollback:engine@app-1")
	require.Equal(t, structs.StepSucceeded, structs.StepStateName(pg.GetState()))
	require.Equal(t, structs.StepSucceeded, structs.StepStateName(engine.GetState()))
	require.False(t, engine.GetStartedAt().AsTime().Before(pg.GetEndedAt().AsTime()), "the engine starts after the database it depends on")
	require.False(t, pg.GetStartedAt().AsTime().Before(stepOf(t, ex, "catchup:postgres@db-2").GetEndedAt().AsTime()),
		"no rollback while a step of the switchover still runs")
	require.Equal(t, structs.StepSkipped, structs.StepStateName(stepOf(t, ex, "activate:dr").GetState()))
	require.False(t, ex.GetHasRto(), "a rollback is not a recovery: no RTO")

	ts.requireActive(t, "primary", 1)
}

// TestExecutor_Switchover_Succeeds_SkipsRollback: the rollback steps of a
// switchover that succeeds never run.
func TestExecutor_Switchover_Succeeds_SkipsRollback(t *testing.T) {
	ts := newTwoSites(t, nil)
	ex := ts.waitEnded(t, ts.startExecution(t, &pb.StartExecutionRequest{Kind: "switchover", To: "dr"}).GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	for _, id := range []string{"rollback:postgres@db-1", "rollback:engine@app-1"} {
		require.Equal(t, structs.StepSkipped, structs.StepStateName(stepOf(t, ex, id).GetState()), id)
	}
	starts, _ := ts.app1["engine"].Counts()
	require.Zero(t, starts)
	require.Equal(t, driver.RoleStopped, ts.app1["engine"].Role())
}

// TestExecutor_Switchover_FailsAfterActivation_TheSameCommandFinishes: a
// promote that fails after dr was activated cannot be rolled back; the
// execution says what is down at dr and the command that finishes it, and
// that command derives the rest: bring dr up, reprotect primary. Its RTO
// counts from the first trigger, when the outage began.
func TestExecutor_Switchover_FailsAfterActivation_TheSameCommandFinishes(t *testing.T) {
	ts := newTwoSites(t, nil)
	ts.db2["postgres"].FailWith("promote", errors.New("pg_ctl promote: server did not promote in time"))

	first := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "switchover", To: "dr"})
	first = ts.waitEnded(t, first.GetId())
	require.Equal(t, "failed", structs.ExecStateName(first.GetState()), first.GetMessage())
	require.Contains(t, first.GetMessage(), "dr is active but not serving fully: postgres on db-2 (promote failed: ")
	require.Contains(t, first.GetMessage(), "engine on app-2 (start never ran)")
	require.Contains(t, first.GetMessage(), "finish with `drplane switchover --to dr`")
	require.Equal(t, structs.StepSkipped, structs.StepStateName(stepOf(t, first, "rollback:postgres@db-1").GetState()),
		"never a start at primary once dr is active")
	starts, _ := ts.db1["postgres"].Counts()
	require.Zero(t, starts)

	client := ts.c.client(ts.c.waitForLeader())
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		st, err := client.GetStatus(testCtx(t), &pb.GetStatusRequest{})
		if err != nil {
			return false, err
		}
		return len(st.GetDegraded()) > 0, fmt.Errorf("status shows production up at %s", st.GetActiveSite())
	})

	ts.db2["postgres"].FailWith("promote", nil)
	rest := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "switchover", To: "dr"})
	require.Equal(t, "switchover-finish", rest.GetPlan())
	rest = ts.waitEnded(t, rest.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(rest.GetState()), rest.GetMessage())
	require.Equal(t, driver.RolePrimary, ts.db2["postgres"].Role())
	require.Equal(t, driver.RolePrimary, ts.app2["engine"].Role())
	require.Equal(t, driver.RoleStandby, ts.db1["postgres"].Role(), "primary is reprotected")
	require.True(t, rest.GetHasRto())
	outage := rest.GetTriggeredAt().AsTime().Sub(first.GetTriggeredAt().AsTime()).Seconds()
	require.GreaterOrEqual(t, rest.GetRtoSeconds(), outage, "the RTO starts with the first trigger")

	_, err := client.StartExecution(testCtx(t), &pb.StartExecutionRequest{Kind: "switchover", To: "dr"})
	require.ErrorContains(t, err, `target site "dr" is already the active site`, "once finished there is nothing left to finish")
}

// TestExecutor_Switchover_CancelledWhileDraining_RollsBackWhatItStopped: a
// cancel while the engine is being stopped lets that stop end, then starts
// the engine again; the database, never stopped, is left alone.
func TestExecutor_Switchover_CancelledWhileDraining_RollsBackWhatItStopped(t *testing.T) {
	ts := newTwoSites(t, nil)
	release := make(chan struct{})
	ts.app1["engine"].StopBlock = release
	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "switchover", To: "dr"})
	client := ts.c.client(ts.c.waitForLeader())
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		resp, err := client.GetExecution(testCtx(t), &pb.GetExecutionRequest{Id: ex.GetId()})
		if err != nil {
			return false, err
		}
		st := structs.StepStateName(stepOf(t, resp.GetExecution(), "stop:engine@app-1").GetState())
		return st == structs.StepRunning, fmt.Errorf("stop:engine@app-1 is %s", st)
	})
	_, err := client.CancelExecution(testCtx(t), &pb.CancelExecutionRequest{Id: ex.GetId()})
	require.NoError(t, err)
	close(release)

	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "cancelled", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.Contains(t, ex.GetMessage(), "rolled back: primary was not activated and serves as before; started again: engine on app-1")
	require.Equal(t, structs.StepSucceeded, structs.StepStateName(stepOf(t, ex, "rollback:engine@app-1").GetState()))
	require.Equal(t, structs.StepSkipped, structs.StepStateName(stepOf(t, ex, "rollback:postgres@db-1").GetState()),
		"the database was never stopped: nothing to start")
	require.Equal(t, driver.RolePrimary, ts.app1["engine"].Role())
	starts, stops := ts.db1["postgres"].Counts()
	require.Zero(t, starts+stops)
}

// TestExecutor_Failover_FailsAfterActivation_TheSameCommandFinishes: an
// unplanned failover that cannot promote after dr was activated says
// what is down and that running it again finishes it.
func TestExecutor_Failover_FailsAfterActivation_TheSameCommandFinishes(t *testing.T) {
	ts := newTwoSites(t, nil)
	ts.db2["postgres"].FailWith("promote", errors.New("pg_ctl promote: server did not promote in time"))
	first := ts.waitEnded(t, ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failover", To: "dr", AllowDataLoss: true}).GetId())
	require.Equal(t, "failed", structs.ExecStateName(first.GetState()), first.GetMessage())
	require.Contains(t, first.GetMessage(), "dr is active but not serving fully: postgres on db-2 (promote failed: ")
	require.Contains(t, first.GetMessage(), "finish with `drplane failover --to dr`")

	ts.db2["postgres"].FailWith("promote", nil)
	rest := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failover", To: "dr"})
	require.Equal(t, "failover-finish", rest.GetPlan())
	require.NotContains(t, stepIDs(rest, plan.ActionFence), "fence@db-1", "no fence, no guard: dr is active already")
	rest = ts.waitEnded(t, rest.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(rest.GetState()), rest.GetMessage())
	require.Equal(t, driver.RolePrimary, ts.db2["postgres"].Role())
	require.Equal(t, driver.RolePrimary, ts.app2["engine"].Role())
	require.False(t, rest.GetHasRpo(), "the data loss, if any, is the first execution's: %s", rest.GetRpoDetail())
}

// requireActive asserts the leader's active site and epoch.
func (ts *twoSites) requireActive(t *testing.T, site string, epoch uint64) {
	t.Helper()
	st, err := ts.c.client(ts.c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, site, st.GetActiveSite())
	require.Equal(t, epoch, st.GetEpoch())
}
