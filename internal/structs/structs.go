// Package structs holds the types replicated through Raft: the commands the
// leader proposes and the state the FSM keeps. The FSM holds intent only
// (DESIGN.md section 3): nothing observed, such as probe results or lag,
// ever appears here, except the per-minute availability record the KPIs
// are computed from, which must outlive the leader that observed it.
package structs

import (
	"encoding/json"
	"fmt"
	"time"
)

// MessageType is the first byte of every Raft log entry. New types are only
// ever appended, never renumbered.
type MessageType uint8

const (
	// InitSitesRequestType seeds the declared sites, the active site and
	// epoch 1 into an empty state.
	InitSitesRequestType MessageType = 0
	// SetActiveSiteRequestType flips the active site and bumps the epoch,
	// compare-and-set on the current epoch.
	SetActiveSiteRequestType MessageType = 1
	// RegisterAgentRequestType records or updates a host agent.
	RegisterAgentRequestType MessageType = 2
	// DeregisterAgentRequestType removes a host agent.
	DeregisterAgentRequestType MessageType = 3
	// UpsertServerRequestType records a server's site and addresses.
	UpsertServerRequestType MessageType = 4
	// RemoveServerRequestType removes a server's record after it has left
	// the Raft configuration.
	RemoveServerRequestType MessageType = 5
	// AuditRequestType appends an audit entry for an operator action
	// that changes no replicated state (a snapshot, a restore).
	AuditRequestType MessageType = 6
	// StartExecutionRequestType starts a plan execution, compare-and-set
	// on no running execution and the epoch.
	StartExecutionRequestType MessageType = 7
	// StepUpdateRequestType moves one step of a running execution.
	StepUpdateRequestType MessageType = 8
	// ApproveStepRequestType ends a waiting approval step.
	ApproveStepRequestType MessageType = 9
	// CancelExecutionRequestType stops an execution's scheduling.
	CancelExecutionRequestType MessageType = 10
	// FinishExecutionRequestType records an execution's end.
	FinishExecutionRequestType MessageType = 11
	// AutomationRequestType pauses or resumes automatic action, or
	// acknowledges an automatic failover (lifting its cooldown).
	AutomationRequestType MessageType = 12
	// SyncReplicationRequestType records a data service's synchronous
	// replication state, compare-and-set on the record it replaces. An
	// older server skips it: it knows no synchronous mode.
	SyncReplicationRequestType MessageType = 13 | IgnoreUnknownTypeFlag
	// RaiseNotificationRequestType, NotificationSentRequestType and
	// AckNotificationsRequestType keep the notifications and their
	// escalation; an older server skips them.
	RaiseNotificationRequestType MessageType = 14 | IgnoreUnknownTypeFlag
	NotificationSentRequestType  MessageType = 15 | IgnoreUnknownTypeFlag
	AckNotificationsRequestType  MessageType = 16 | IgnoreUnknownTypeFlag
	// ScheduleRequestType records what became of a schedule block's slot
	// (first seen, deferred out of trading hours); an older server skips
	// it.
	ScheduleRequestType MessageType = 17 | IgnoreUnknownTypeFlag
	// AvailabilityRequestType records minutes of the active site's
	// availability, for the KPIs; an older server skips it.
	AvailabilityRequestType MessageType = 18 | IgnoreUnknownTypeFlag
)

// IgnoreUnknownTypeFlag is set on message types that an older server may
// skip during a rolling upgrade instead of panicking.
const IgnoreUnknownTypeFlag MessageType = 128

// String names the message type for logs and the audit trail.
func (t MessageType) String() string {
	switch t {
	case InitSitesRequestType:
		return "init-sites"
	case SetActiveSiteRequestType:
		return "set-active-site"
	case RegisterAgentRequestType:
		return "register-agent"
	case DeregisterAgentRequestType:
		return "deregister-agent"
	case UpsertServerRequestType:
		return "upsert-server"
	case RemoveServerRequestType:
		return "remove-server"
	case AuditRequestType:
		return "audit"
	case StartExecutionRequestType:
		return "start-execution"
	case StepUpdateRequestType:
		return "step-update"
	case ApproveStepRequestType:
		return "approve-step"
	case CancelExecutionRequestType:
		return "cancel-execution"
	case FinishExecutionRequestType:
		return "finish-execution"
	case AutomationRequestType:
		return "automation"
	case SyncReplicationRequestType:
		return "sync-replication"
	case RaiseNotificationRequestType:
		return "raise-notification"
	case NotificationSentRequestType:
		return "notification-sent"
	case AckNotificationsRequestType:
		return "ack-notifications"
	case ScheduleRequestType:
		return "schedule"
	case AvailabilityRequestType:
		return "availability"
	}
	return fmt.Sprintf("unknown(%d)", uint8(t))
}

// Site kinds.
const (
	SiteKindData    = "data"
	SiteKindWitness = "witness"
)

// WriteRequest is embedded in every command. The leader fills Time when it
// proposes the command, so Apply stays deterministic on every server.
type WriteRequest struct {
	// RequestID identifies one client operation; a retried operation
	// carries the same id and is applied at most once.
	RequestID string `json:"request_id"`
	// Actor is who asked, for the audit trail.
	Actor string    `json:"actor"`
	Time  time.Time `json:"time"`
}

