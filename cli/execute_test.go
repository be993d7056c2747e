package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeExecutions answers the execution calls of the CLI.
type fakeExecutions struct {
	fakeOperator
	started []*pb.StartExecutionRequest
	list    []*pb.Execution
	plans   []*pb.PlanScenario
}

func (f *fakeExecutions) StartExecution(_ context.Context, req *pb.StartExecutionRequest, _ ...grpc.CallOption) (*pb.StartExecutionResponse, error) {
	f.started = append(f.started, req)
	ex := sampleExecution("failover-1", "failover", "running")
	if req.GetDryRun() {
		ex.State = pb.ExecutionState_EXECUTION_STATE_PLANNED
	}
	return &pb.StartExecutionResponse{Execution: ex}, nil
}

func (f *fakeExecutions) GetExecution(context.Context, *pb.GetExecutionRequest, ...grpc.CallOption) (*pb.GetExecutionResponse, error) {
	return &pb.GetExecutionResponse{Execution: sampleExecution("failover-1", "failover", "failed")}, nil
}

func (f *fakeExecutions) ListExecutions(context.Context, *pb.ListExecutionsRequest, ...grpc.CallOption) (*pb.ListExecutionsResponse, error) {
	return &pb.ListExecutionsResponse{Executions: f.list}, nil
}

func (f *fakeExecutions) ListPlans(context.Context, *pb.ListPlansRequest, ...grpc.CallOption) (*pb.ListPlansResponse, error) {
	return &pb.ListPlansResponse{Plans: f.plans}, nil
}

func sampleExecution(id, kind, state string) *pb.Execution {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ex := &pb.Execution{Id: id, Kind: kind, Plan: kind, From: "primary", To: "dr", Trigger: pb.ExecutionTrigger_EXECUTION_TRIGGER_MANUAL, Actor: "cli:ops",
		State: structs.ExecStateToProto(state), StartedAt: timestamppb.New(t0), TriggeredAt: timestamppb.New(t0),
		RtoTargetSeconds: 600, RpoTargetSeconds: 60, MaxDataLossSeconds: 30, HasRpo: true, RpoSeconds: 0.5, RpoDetail: "postgres@db-2 0.5s",
		Steps: []*pb.ExecutionStep{{Step: &pb.PlanStep{Id: "promote:postgres@db-2", Phase: "promote", Action: pb.StepAction_STEP_ACTION_PROMOTE, Host: "db-2", Target: "postgres", TimeoutMs: 120000, OnFailure: "abort"},
			State: pb.StepState_STEP_STATE_PENDING}}}
	if state == "failed" {
		ex.Message = "step promote:postgres@db-2 failed on db-2: pg_ctl promote: exit status 1"
		ex.Steps[0].State, ex.Steps[0].Message = pb.StepState_STEP_STATE_FAILED, "pg_ctl promote: exit status 1"
		ex.Steps[0].StartedAt, ex.Steps[0].EndedAt = timestamppb.New(t0), timestamppb.New(t0.Add(time.Second))
	}
	if state == "succeeded" {
		ex.FinishedAt, ex.HasRto, ex.RtoSeconds = timestamppb.New(t0.Add(5*time.Second)), true, 4.5
	}
	return ex
}

func TestExecute_WithoutTerminalOrYes_Refuses(t *testing.T) {
	fake := &fakeExecutions{}
	f, out := testFactory(&fake.fakeOperator)
	f.Operator = func() (pb.OperatorClient, func(), error) { return fake, func() {}, nil }
	f.IsTerminal = func() bool { return false }
	root := NewRootCmd(f)
	root.SetArgs([]string{"failover", "--to", "dr"})
	err := root.Execute()
	require.ErrorContains(t, err, "pass --yes")
	require.Len(t, fake.started, 1, "only the dry run reached the server")
	require.True(t, fake.started[0].GetDryRun())
	require.Contains(t, out.String(), "promote:postgres@db-2", "the plan is shown before refusing")
	require.Contains(t, out.String(), "expected data loss: 0.5s")
}

