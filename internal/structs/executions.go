package structs

import (
	"time"

	"github.com/drplane/drplane/internal/plan"
)

// Execution and step states.
const (
	ExecRunning   = "running"
	ExecSucceeded = "succeeded"
	ExecFailed    = "failed"
	ExecCancelled = "cancelled"
	// ExecPlanned is a dry run's execution, never recorded.
	ExecPlanned = "planned"

	StepPending   = "pending"
	StepRunning   = "running"
	StepWaiting   = "waiting" // an approval step waiting for `drplane approve`
	StepSucceeded = "succeeded"
	StepFailed    = "failed"
	StepSkipped   = "skipped"
	StepCancelled = "cancelled"
)

// Triggers of an execution.
const (
	TriggerManual    = "manual"
	TriggerAutomatic = "automatic"
	// TriggerScheduled is a schedule block's slot.
	TriggerScheduled = "scheduled"
)

// Execution is one run of a plan. It holds intent and outcomes only: which
// steps were started and how they ended, never what the prober observed.
type Execution struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	PlanName string `json:"plan"`
	From     string `json:"from"`
	To       string `json:"to"`
	Trigger  string `json:"trigger"`
	Actor    string `json:"actor"`
	// Note is the operator's word on why (--note), for the DR test log.
	Note string `json:"note,omitempty"`
	// Schedule names the schedule block that started it, and
	// ScheduledFor is its slot (before any deferral out of trading hours).
	Schedule     string    `json:"schedule,omitempty"`
	ScheduledFor time.Time `json:"scheduled_for,omitempty"`
	// Exercises, for a drill, is the plan it practises: the failover plan
	// for a site drill, the restore plan for a restore drill.
	Exercises string `json:"exercises,omitempty"`
	// AllowDataLoss lets the RPO guard pass beyond max_data_loss.
	AllowDataLoss bool `json:"allow_data_loss,omitempty"`
	// CleanupOf names the drill execution this one tears down.
	CleanupOf string `json:"cleanup_of,omitempty"`
	// TriggeredAt is the command's time, or the first missed probe for an
	// automatic failover; RTO and RPO are measured from it.
	TriggeredAt time.Time `json:"triggered_at"`
	StartedAt   time.Time `json:"started_at"`
	FinishedAt  time.Time `json:"finished_at,omitempty"`
	// StartEpoch is the epoch the plan was derived in.
	StartEpoch uint64 `json:"start_epoch"`
	State      string `json:"state"`
	Message    string `json:"message,omitempty"`
	// CancelRequested stops the scheduling of new steps.
	CancelRequested bool   `json:"cancel_requested,omitempty"`
	CancelledBy     string `json:"cancelled_by,omitempty"`

	Plan  plan.Plan  `json:"plan_steps"`
	Steps []ExecStep `json:"steps"`

	// RPOSeconds is the data-loss exposure at the trigger instant (the
	// trigger minus the newest replicated write), replaced by 0 when a
	// switchover proved its target caught up. RTOSeconds is the trigger
	// to the last health gate passing; set when the execution ends.
	RPOSeconds *float64 `json:"rpo_seconds,omitempty"`
	RPODetail  string   `json:"rpo_detail,omitempty"`
	RTOSeconds *float64 `json:"rto_seconds,omitempty"`
	// OutageSince, for a failover, is the latest instant a survivor knew
	// the failed site alive, at or before TriggeredAt: the RTO counts from
	// it, never shorter than the outage clients saw. RTODetail says where
	// the RTO counts from, or why it is unknown.
	OutageSince time.Time `json:"outage_since,omitempty"`
	RTODetail   string    `json:"rto_detail,omitempty"`

	// SiteFence, when set, is a confirmation from outside drplane that
	// every host of a site is fenced: its STONITH hook exited 0 before
	// this failover started. The failover's fence steps for that site's
	// hosts and its lease-wait for the site are done by it: no host of a
	// killed site is contacted or waited for.
	SiteFence *SiteFence `json:"site_fence,omitempty"`
	// DownConfirmed, when set, is an operator's confirmation that the
	// site the failover leaves was down (a quorum-loss recovery without a
	// STONITH hook): the latest instant its primary may have acknowledged
	// a write, by the operator's word.
	DownConfirmed *DownConfirmation `json:"down_confirmed,omitempty"`
}

// DownConfirmation is an operator's word that a site is down.
type DownConfirmation struct {
	Site string    `json:"site"`
	At   time.Time `json:"at"`
	By   string    `json:"by"`
}

// SiteFence is a STONITH hook's confirmation that a site is fenced.
type SiteFence struct {
	Site string `json:"site"`
	// At is when the hook exited 0; Output is what it printed (bounded).
	At     time.Time `json:"at"`
	Output string    `json:"output,omitempty"`
}

