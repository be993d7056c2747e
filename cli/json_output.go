package cli

import "time"

// The types in this file are the --json contract of the operator commands:
// scripts, the demo and the end-to-end harnesses decode the output into
// them instead of keeping their own copies, so a renamed or retyped field
// breaks their build rather than reading as zero. The JSON names and
// meanings of existing fields must not change; add fields, never repurpose
// them.

// ExecutionJSON is one execution in `drplane history --json` (a list,
// without steps), `drplane history ID --json` (one, with its steps) and
// `drplane report --json` (a list of the ended executions, without steps).
type ExecutionJSON struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Trigger string `json:"trigger"`
	Plan    string `json:"plan"`
	From    string `json:"from"`
	To      string `json:"to"`
	Actor   string `json:"actor"`
	Note    string `json:"note,omitempty"`
	// Schedule and ScheduledFor: the schedule block whose slot started it.
	Schedule     string     `json:"schedule,omitempty"`
	ScheduledFor *time.Time `json:"scheduled_for,omitempty"`
	// Exercises, for a drill, is the plan it practises.
	Exercises  string     `json:"exercises,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Result     string     `json:"result"`
	Message    string     `json:"message"`
	RTOSeconds *float64   `json:"rto_seconds"`
	// RTODetail says where the RTO counts from, or why it is unknown.
	RTODetail  string   `json:"rto_detail,omitempty"`
	RPOSeconds *float64 `json:"rpo_seconds"`
	// RPODetail says what the RPO bounds and from what, or why it is
	// unknown.
	RPODetail        string     `json:"rpo_detail,omitempty"`
	RTOTargetSeconds *float64   `json:"rto_target_seconds"`
	RPOTargetSeconds *float64   `json:"rpo_target_seconds"`
	Pass             bool       `json:"pass"`
	Steps            []StepJSON `json:"steps,omitempty"`
}

// StepJSON is one step of an ExecutionJSON, as `drplane history ID --json`
// prints it.
type StepJSON struct {
	ID       string            `json:"id"`
	Action   string            `json:"action"`
	Host     string            `json:"host,omitempty"`
	Target   string            `json:"target,omitempty"`
	State    string            `json:"state"`
	Attempt  int32             `json:"attempt,omitempty"`
	Started  *time.Time        `json:"started_at,omitempty"`
	Ended    *time.Time        `json:"ended_at,omitempty"`
	Message  string            `json:"message,omitempty"`
	Outputs  map[string]string `json:"outputs,omitempty"`
	Replayed bool              `json:"replayed,omitempty"`
	// Verified is true when the agent stopped while the step ran and
	// found its effect in place when the step was re-sent.
	Verified bool `json:"verified,omitempty"`
}

// StatusJSON is the stable shape of `drplane status --json`.
type StatusJSON struct {
	LeaderID   string          `json:"leader_id"`
	Epoch      uint64          `json:"epoch"`
	ActiveSite string          `json:"active_site"`
	Stale      bool            `json:"stale"`
	ServedBy   string          `json:"served_by"`
	Sites      []SiteJSON      `json:"sites"`
	Servers    []ServerJSON    `json:"servers"`
	Agents     []AgentJSON     `json:"agents"`
	Automation *AutomationJSON `json:"automation,omitempty"`
	// Degraded is what is down at the active site by the leader's probes:
	// empty when production runs whole, null in a stale answer (no probes).
	Degraded []ProductionProblemJSON `json:"degraded"`
	// Replication is each data service's replication; absent from a
	// stale answer.
	Replication []ReplicationJSON `json:"replication,omitempty"`
	// Backups are the backup blocks the agents reported, per host.
	Backups []BackupStatusJSON `json:"backups,omitempty"`
	// Readiness is the verdict on a failover to each data site that is
	// not active (drplane ready); absent from a stale answer.
	Readiness []ReadinessJSON `json:"readiness,omitempty"`
	// Drills are, per plan with a schedule or a drill on record, its last
	// drill and whether it is overdue.
	Drills []PlanDrillJSON `json:"drills,omitempty"`
	// NoLeader says why no leader answered; the rest is then what the
	// server that answered knows (stale).
	NoLeader string `json:"no_leader,omitempty"`
}

// ReplicationJSON is one data service's replication in `drplane status
// --json`. Mode is "async", "sync" or "sync-strict"; Synchronous are the
// hosts the replicated state records as holding every acknowledged commit;
// DegradedSince is set while sync mode is degraded to async.
// ExposureSeconds is what a failover of the service would lose now, null
// when it cannot be bounded (ExposureDetail says why).
type ReplicationJSON struct {
	Service                 string        `json:"service"`
	Mode                    string        `json:"mode"`
	Primary                 string        `json:"primary,omitempty"`
	SynchronousStandbyNames string        `json:"synchronous_standby_names"`
	Synchronous             []string      `json:"synchronous"`
	DegradedSince           *time.Time    `json:"degraded_since,omitempty"`
	DegradedReason          string        `json:"degraded_reason,omitempty"`
	Standbys                []StandbyJSON `json:"standbys"`
	ExposureSeconds         *float64      `json:"exposure_seconds"`
	ExposureDetail          string        `json:"exposure_detail,omitempty"`
}

