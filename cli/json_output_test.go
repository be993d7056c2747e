package cli

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestJSONOutput_FieldNames pins the JSON names of the --json contract:
// scripts read them, so a rename must be a deliberate change to this list,
// never a side effect of renaming a Go field.
func TestJSONOutput_FieldNames(t *testing.T) {
	cases := []struct {
		value any
		tags  []string
	}{
		{ExecutionJSON{}, []string{"id", "kind", "trigger", "plan", "from", "to", "actor", "note,omitempty", "schedule,omitempty", "scheduled_for,omitempty", "exercises,omitempty", "started_at", "finished_at", "result", "message", "rto_seconds", "rto_detail,omitempty", "rpo_seconds", "rpo_detail,omitempty", "rto_target_seconds", "rpo_target_seconds", "pass", "steps,omitempty"}},
		{StepJSON{}, []string{"id", "action", "host,omitempty", "target,omitempty", "state", "attempt,omitempty", "started_at,omitempty", "ended_at,omitempty", "message,omitempty", "outputs,omitempty", "replayed,omitempty", "verified,omitempty"}},
		{StatusJSON{}, []string{"leader_id", "epoch", "active_site", "stale", "served_by", "sites", "servers", "agents", "automation,omitempty", "degraded", "replication,omitempty", "backups,omitempty", "readiness,omitempty", "drills,omitempty", "no_leader,omitempty"}},
		{ReplicationJSON{}, []string{"service", "mode", "primary,omitempty", "synchronous_standby_names", "synchronous", "degraded_since,omitempty", "degraded_reason,omitempty", "standbys", "exposure_seconds", "exposure_detail,omitempty"}},
		{StandbyJSON{}, []string{"host_id", "application_name,omitempty", "state,omitempty", "sync_state,omitempty", "flush_position,omitempty", "recorded_synchronous"}},
		{ProductionProblemJSON{}, []string{"host_id,omitempty", "service,omitempty", "problem"}},
		{AutomationJSON{}, []string{"enabled", "paused", "paused_by,omitempty", "blocked,omitempty", "site_lost", "would_fire", "reason,omitempty", "exposure_target,omitempty", "exposure_seconds,omitempty", "exposure_detail,omitempty"}},
		{SiteJSON{}, []string{"name", "kind", "active"}},
		{ServerJSON{}, []string{"id", "site", "address", "raft_address", "state", "voter", "last_index"}},
		{AgentJSON{}, []string{"host_id", "site", "address", "services", "reachable,omitempty", "lease_valid", "lease_granted", "fenced", "epoch,omitempty", "roles,omitempty", "lag,omitempty", "probe_error,omitempty", "problems,omitempty"}},
		{LagJSON{}, []string{"position", "lag_ms", "lag_bytes"}},
		{MembersJSON{}, []string{"leader_id", "servers"}},
		{SnapshotJSON{}, []string{"id", "name", "engine", "created_at", "files", "bytes", "reason"}},
		{BackupStatusJSON{}, []string{"host_id", "name", "service", "repository", "archiving", "scheduled", "backup_count", "newest,omitempty",
			"newest_full,omitempty", "restorable_from,omitempty", "restorable_until,omitempty", "last_verification,omitempty", "warnings"}},
		{BackupJSON{}, []string{"label", "kind", "prior,omitempty", "started_at", "stopped_at", "database_bytes", "backup_bytes", "repository_bytes", "checksum_errors,omitempty"}},
		{BackupVerificationJSON{}, []string{"label", "ok", "reason,omitempty", "at", "duration_ms"}},
		{BackupSetJSON{}, []string{"status", "backups"}},
		{PlanDrillJSON{}, []string{"plan", "last_execution,omitempty", "last_state,omitempty", "last_at,omitempty", "last_succeeded_at,omitempty", "interval,omitempty", "overdue", "overdue_reason,omitempty"}},
		{ScheduleJSON{}, []string{"name", "plan", "drill", "cron,omitempty", "timezone,omitempty", "every,omitempty", "due,omitempty", "next_slot,omitempty", "next_run,omitempty",
			"last_slot,omitempty", "last_execution,omitempty", "deferred,omitempty", "waiting,omitempty", "log,omitempty"}},
		{DeferralJSON{}, []string{"slot", "to,omitempty", "market,omitempty", "no_slot,omitempty"}},
		{ScheduleEventJSON{}, []string{"at", "slot", "detail"}},
		{KPIsJSON{}, []string{"from,omitempty", "to", "recorded_since,omitempty", "kpis"}},
		{KPIJSON{}, []string{"name", "value", "target", "pass", "detail"}},
	}
	for _, tc := range cases {
		typ := reflect.TypeOf(tc.value)
		t.Run(typ.Name(), func(t *testing.T) {
			var tags []string
			for i := 0; i < typ.NumField(); i++ {
				tags = append(tags, typ.Field(i).Tag.Get("json"))
			}
			require.Equal(t, tc.tags, tags)
		})
	}
}
