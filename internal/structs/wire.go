package structs

import (
	"github.com/drplane/drplane/internal/plan"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// The replicated state keeps actions, states, triggers and roles as the
// strings it always had, so existing logs and snapshots still decode; on
// the wire they are enums. This file is the one place that maps between
// the two, one table per enum.

// ArgRestartInPlace marks a start step by which the leader restarts, in
// place, a service an agent fenced because its lease lapsed (see
// RestartableInPlace); the agent checks the conditions again
// itself.
const ArgRestartInPlace = "restart_in_place"

// ActionRestore restores a snapshot on an agent: an operator's
// RunHostStep, or a restore plan for the state of the services it stops.
const ActionRestore = plan.ActionRestoreSnapshot

// ActionBackup takes a backup of a backup block; ActionVerifyBackup
// verifies its newest backup. An operator runs them on one host (drplane
// backup create|verify), and restore plans take a restoration point.
const (
	ActionBackup       = plan.ActionBackup
	ActionVerifyBackup = plan.ActionVerifyBackup
	// ActionRestoreBackup restores a stopped postgres service in place
	// from its backup block; restore plans send it.
	ActionRestoreBackup = plan.ActionRestoreBackup
)

// Arguments of a restore-backup step and of a restore (of a snapshot)
// step; see package plan.
const (
	ArgRestoreToTime    = plan.ArgRestoreToTime
	ArgRestoreLabel     = plan.ArgRestoreLabel
	ArgSnapshotID       = plan.ArgSnapshotID
	ArgSnapshotAt       = plan.ArgSnapshotAt
	ArgSnapshotAtBackup = plan.ArgSnapshotAtBackup
)

// Service roles as agents report them; the agents' drivers use the same
// strings.
const (
	RolePrimary = "primary"
	RoleStandby = "standby"
	RoleStopped = "stopped"
	RoleFenced  = "fenced"
	// RoleUnknown is a service whose status could not be read.
	RoleUnknown = "unknown"
)

// enumTable maps an enum to the string kept in the state and back. A
// string it does not know maps to the enum's zero value (_UNSPECIFIED),
// and that maps to "".
type enumTable[E comparable] struct {
	toEnum map[string]E
	toName map[E]string
}

func newEnumTable[E comparable](pairs map[string]E) enumTable[E] {
	t := enumTable[E]{toEnum: pairs, toName: make(map[E]string, len(pairs))}
	for name, e := range pairs {
		t.toName[e] = name
	}
	return t
}

var (
	actions = newEnumTable(map[string]pb.StepAction{
		plan.ActionFence: pb.StepAction_STEP_ACTION_FENCE, plan.ActionSnapshot: pb.StepAction_STEP_ACTION_SNAPSHOT,
		plan.ActionStop: pb.StepAction_STEP_ACTION_STOP, plan.ActionDemote: pb.StepAction_STEP_ACTION_DEMOTE,
		plan.ActionRsync: pb.StepAction_STEP_ACTION_RSYNC, plan.ActionPromote: pb.StepAction_STEP_ACTION_PROMOTE,
		plan.ActionStart: pb.StepAction_STEP_ACTION_START, plan.ActionCheck: pb.StepAction_STEP_ACTION_CHECK,
		plan.ActionHook: pb.StepAction_STEP_ACTION_HOOK, ActionRestore: pb.StepAction_STEP_ACTION_RESTORE,
		plan.ActionApproval: pb.StepAction_STEP_ACTION_APPROVAL, plan.ActionWait: pb.StepAction_STEP_ACTION_WAIT,
		plan.ActionNotify: pb.StepAction_STEP_ACTION_NOTIFY, plan.ActionGuard: pb.StepAction_STEP_ACTION_GUARD,
		plan.ActionActivate: pb.StepAction_STEP_ACTION_ACTIVATE, plan.ActionLeaseWait: pb.StepAction_STEP_ACTION_LEASE_WAIT,
		ActionSetSyncStandbys: pb.StepAction_STEP_ACTION_SET_SYNC_STANDBYS,
		ActionBackup:          pb.StepAction_STEP_ACTION_BACKUP, ActionVerifyBackup: pb.StepAction_STEP_ACTION_VERIFY_BACKUP,
		ActionRestoreBackup: pb.StepAction_STEP_ACTION_RESTORE_BACKUP,
	})
	stepStates = newEnumTable(map[string]pb.StepState{
		StepPending: pb.StepState_STEP_STATE_PENDING, StepRunning: pb.StepState_STEP_STATE_RUNNING,
		StepWaiting: pb.StepState_STEP_STATE_WAITING, StepSucceeded: pb.StepState_STEP_STATE_SUCCEEDED,
		StepFailed: pb.StepState_STEP_STATE_FAILED, StepSkipped: pb.StepState_STEP_STATE_SKIPPED,
		StepCancelled: pb.StepState_STEP_STATE_CANCELLED,
	})
	execStates = newEnumTable(map[string]pb.ExecutionState{
		ExecRunning: pb.ExecutionState_EXECUTION_STATE_RUNNING, ExecSucceeded: pb.ExecutionState_EXECUTION_STATE_SUCCEEDED,
		ExecFailed: pb.ExecutionState_EXECUTION_STATE_FAILED, ExecCancelled: pb.ExecutionState_EXECUTION_STATE_CANCELLED,
		ExecPlanned: pb.ExecutionState_EXECUTION_STATE_PLANNED,
	})
	triggers = newEnumTable(map[string]pb.ExecutionTrigger{
		TriggerManual: pb.ExecutionTrigger_EXECUTION_TRIGGER_MANUAL, TriggerAutomatic: pb.ExecutionTrigger_EXECUTION_TRIGGER_AUTOMATIC,
		TriggerScheduled: pb.ExecutionTrigger_EXECUTION_TRIGGER_SCHEDULED,
	})
	roles = newEnumTable(map[string]pb.ServiceRole{
		RolePrimary: pb.ServiceRole_SERVICE_ROLE_PRIMARY, RoleStandby: pb.ServiceRole_SERVICE_ROLE_STANDBY,
		RoleStopped: pb.ServiceRole_SERVICE_ROLE_STOPPED, RoleFenced: pb.ServiceRole_SERVICE_ROLE_FENCED,
		RoleUnknown: pb.ServiceRole_SERVICE_ROLE_UNKNOWN,
	})
	// The standby states as PostgreSQL's pg_stat_replication spells them,
	// which the drivers report as they read them.
	walSenderStates = newEnumTable(map[string]pb.WalSenderState{
		"startup": pb.WalSenderState_WAL_SENDER_STATE_STARTUP, "catchup": pb.WalSenderState_WAL_SENDER_STATE_CATCHUP,
		"streaming": pb.WalSenderState_WAL_SENDER_STATE_STREAMING, "backup": pb.WalSenderState_WAL_SENDER_STATE_BACKUP,
		"stopping": pb.WalSenderState_WAL_SENDER_STATE_STOPPING,
	})
	syncStates = newEnumTable(map[string]pb.SyncState{
		"async": pb.SyncState_SYNC_STATE_ASYNC, "potential": pb.SyncState_SYNC_STATE_POTENTIAL,
		"sync": pb.SyncState_SYNC_STATE_SYNC, "quorum": pb.SyncState_SYNC_STATE_QUORUM,
	})
)

// ActionToProto returns the wire form of a plan or agent action.
func ActionToProto(a string) pb.StepAction { return actions.toEnum[a] }

// ActionName returns the action's name as plans and journals spell it.
func ActionName(a pb.StepAction) string { return actions.toName[a] }

// StepStateToProto returns the wire form of an ExecStep's state.
func StepStateToProto(s string) pb.StepState { return stepStates.toEnum[s] }

// StepStateName returns the state as the FSM and the CLI spell it.
func StepStateName(s pb.StepState) string { return stepStates.toName[s] }

// ExecStateToProto returns the wire form of an Execution's state.
func ExecStateToProto(s string) pb.ExecutionState { return execStates.toEnum[s] }

// ExecStateName returns the state as the FSM and the CLI spell it.
func ExecStateName(s pb.ExecutionState) string { return execStates.toName[s] }

// TriggerToProto returns the wire form of an Execution's trigger.
func TriggerToProto(t string) pb.ExecutionTrigger { return triggers.toEnum[t] }

// TriggerName returns the trigger as the FSM and the CLI spell it.
func TriggerName(t pb.ExecutionTrigger) string { return triggers.toName[t] }

// RoleToProto returns the wire form of a service role.
func RoleToProto(r string) pb.ServiceRole { return roles.toEnum[r] }

// RoleName returns the role as drivers and the CLI spell it.
func RoleName(r pb.ServiceRole) string { return roles.toName[r] }

// WalSenderStateToProto returns the wire form of a standby's state as its
// primary reports it (pg_stat_replication.state).
func WalSenderStateToProto(s string) pb.WalSenderState { return walSenderStates.toEnum[s] }

// WalSenderStateName returns the state as PostgreSQL spells it.
func WalSenderStateName(s pb.WalSenderState) string { return walSenderStates.toName[s] }

// SyncStateToProto returns the wire form of how a primary counts a
// standby for synchronous commit (pg_stat_replication.sync_state).
func SyncStateToProto(s string) pb.SyncState { return syncStates.toEnum[s] }

// SyncStateName returns the sync state as PostgreSQL spells it.
func SyncStateName(s pb.SyncState) string { return syncStates.toName[s] }

// RestartableInPlace reports whether a service fenced for cause may be
// restarted in place by a leader that renewed the lease in the epoch of
// the fence, with the service's site still active: the fence only bridged
// a silence of the leaders, nothing failed over. A service fenced because
// another site became active, or by a plan, never is.
func RestartableInPlace(cause pb.FenceCause) bool {
	switch cause {
	case pb.FenceCause_FENCE_CAUSE_LEASE_LAPSED, pb.FenceCause_FENCE_CAUSE_BOOT_WINDOW:
		return true
	}
	return false
}