// StandbyJSON is one standby of a ReplicationJSON. State and SyncState
// are its primary's view of it, as PostgreSQL spells them
// (pg_stat_replication); empty when the primary does not list it.
type StandbyJSON struct {
	HostID              string `json:"host_id"`
	ApplicationName     string `json:"application_name,omitempty"`
	State               string `json:"state,omitempty"`
	SyncState           string `json:"sync_state,omitempty"`
	FlushPosition       string `json:"flush_position,omitempty"`
	RecordedSynchronous bool   `json:"recorded_synchronous"`
}

// ProductionProblemJSON is one thing down at the active site; HostID is
// empty for a problem of the whole site, Service for the host itself.
type ProductionProblemJSON struct {
	HostID  string `json:"host_id,omitempty"`
	Service string `json:"service,omitempty"`
	Problem string `json:"problem"`
}

// AutomationJSON is automatic failover's state and the live RPO exposure
// in StatusJSON; absent from stale answers.
type AutomationJSON struct {
	Enabled   bool   `json:"enabled"`
	Paused    bool   `json:"paused"`
	PausedBy  string `json:"paused_by,omitempty"`
	Blocked   string `json:"blocked,omitempty"`
	SiteLost  bool   `json:"site_lost"`
	WouldFire bool   `json:"would_fire"`
	Reason    string `json:"reason,omitempty"`
	// ExposureSeconds is what a failover to ExposureTarget would lose
	// now; nil when it cannot be judged.
	ExposureTarget  string   `json:"exposure_target,omitempty"`
	ExposureSeconds *float64 `json:"exposure_seconds,omitempty"`
	ExposureDetail  string   `json:"exposure_detail,omitempty"`
}

// SiteJSON is one site in StatusJSON.
type SiteJSON struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Active bool   `json:"active"`
}

// ServerJSON is one control-plane server in StatusJSON and MembersJSON.
type ServerJSON struct {
	ID          string `json:"id"`
	Site        string `json:"site"`
	Address     string `json:"address"`
	RaftAddress string `json:"raft_address"`
	State       string `json:"state"`
	Voter       bool   `json:"voter"`
	LastIndex   uint64 `json:"last_index"`
}

// AgentJSON is one agent in StatusJSON: its registration and the leader's
// latest probe of it.
type AgentJSON struct {
	HostID   string   `json:"host_id"`
	Site     string   `json:"site"`
	Address  string   `json:"address"`
	Services []string `json:"services"`
	// The leader's latest probe; absent in stale answers.
	Reachable  *bool `json:"reachable,omitempty"`
	LeaseValid bool  `json:"lease_valid"`
	// LeaseGranted is false for a valid lease that is only the agent's
	// boot window: no leader has vouched for its primaries yet.
	LeaseGranted bool               `json:"lease_granted"`
	Fenced       bool               `json:"fenced"`
	Epoch        uint64             `json:"epoch,omitempty"`
	Roles        map[string]string  `json:"roles,omitempty"`
	Lag          map[string]LagJSON `json:"lag,omitempty"`
	ProbeError   string             `json:"probe_error,omitempty"`
	// Problems are the host problems the agent reported in that probe.
	Problems []HostProblemJSON `json:"problems,omitempty"`
}

