// Package plan models recovery plans (DESIGN.md section 6): the kinds of
// plan, the steps they are made of, the topology they are derived from and
// the operator's extensions from the server's HCL. It does no I/O beyond
// reading a plan file; the control plane's executor runs what it derives.
package plan

import (
	"time"
)

// Kind is what a plan does.
type Kind string

// Plan kinds.
const (
	// KindFailover is unplanned: the active site is lost or must be
	// abandoned; data within the RPO guard may be lost.
	KindFailover Kind = "failover"
	// KindSwitchover is planned: drain, final sync, catch up, zero data
	// loss.
	KindSwitchover Kind = "switchover"
	// KindFailback reprotects the old site and switches back to it.
	KindFailback Kind = "failback"
	// KindDrill starts isolated copies at the DR site, checks, measures
	// and tears them down; production is untouched.
	KindDrill Kind = "drill"
	// KindRestart restarts the active site's services in place, in
	// dependency order, each health-gated: a failed application host or a
	// cascade of failed services. Nothing moves to another site.
	KindRestart Kind = "restart"
	// KindRestore restores a data service of the active site from its
	// backup block: stop what depends on it, take a restoration point,
	// restore, re-clone its standbys, start in dependency order.
	KindRestore Kind = "restore"
)

// Kinds lists every plan kind, for validation and help texts.
var Kinds = []Kind{KindFailover, KindSwitchover, KindFailback, KindDrill, KindRestart, KindRestore}

// Agent actions: run by the agent of Step.Host on Step.Target, which the
// agent's own config must declare.
const (
	ActionFence    = "fence"
	ActionSnapshot = "snapshot"
	ActionStop     = "stop"
	ActionDemote   = "demote"
	ActionRsync    = "rsync"
	ActionPromote  = "promote"
	ActionStart    = "start"
	ActionCheck    = "check"
	ActionHook     = "hook"
	// ActionBackup takes a backup of a backup block (a restore plan's
	// restoration point); ActionRestoreBackup restores a stopped data
	// service in place from its backup block and brings it up as primary.
	ActionBackup        = "backup"
	ActionRestoreBackup = "restore-backup"
	// ActionVerifyBackup restores the newest backup of a backup block into
	// a scratch copy, starts it on a side port, queries it and removes it
	// (a restore drill).
	ActionVerifyBackup = "verify-backup"
	// ActionRestoreSnapshot brings a snapshot block's paths back to one of
	// its snapshots: Args[ArgSnapshotID], or the newest taken at or before
	// Args[ArgSnapshotAt]. An operator runs it on one host (drplane
	// snapshot restore); a restore plan sends it for the state of the
	// services it stops.
	ActionRestoreSnapshot = "restore"
)

// Arguments of a restore-backup step: the point restored to, a time
// (RFC 3339) or a backup label; neither restores the newest state.
const (
	ArgRestoreToTime = "to_time"
	ArgRestoreLabel  = "label"
)

// Arguments of a restore (of a snapshot) step.
const (
	ArgSnapshotID = "id"
	// ArgSnapshotAt is a time (RFC 3339): the snapshot restored is the
	// newest taken at or before it.
	ArgSnapshotAt = "at"
	// ArgSnapshotAtBackup names a backup label; the server replaces it
	// with ArgSnapshotAt, the time the backup ended, before the plan runs.
	ArgSnapshotAtBackup = "at_backup"
)

// Control-plane actions: run by the leader itself; Step.Host is empty.
const (
	// ActionApproval pauses until `drplane approve`.
	ActionApproval = "approval"
	// ActionWait pauses for Args["duration"].
	ActionWait = "wait"
	// ActionNotify records Args["message"] in the audit trail and log.
	ActionNotify = "notify"
	// ActionGuard is the RPO guard (invariant 7): it fails when the
	// replication lag of a data service at the target exceeds
	// max_data_loss, unless the execution allows data loss.
	ActionGuard = "guard"
	// ActionActivate flips the active site to the target and bumps the
	// epoch in one compare-and-set. It comes before any promotion, so no
	// service is ever primary on a site that is not active (invariant 1).
	ActionActivate = "activate"
	// ActionLeaseWait waits until every lease the leader may have granted
	// to the old site's agents has lapsed (lease_ttl + clock_skew_margin
	// after the last renewal that could have been delivered, invariant 4),
	// except on hosts whose fence step succeeded.
	ActionLeaseWait = "lease-wait"
)

// AgentActions and ControlActions are the valid actions of each kind.
var (
	AgentActions = []string{ActionFence, ActionSnapshot, ActionStop, ActionDemote, ActionRsync, ActionPromote, ActionStart, ActionCheck, ActionHook,
		ActionBackup, ActionRestoreBackup, ActionVerifyBackup, ActionRestoreSnapshot}
	ControlActions = []string{ActionApproval, ActionWait, ActionNotify, ActionGuard, ActionActivate, ActionLeaseWait}
)

// On-failure policies.
const (
	OnFailureAbort    = "abort"
	OnFailureContinue = "continue"
)