func TestExecute_FailureNamesStepAndHost(t *testing.T) {
	fake := &fakeExecutions{}
	f, out := testFactory(&fake.fakeOperator)
	f.Operator = func() (pb.OperatorClient, func(), error) { return fake, func() {}, nil }
	root := NewRootCmd(f)
	root.SetArgs([]string{"failover", "--to", "dr", "--yes"})
	err := root.Execute()
	require.ErrorContains(t, err, "step promote:postgres@db-2 failed on db-2")
	require.False(t, fake.started[0].GetDryRun())
	require.Contains(t, out.String(), "failed    promote:postgres@db-2 (db-2) in 1s")
}

func TestExecute_ToRequired(t *testing.T) {
	f, _ := testFactory(&fakeOperator{})
	root := NewRootCmd(f)
	root.SetArgs([]string{"switchover", "--yes"})
	require.ErrorContains(t, root.Execute(), "--to is required")
}

func TestReport_Markdown(t *testing.T) {
	older := sampleExecution("failover-0", "failover", "succeeded")
	older.RtoSeconds, older.RpoSeconds = 9.5, 2
	fake := &fakeExecutions{list: []*pb.Execution{
		sampleExecution("drill-1", "drill", "succeeded"),
		older,
		sampleExecution("failover-1", "failover", "succeeded"),
		sampleExecution("failover-2", "failover", "running"),
	}, plans: []*pb.PlanScenario{
		{Name: "failover", Kind: "failover", RtoTargetSeconds: 600, RpoTargetSeconds: 60, HasRpoTarget: true},
		{Name: "drill", Kind: "drill", RtoTargetSeconds: 600, RpoTargetSeconds: 60, HasRpoTarget: true},
		{Name: "live-system-failure", Kind: "restart", RtoTargetSeconds: 900, HasRpoTarget: true},
	}}
	f, out := testFactory(&fake.fakeOperator)
	f.Operator = func() (pb.OperatorClient, func(), error) { return fake, func() {}, nil }
	root := NewRootCmd(f)
	root.SetArgs([]string{"report", "--markdown"})
	require.NoError(t, root.Execute())
	got := out.String()
	require.Contains(t, got, "| Scenario | Kind | RTO target | RTO last | RTO worst | RPO target | RPO last | RPO worst | Last exercised | Pass |")
	require.Contains(t, got, "| failover | failover | 10m0s | 4.5s | 9.5s | 1m0s | 0.5s | 2.0s | 2026-12-01 ")
	require.Contains(t, got, " (failover-1) | yes |", "the last run is the newest")
	require.Contains(t, got, "| drill | drill | 10m0s | 4.5s | 4.5s | 1m0s | 0.5s | 0.5s | ")
	require.Contains(t, got, "| live-system-failure | restart | 15m0s | - | - | 0s | - | - | never exercised | - |", "a scenario never exercised says so, with its zero-loss target")
	require.NotContains(t, got, "failover-2", "a running execution is not reported yet")
	require.Equal(t, 3, strings.Count(got, "| succeeded |"), "the DR test log has a row per ended execution")
}

// TestPass_ZeroRPOTarget: an RPO target of 0s passes only with a recorded
// RPO of 0; a zero target that was never set is no target.
func TestPass_ZeroRPOTarget(t *testing.T) {
	cases := []struct {
		name      string
		hasTarget bool
		hasRPO    bool
		rpo       float64
		want      bool
	}{
		{"zero data loss recorded", true, true, 0, true},
		{"some data lost", true, true, 0.2, false},
		{"rpo unknown", true, false, 0, false},
		{"no target", false, true, 3, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := sampleExecution("failover-1", "failover", "succeeded")
			ex.RpoTargetSeconds, ex.HasRpoTarget, ex.HasRpo, ex.RpoSeconds = 0, tc.hasTarget, tc.hasRPO, tc.rpo
			require.Equal(t, tc.want, pass(ex))
		})
	}
}

func TestParseRestoreTime(t *testing.T) {
	want := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for _, s := range []string{"2026-12-03 09:00:00+00", "2026-12-03 10:00:00+01:00", "2026-12-03T09:00:00Z", "2026-12-03 09:00:00Z"} {
		got, err := parseRestoreTime(s)
		require.NoError(t, err, s)
		require.True(t, want.Equal(got), "%s: %s", s, got)
	}
	_, err := parseRestoreTime("2026-12-03 09:00:00")
	require.EqualError(t, err, `--to-time "2026-12-03 09:00:00" is not a time with its zone; expected e.g. "2026-12-03 09:00:00+00" or "2026-12-03T09:00:00Z"`)
}