// Write returns the embedded WriteRequest so the FSM can reach it through
// the Command interface.
func (w *WriteRequest) Write() *WriteRequest { return w }

// Command is a request that can be encoded into a Raft log entry.
type Command interface {
	Write() *WriteRequest
}

// Site is a failure domain declared in the servers' configuration.
type Site struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// InitSitesRequest seeds an empty state. It is rejected once the state is
// initialized, so a server with a different configuration cannot overwrite
// what the cluster already agreed on.
type InitSitesRequest struct {
	WriteRequest
	Sites      []Site `json:"sites"`
	ActiveSite string `json:"active_site"`
}

// SetActiveSiteRequest flips the active site only if the epoch is still
// ExpectedEpoch.
type SetActiveSiteRequest struct {
	WriteRequest
	Site          string `json:"site"`
	ExpectedEpoch uint64 `json:"expected_epoch"`
	Reason        string `json:"reason"`
}

// Service is a service an agent declared in its configuration.
type Service struct {
	Name      string   `json:"name"`
	Driver    string   `json:"driver"`
	DependsOn []string `json:"depends_on,omitempty"`
	// Port is where the service listens (PostgreSQL's port); 0 if none.
	Port int `json:"port,omitempty"`
	// Promotable is true for data services with a primary and standbys.
	Promotable bool `json:"promotable,omitempty"`
	// Drillable is true when the agent can start a drill copy of it.
	Drillable bool `json:"drillable,omitempty"`
	// Backup is the agent's backup block of the service; "" without.
	Backup string `json:"backup,omitempty"`
	// StateSnapshots are the agent's snapshot blocks holding the
	// service's state.
	StateSnapshots []string `json:"state_snapshots,omitempty"`
}

// Agent is a registered host agent.
type Agent struct {
	HostID       string    `json:"host_id"`
	Site         string    `json:"site"`
	Address      string    `json:"address"`
	Services     []Service `json:"services,omitempty"`
	Syncs        []string  `json:"syncs,omitempty"`
	Snapshots    []string  `json:"snapshots,omitempty"`
	Hooks        []string  `json:"hooks,omitempty"`
	RegisteredAt time.Time `json:"registered_at"`
	// LeaseAnchors: the agent honours anchored renewals, and a leader
	// sends it no other kind (see controlplane's leaseTable).
	LeaseAnchors bool `json:"lease_anchors,omitempty"`
}

// Promotable reports whether the agent declares service as a data
// service (one with a primary and standbys).
func (a Agent) Promotable(service string) bool {
	for _, s := range a.Services {
		if s.Name == service {
			return s.Promotable
		}
	}
	return false
}

// RegisterAgentRequest records or replaces an agent.
type RegisterAgentRequest struct {
	WriteRequest
	Agent Agent `json:"agent"`
}

// DeregisterAgentRequest removes an agent.
type DeregisterAgentRequest struct {
	WriteRequest
	HostID string `json:"host_id"`
}

// Server is the metadata of one control-plane server. Raft's configuration
// is the truth for membership; this record adds the site and gRPC address.
type Server struct {
	ID          string `json:"id"`
	Site        string `json:"site"`
	Address     string `json:"address"`
	RaftAddress string `json:"raft_address"`
}

// UpsertServerRequest records a server's metadata.
type UpsertServerRequest struct {
	WriteRequest
	Server Server `json:"server"`
}

// RemoveServerRequest drops a server's metadata.
type RemoveServerRequest struct {
	WriteRequest
	ID string `json:"id"`
}

// AuditRequest records an operator action in the audit trail.
type AuditRequest struct {
	WriteRequest
	Action string `json:"action"`
	Detail string `json:"detail"`
}

// AuditEntry is one line of the append-only audit trail.
type AuditEntry struct {
	Index     uint64    `json:"index"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Detail    string    `json:"detail"`
	RequestID string    `json:"request_id,omitempty"`
}

// ApplyResult is what FSM.Apply returns for every command. A rejected
// compare-and-set is not an error of the log: it is recorded here and the
// caller turns it into an error.
type ApplyResult struct {
	Index      uint64 `json:"index"`
	Rejection  string `json:"rejection,omitempty"`
	Epoch      uint64 `json:"epoch"`
	ActiveSite string `json:"active_site"`
	// Duplicate is true when the request id had been applied before and
	// this result is the recorded one.
	Duplicate bool `json:"-"`
}

// Err returns the rejection as an error, or nil.
func (r *ApplyResult) Err() error {
	if r.Rejection == "" {
		return nil
	}
	return &RejectedError{Reason: r.Rejection}
}

// RejectedError is a command refused by the FSM's compare-and-set checks.
type RejectedError struct {
	Reason string
}

func (e *RejectedError) Error() string { return "rejected: " + e.Reason }

// Encode prefixes the JSON encoding of cmd with its message type.
func Encode(t MessageType, cmd Command) ([]byte, error) {
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}