// ExecStep is the outcome side of one plan step, at the same index as
// its step in Plan.Steps.
type ExecStep struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Attempt counts from 1; attempt n > 1 reaches the agent as step id
	// "ID#n", so a retry is a new step for the agent's journal while a
	// re-sent attempt is the same one.
	Attempt   int               `json:"attempt,omitempty"`
	StartedAt time.Time         `json:"started_at,omitempty"`
	EndedAt   time.Time         `json:"ended_at,omitempty"`
	Message   string            `json:"message,omitempty"`
	Outputs   map[string]string `json:"outputs,omitempty"`
	// Replayed is true when the agent answered from its journal.
	Replayed bool `json:"replayed,omitempty"`
	// Verified is true when the agent stopped while the step ran and,
	// on the re-sent step, found its effect in place on the service.
	Verified   bool   `json:"verified,omitempty"`
	ApprovedBy string `json:"approved_by,omitempty"`
}

// Ended reports whether the step has reached a final state.
func (s ExecStep) Ended() bool {
	switch s.State {
	case StepSucceeded, StepFailed, StepSkipped, StepCancelled:
		return true
	}
	return false
}

// Step returns the index of the step with id, or -1.
func (e *Execution) Step(id string) int {
	for i := range e.Steps {
		if e.Steps[i].ID == id {
			return i
		}
	}
	return -1
}

// StartExecutionRequest starts an execution only if none is running and
// the epoch is still the one the plan was derived in.
type StartExecutionRequest struct {
	WriteRequest
	Execution Execution `json:"execution"`
	// Cooldown is the leader's failover.cooldown; an automatic execution
	// is refused within it after the last automatic failover unless that
	// one was acknowledged, and always while automation is paused.
	Cooldown time.Duration `json:"cooldown,omitempty"`
}

// StepUpdateRequest moves one step of a running execution: to running
// (from pending, or re-sent for the same attempt), waiting, or an end
// state (from running or waiting with the same attempt).
type StepUpdateRequest struct {
	WriteRequest
	ExecutionID string   `json:"execution_id"`
	Step        ExecStep `json:"step"`
	// Activate, on the activate step's success, flips the active site
	// and bumps the epoch in the same entry, compare-and-set on
	// ExpectedEpoch.
	Activate *ActivateSite `json:"activate,omitempty"`
}

// ActivateSite is the epoch change an activate step makes.
type ActivateSite struct {
	Site          string `json:"site"`
	ExpectedEpoch uint64 `json:"expected_epoch"`
}

// ApproveStepRequest ends a waiting approval step successfully.
type ApproveStepRequest struct {
	WriteRequest
	ExecutionID string `json:"execution_id"`
	// StepID may be empty: the execution's one waiting approval.
	StepID string `json:"step_id,omitempty"`
}

// CancelExecutionRequest stops the scheduling of new steps.
type CancelExecutionRequest struct {
	WriteRequest
	ExecutionID string `json:"execution_id"`
}

// FinishExecutionRequest records an execution's end and measurements.
type FinishExecutionRequest struct {
	WriteRequest
	ExecutionID string   `json:"execution_id"`
	State       string   `json:"state"`
	Message     string   `json:"message"`
	RTOSeconds  *float64 `json:"rto_seconds,omitempty"`
	RPOSeconds  *float64 `json:"rpo_seconds,omitempty"`
	// Skip lists steps that never ran and are recorded as skipped.
	Skip []string `json:"skip,omitempty"`
}

// Automation actions.
const (
	AutomationPause  = "pause"
	AutomationResume = "resume"
	AutomationAck    = "ack"
)

// AutomationRequest pauses or resumes automatic action, or acknowledges
// the last automatic failover.
type AutomationRequest struct {
	WriteRequest
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// Automation is the replicated control of automatic action: the operator's
// pause, and the last automatic failover with its acknowledgement.
type Automation struct {
	Paused      bool      `json:"paused,omitempty"`
	PausedBy    string    `json:"paused_by,omitempty"`
	PausedAt    time.Time `json:"paused_at,omitempty"`
	PauseReason string    `json:"pause_reason,omitempty"`
	// LastAutomatic is when the last automatic execution started;
	// AckedAt when an operator last acknowledged one.
	LastAutomatic   time.Time `json:"last_automatic,omitempty"`
	LastAutomaticID string    `json:"last_automatic_id,omitempty"`
	AckedAt         time.Time `json:"acked_at,omitempty"`
	AckedBy         string    `json:"acked_by,omitempty"`
}

// Blocked reports why automatic action is not allowed at now, or "".
func (a Automation) Blocked(now time.Time, cooldown time.Duration) string {
	if a.Paused {
		return "automatic action is paused by " + a.PausedBy + " (drplane resume lifts it)"
	}
	if !a.LastAutomatic.IsZero() && a.AckedAt.Before(a.LastAutomatic) && now.Before(a.LastAutomatic.Add(cooldown)) {
		return "cooldown after automatic execution " + a.LastAutomaticID + " until " + a.LastAutomatic.Add(cooldown).UTC().Format(time.RFC3339) + " (drplane ack lifts it)"
	}
	return ""
}

// EvidenceLink seals one finished execution into the evidence chain: Hash
// is SHA-256 over PrevHash and the execution's sealed record, so that a
// record changed after it ended, or a link removed, no longer matches
// (drplane report --verify).
type EvidenceLink struct {
	ExecutionID string    `json:"execution_id"`
	PrevHash    string    `json:"prev_hash"`
	Hash        string    `json:"hash"`
	SealedAt    time.Time `json:"sealed_at"`
	// Index is the Raft index of the entry that sealed it.
	Index uint64 `json:"index"`
}