// Phases name the stages of the default plans, in order. Operator
// extensions are inserted before or after a phase.
const (
	PhaseFence     = "fence"     // failover: fence the old active site, best-effort
	PhaseDrain     = "drain"     // switchover: stop application services at the active site
	PhaseSync      = "sync"      // switchover: final rsync of every sync block
	PhaseDemote    = "demote"    // switchover: stop old primaries, wait for catch-up
	PhaseGuard     = "guard"     // RPO guard
	PhaseActivate  = "activate"  // flip the active site, bump the epoch
	PhasePromote   = "promote"   // promote data services at the target
	PhaseStart     = "start"     // start services in dependency order, health-gated
	PhaseVerify    = "verify"    // verification checks
	PhaseReprotect = "reprotect" // rejoin the old site as standbys, reverse syncs
	PhaseTeardown  = "teardown"  // drill: stop the copies, remove their data
	// restore: a backup and snapshots taken before anything is restored
	PhaseRestorePoint = "restore-point"
	PhaseRestore      = "restore" // restore: stop the data service and its standbys, restore
	// PhaseRollback runs only when a switchover or failback stops before
	// its activate step succeeded: it starts again what the plan stopped
	// at the original site. Operator steps cannot be placed around it.
	PhaseRollback = "rollback"
)

// Phases lists every phase; PhasesOf gives the phases of one kind, in order.
var Phases = []string{PhaseFence, PhaseDrain, PhaseSync, PhaseDemote, PhaseGuard, PhaseActivate,
	PhasePromote, PhaseStart, PhaseVerify, PhaseReprotect, PhaseTeardown, PhaseRollback}

// Step is one concrete step of a plan: who does what, on which host.
type Step struct {
	// ID is unique within the plan, readable, and stable for the same
	// inputs, e.g. "promote:postgres@db-2". It becomes the agent's step id.
	ID     string `json:"id"`
	Phase  string `json:"phase"`
	Action string `json:"action"`
	// Host is the agent that runs the step; empty for control-plane
	// actions.
	Host string `json:"host,omitempty"`
	// Site is Host's site, for display.
	Site string `json:"site,omitempty"`
	// Target is the service, sync block, snapshot block or hook name on
	// Host; for activate, the site to make active.
	Target string            `json:"target,omitempty"`
	Args   map[string]string `json:"args,omitempty"`
	// ArgsFrom fills arguments from earlier steps' outputs when the step
	// runs: argument name -> "STEP_ID.OUTPUT_KEY". The named step must be
	// an ancestor through DependsOn.
	ArgsFrom  map[string]string `json:"args_from,omitempty"`
	Timeout   time.Duration     `json:"timeout"`
	Retries   int               `json:"retries,omitempty"`
	OnFailure string            `json:"on_failure"`
	DependsOn []string          `json:"depends_on,omitempty"`
	// HealthGate marks a step whose success means a service serves at
	// the target; the last health gate to pass ends the measured RTO.
	HealthGate bool `json:"health_gate,omitempty"`
	// Always steps (a drill's teardown) run even after the execution
	// aborted or was cancelled, once their dependencies ended in any state.
	Always bool `json:"always,omitempty"`
	// Rollback steps undo a planned execution that stopped (a failure or
	// a cancel) before its activate step succeeded: they start again, in
	// dependency order, what it stopped at the original site. They run
	// once every other step has ended, and never once the target site
	// was activated; on success they are skipped.
	Rollback bool `json:"rollback,omitempty"`
	// Description is a one-line human explanation for `plan show`.
	Description string `json:"description,omitempty"`
}

// Plan is a concrete, validated DAG of steps, ready to execute.
type Plan struct {
	// Name is the plan's name: the kind, or an operator-defined plan.
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// From is the active site when the plan was derived; To the target.
	From  string `json:"from"`
	To    string `json:"to"`
	Steps []Step `json:"steps"`
	// Finishes is the execution whose rest this plan is (see
	// DeriveOptions.FinishOf); its outage began with that one.
	Finishes string `json:"finishes,omitempty"`
	// Objectives are the RTO and RPO targets that apply.
	Objectives Objectives `json:"objectives"`
	// MaxDataLoss is the RPO guard's limit (invariant 7).
	MaxDataLoss time.Duration `json:"max_data_loss"`
	// Warnings are what the derivation could not do but did not refuse,
	// such as a service of the active site that the target lacks.
	Warnings []string `json:"warnings,omitempty"`
}

// Objectives are RTO and RPO targets; zero means none, except that
// ZeroRPO marks rpo = "0s": the target of zero data loss, met only when
// the recorded RPO is 0.
type Objectives struct {
	RTO     time.Duration `json:"rto"`
	RPO     time.Duration `json:"rpo"`
	ZeroRPO bool          `json:"zero_rpo,omitempty"`
}

// HasRPO reports whether an RPO target is set.
func (o Objectives) HasRPO() bool { return o.RPO > 0 || o.ZeroRPO }

// Topology is what plans are derived from: the sites and the agents that
// registered, with what they declared.
type Topology struct {
	ActiveSite string
	// DataSites are the data sites, in the servers' declaration order.
	DataSites []string
	Agents    []Agent
}

// Agent is one registered host.
type Agent struct {
	HostID string
	Site   string
	// Address is the agent's HostAgent address (host:port); rsync steps
	// pull from it and demote steps point standbys at its host.
	Address   string
	Services  []Service
	Syncs     []string
	Snapshots []string
	Hooks     []string
}

// Service is a service an agent declared.
type Service struct {
	Name      string
	Driver    string
	DependsOn []string
	// Port is where the service listens (PostgreSQL's port), 0 if unknown.
	Port int
	// Promotable is true for data services that have a primary and
	// standbys (the postgres driver).
	Promotable bool
	// Drillable is true when the agent can start an isolated copy of the
	// service for a drill (it declares a drill block).
	Drillable bool
	// Backup is the agent's backup block of the service (pgBackRest),
	// which restore plans restore from; "" when it declares none.
	Backup string
	// StateSnapshots are the agent's snapshot blocks that hold the
	// service's state: a restore plan that stops the service brings them
	// back to the newest snapshot taken at or before its target.
	StateSnapshots []string
}
