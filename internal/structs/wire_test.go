package structs

import (
	"testing"

	"github.com/drplane/drplane/internal/plan"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

func TestWire_Actions_RoundTrip(t *testing.T) {
	all := append(append([]string{ActionSetSyncStandbys}, plan.AgentActions...), plan.ControlActions...)
	seen := map[pb.StepAction]string{}
	for _, a := range all {
		t.Run(a, func(t *testing.T) {
			e := ActionToProto(a)
			require.NotEqual(t, pb.StepAction_STEP_ACTION_UNSPECIFIED, e, "every plan action has an enum value")
			require.Empty(t, seen[e], "%s and %s share %s", a, seen[e], e)
			seen[e] = a
			require.Equal(t, a, ActionName(e))
		})
	}
	// Every enum value but the zero one names an action.
	require.Len(t, seen, len(pb.StepAction_name)-1)
}

func TestWire_States_RoundTrip(t *testing.T) {
	cases := []struct {
		name  string
		round func(string) string
		names []string
		enums int
	}{
		{"step state", func(s string) string { return StepStateName(StepStateToProto(s)) },
			[]string{StepPending, StepRunning, StepWaiting, StepSucceeded, StepFailed, StepSkipped, StepCancelled}, len(pb.StepState_name)},
		{"execution state", func(s string) string { return ExecStateName(ExecStateToProto(s)) },
			[]string{ExecRunning, ExecSucceeded, ExecFailed, ExecCancelled, ExecPlanned}, len(pb.ExecutionState_name)},
		{"trigger", func(s string) string { return TriggerName(TriggerToProto(s)) },
			[]string{TriggerManual, TriggerAutomatic, TriggerScheduled}, len(pb.ExecutionTrigger_name)},
		{"role", func(s string) string { return RoleName(RoleToProto(s)) },
			[]string{RolePrimary, RoleStandby, RoleStopped, RoleFenced, RoleUnknown}, len(pb.ServiceRole_name)},
		{"wal sender state", func(s string) string { return WalSenderStateName(WalSenderStateToProto(s)) },
			[]string{"startup", "catchup", "streaming", "backup", "stopping"}, len(pb.WalSenderState_name)},
		{"sync state", func(s string) string { return SyncStateName(SyncStateToProto(s)) },
			[]string{"async", "potential", "sync", "quorum"}, len(pb.SyncState_name)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range tc.names {
				require.Equal(t, n, tc.round(n), "the CLI prints what the state holds")
			}
			require.Len(t, tc.names, tc.enums-1, "every enum value but the zero one is mapped")
			require.Empty(t, tc.round("no-such-value"), "an unknown value maps to _UNSPECIFIED and back to empty")
		})
	}
}

func TestWire_Strings_MatchState(t *testing.T) {
	// The state and the CLI's --json output keep these exact strings.
	require.Equal(t, "succeeded", ExecStateName(pb.ExecutionState_EXECUTION_STATE_SUCCEEDED))
	require.Equal(t, "automatic", TriggerName(pb.ExecutionTrigger_EXECUTION_TRIGGER_AUTOMATIC))
	require.Equal(t, "lease-wait", ActionName(pb.StepAction_STEP_ACTION_LEASE_WAIT))
	require.Equal(t, "waiting", StepStateName(pb.StepState_STEP_STATE_WAITING))
	require.Equal(t, "fenced", RoleName(pb.ServiceRole_SERVICE_ROLE_FENCED))
	require.Equal(t, "set-sync-standbys", ActionName(pb.StepAction_STEP_ACTION_SET_SYNC_STANDBYS))
	// PostgreSQL's spelling, as the drivers read it.
	require.Equal(t, pb.WalSenderState_WAL_SENDER_STATE_STREAMING, WalSenderStateToProto("streaming"))
	require.Equal(t, pb.SyncState_SYNC_STATE_SYNC, SyncStateToProto("sync"))
}

func TestWire_RestartableInPlace(t *testing.T) {
	cases := []struct {
		cause pb.FenceCause
		want  bool
	}{
		{pb.FenceCause_FENCE_CAUSE_UNSPECIFIED, false},
		{pb.FenceCause_FENCE_CAUSE_LEASE_LAPSED, true},
		{pb.FenceCause_FENCE_CAUSE_BOOT_WINDOW, true},
		{pb.FenceCause_FENCE_CAUSE_OTHER_SITE_ACTIVE, false},
		{pb.FenceCause_FENCE_CAUSE_PLAN_STEP, false},
	}
	require.Len(t, cases, len(pb.FenceCause_name), "every cause is decided")
	for _, tc := range cases {
		t.Run(tc.cause.String(), func(t *testing.T) {
			require.Equal(t, tc.want, RestartableInPlace(tc.cause))
		})
	}
}
