package hostagent

import (
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// syncStep is a set-sync-standbys step on target in epoch 1.
func syncStep(id, target string, args map[string]string) *pb.ExecuteRequest {
	return &pb.ExecuteRequest{ExecutionId: "sync", StepId: id, Epoch: 1, Action: pb.StepAction_STEP_ACTION_SET_SYNC_STANDBYS,
		Target: target, Args: args}
}

// TestAgent_SetSyncStandbys: the step sets the primary's synchronous
// standbys and outputs its position; a probe reports the setting and the
// standbys with typed states; a re-sent step is answered from the
// journal with the same position.
func TestAgent_SetSyncStandbys(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RolePrimary, "app": driver.RoleStopped})
	pg := ta.fakes["pg"]
	pg.SetStandbys([]driver.StandbyReplication{
		{ApplicationName: "db-2", ClientAddr: "10.0.0.2", State: "streaming", SyncState: "async", FlushPosition: driver.FakePosition},
	})

	req := syncStep("set-1", "pg", map[string]string{structs.ArgSyncStandbys: "db-2,db-3"})
	lines, out := ta.runStepOK(req)
	require.Equal(t, driver.FakePosition, out[structs.OutputSyncPosition])
	require.True(t, hasLine(lines, `FIRST 2 ("db-2", "db-3")`), "progress: %q", lines)
	setting, sets := pg.SyncStandbyNames()
	require.Equal(t, `FIRST 2 ("db-2", "db-3")`, setting)

	r := serviceStatus(ta.quietProbe(), "pg").GetReplication()
	require.Equal(t, `FIRST 2 ("db-2", "db-3")`, r.GetSynchronousStandbyNames())
	require.Len(t, r.GetStandbys(), 1)
	s := r.GetStandbys()[0]
	require.Equal(t, "db-2", s.GetApplicationName())
	require.Equal(t, "10.0.0.2", s.GetClientAddr())
	require.Equal(t, pb.WalSenderState_WAL_SENDER_STATE_STREAMING, s.GetState())
	require.Equal(t, pb.SyncState_SYNC_STATE_ASYNC, s.GetSyncState())
	require.Equal(t, driver.FakePosition, s.GetFlushPosition())

	_, again, err := ta.execute(req)
	require.NoError(t, err)
	require.True(t, again.GetReplayed())
	require.Equal(t, driver.FakePosition, again.GetOutputs()[structs.OutputSyncPosition], "the journal keeps the output")
	_, setsAfter := pg.SyncStandbyNames()
	require.Equal(t, sets, setsAfter, "answered from the journal")

	// An empty value means none; "*" any standby.
	ta.runStepOK(syncStep("set-any", "pg", map[string]string{structs.ArgSyncStandbys: "*"}))
	setting, _ = pg.SyncStandbyNames()
	require.Equal(t, "*", setting)
	ta.runStepOK(syncStep("set-none", "pg", map[string]string{structs.ArgSyncStandbys: ""}))
	setting, _ = pg.SyncStandbyNames()
	require.Empty(t, setting)

	// A primary that is gone takes no setting: the step fails.
	pg.Crash()
	_, res, err := ta.execute(syncStep("set-stopped", "pg", map[string]string{structs.ArgSyncStandbys: "db-2"}))
	require.NoError(t, err)
	require.False(t, res.GetOk())
	require.Contains(t, res.GetMessage(), "set-sync-standbys pg failed")
}

// TestAgent_SetSyncStandbys_Rejected: a step the agent cannot run as
// asked is refused before anything changes, naming what is wrong.
func TestAgent_SetSyncStandbys_Rejected(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RolePrimary, "app": driver.RoleStopped}, func(ta *testAgent) {
		// A process service's real driver has no synchronous standbys.
		ta.real = true
		ta.cfg.Services = append(ta.cfg.Services, config.ServiceConfig{
			Name: "worker", Driver: config.DriverProcess, Command: []string{"/bin/sleep", "60"}, StopTimeout: time.Second})
	})
	cases := []struct {
		name   string
		target string
		args   map[string]string
		want   string
	}{
		{"invalid name", "pg", map[string]string{structs.ArgSyncStandbys: `db-2",x`}, "set-sync-standbys: sync_standbys: invalid standby application name"},
		{"empty name in list", "pg", map[string]string{structs.ArgSyncStandbys: "db-2,,db-3"}, "sync_standbys: invalid standby application name"},
		{"any among names", "pg", map[string]string{structs.ArgSyncStandbys: "db-2,*"}, "sync_standbys: invalid standby application name"},
		{"no argument", "pg", nil, "sync_standbys is required"},
		{"undeclared service", "redis", map[string]string{structs.ArgSyncStandbys: "db-2"}, `service "redis" is not declared`},
		{"driver without standbys", "worker", map[string]string{structs.ArgSyncStandbys: "db-2"}, `service "worker" (driver process) has no synchronous standbys`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ta.execute(syncStep(string(rune('a'+i)), tc.target, tc.args))
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			require.Contains(t, status.Convert(err).Message(), tc.want)
		})
	}
	_, sets := ta.fakes["pg"].SyncStandbyNames()
	require.Zero(t, sets, "nothing changed")
}