// HostProblemJSON is one problem an agent reported on its host, in
// AgentJSON. Kind is "data_dir_unwritable".
type HostProblemJSON struct {
	Kind    string     `json:"kind"`
	Message string     `json:"message"`
	Since   *time.Time `json:"since,omitempty"`
}

// LagJSON is a service's replication position and lag in AgentJSON.
type LagJSON struct {
	Position string `json:"position"`
	LagMs    uint64 `json:"lag_ms"`
	LagBytes uint64 `json:"lag_bytes"`
}

// MembersJSON is the stable shape of `drplane members --json`.
type MembersJSON struct {
	LeaderID string       `json:"leader_id"`
	Servers  []ServerJSON `json:"servers"`
}

// SnapshotJSON is one snapshot in `drplane snapshot list --json`.
type SnapshotJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Engine    string    `json:"engine"`
	CreatedAt time.Time `json:"created_at"`
	Files     int64     `json:"files"`
	Bytes     int64     `json:"bytes"`
	Reason    string    `json:"reason"`
}

// BackupStatusJSON is one backup block on one host, in `drplane status
// --json` (backups) and `drplane backup list --json`.
type BackupStatusJSON struct {
	HostID     string `json:"host_id"`
	Name       string `json:"name"`
	Service    string `json:"service"`
	Repository string `json:"repository"`
	// Archiving: the service is primary on the host and its WAL goes to
	// the repository. Scheduled: the host takes the scheduled backups.
	Archiving       bool                    `json:"archiving"`
	Scheduled       bool                    `json:"scheduled"`
	BackupCount     uint32                  `json:"backup_count"`
	Newest          *BackupJSON             `json:"newest,omitempty"`
	NewestFull      *BackupJSON             `json:"newest_full,omitempty"`
	RestorableFrom  *time.Time              `json:"restorable_from,omitempty"`
	RestorableUntil *time.Time              `json:"restorable_until,omitempty"`
	Verification    *BackupVerificationJSON `json:"last_verification,omitempty"`
	Warnings        []string                `json:"warnings"`
}

// BackupJSON is one backup in a repository. Kind is full, diff or incr.
type BackupJSON struct {
	Label           string    `json:"label"`
	Kind            string    `json:"kind"`
	Prior           string    `json:"prior,omitempty"`
	StartedAt       time.Time `json:"started_at"`
	StoppedAt       time.Time `json:"stopped_at"`
	DatabaseBytes   uint64    `json:"database_bytes"`
	BackupBytes     uint64    `json:"backup_bytes"`
	RepositoryBytes uint64    `json:"repository_bytes"`
	ChecksumErrors  bool      `json:"checksum_errors,omitempty"`
}

// BackupVerificationJSON is the last verification of a backup block.
type BackupVerificationJSON struct {
	Label      string    `json:"label"`
	OK         bool      `json:"ok"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"at"`
	DurationMs uint64    `json:"duration_ms"`
}

// BackupSetJSON is one backup block and its backups, oldest first, in
// `drplane backup list --json` (a list).
type BackupSetJSON struct {
	Status  BackupStatusJSON `json:"status"`
	Backups []BackupJSON     `json:"backups"`
}

// PlanDrillJSON is one plan's drill record in StatusJSON. Interval is
// empty when no schedule runs the plan; Overdue is then false.
type PlanDrillJSON struct {
	Plan            string     `json:"plan"`
	LastExecution   string     `json:"last_execution,omitempty"`
	LastState       string     `json:"last_state,omitempty"`
	LastAt          *time.Time `json:"last_at,omitempty"`
	LastSucceededAt *time.Time `json:"last_succeeded_at,omitempty"`
	Interval        string     `json:"interval,omitempty"`
	Overdue         bool       `json:"overdue"`
	OverdueReason   string     `json:"overdue_reason,omitempty"`
}