// TestAgent_SetSyncStandbys_InterruptedRunsAgain: a set-sync-standbys
// step the agent stopped during is idempotent: the re-sent step runs
// again and outputs the position.
func TestAgent_SetSyncStandbys_InterruptedRunsAgain(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RolePrimary, "app": driver.RoleStopped})
	journalIntent(t, ta.dataDir, "sync", "set-1", structs.ActionSetSyncStandbys, "pg")
	_, res, err := ta.execute(syncStep("set-1", "pg", map[string]string{structs.ArgSyncStandbys: "db-2"}))
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	require.Equal(t, driver.FakePosition, res.GetOutputs()[structs.OutputSyncPosition])
	setting, sets := ta.fakes["pg"].SyncStandbyNames()
	require.Equal(t, `FIRST 1 ("db-2")`, setting)
	require.Equal(t, 1, sets)
}

// TestAgent_Promote_SyncStandbys: a promote step's sync_standbys reach
// the driver; an invalid one is refused before the promote runs.
func TestAgent_Promote_SyncStandbys(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	promote := func(id, arg string) *pb.ExecuteRequest {
		return &pb.ExecuteRequest{ExecutionId: "failover", StepId: id, Epoch: 1, Action: pb.StepAction_STEP_ACTION_PROMOTE,
			Target: "pg", Args: map[string]string{structs.ArgSyncStandbys: arg}}
	}
	_, _, err := ta.execute(promote("bad", "db 2"))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "promote: sync_standbys: invalid standby application name")
	promotes, _ := ta.fakes["pg"].Transitions()
	require.Zero(t, promotes)

	ta.runStepOK(promote("strict", structs.SyncAnyStandby))
	setting, _ := ta.fakes["pg"].SyncStandbyNames()
	require.Equal(t, "*", setting)
	require.Equal(t, "*", serviceStatus(ta.quietProbe(), "pg").GetReplication().GetSynchronousStandbyNames())
}

// TestAgent_SetSyncStandbys_StaleLeaderTermRefused: a step from a leader
// of an older term than one the agent took is refused and changes
// nothing; a deposed leader's late "stop waiting" cannot undo what its
// successor set (invariant 8). Equal and later terms, and steps without
// a term (an older leader), are taken. The terms are kept in data_dir:
// a restarted agent refuses the stale step as well.
func TestAgent_SetSyncStandbys_StaleLeaderTermRefused(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RolePrimary, "app": driver.RoleStopped})
	pg := ta.fakes["pg"]
	step := func(id, names, term string) *pb.ExecuteRequest {
		return syncStep(id, "pg", map[string]string{structs.ArgSyncStandbys: names, structs.ArgLeaderTerm: term})
	}

	ta.runStepOK(step("t7", "db-2", "7"))
	_, res, err := ta.execute(step("t6", "", "6"))
	require.NoError(t, err)
	require.False(t, res.GetOk())
	require.Contains(t, res.GetMessage(), "a leader of term 7 set the synchronous standbys of pg since this step's leader (term 6) sent it")
	setting, _ := pg.SyncStandbyNames()
	require.Equal(t, `FIRST 1 ("db-2")`, setting, "the stale step changed nothing")

	ta.runStepOK(step("t7-again", "db-2", "7"))
	ta.runStepOK(step("t8", "", "8"))
	setting, _ = pg.SyncStandbyNames()
	require.Empty(t, setting)
	ta.runStepOK(syncStep("no-term", "pg", map[string]string{structs.ArgSyncStandbys: "db-2"}))

	_, _, err = ta.execute(step("bad", "db-2", "seven"))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)

	// The term outlives the agent: a step delayed across its restart is
	// refused too.
	ta.restart()
	_, res, err = ta.execute(step("t7-late", "", "7"))
	require.NoError(t, err)
	require.False(t, res.GetOk())
	require.Contains(t, res.GetMessage(), "a leader of term 8 set the synchronous standbys of pg since this step's leader (term 7) sent it")
}
