package controlplane

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/drplane/drplane/internal/kpi"
	"github.com/drplane/drplane/internal/structs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// maxRecordedRequests bounds the table of applied request ids. A client
// retries within seconds, so the newest few thousand are plenty.
const maxRecordedRequests = 8192

// fsmState is everything the FSM holds. It is snapshotted whole, so every
// field is exported for encoding.
type fsmState struct {
	Initialized bool                      `json:"initialized"`
	Sites       []structs.Site            `json:"sites"`
	ActiveSite  string                    `json:"active_site"`
	Epoch       uint64                    `json:"epoch"`
	Agents      map[string]structs.Agent  `json:"agents"`
	Servers     map[string]structs.Server `json:"servers"`
	Audit       []structs.AuditEntry      `json:"audit"`
	Requests    requestTable              `json:"requests"`
	// Executions are every plan run, by id; ExecutionOrder lists their
	// ids oldest first.
	Executions     map[string]*structs.Execution `json:"executions"`
	ExecutionOrder []string                      `json:"execution_order"`
	Automation     structs.Automation            `json:"automation"`
	// SyncReplication is, per data service, its synchronous replication
	// record (invariant 8).
	SyncReplication map[string]structs.SyncReplication `json:"sync_replication,omitempty"`
	// Notifications are the events told through the notify blocks, with
	// their escalation, oldest first.
	Notifications []*structs.Notification `json:"notifications,omitempty"`
	// Evidence is the hash chain over the finished executions, in the
	// order they ended (drplane report --verify).
	Evidence []structs.EvidenceLink `json:"evidence,omitempty"`
	// Schedules are the schedule blocks' slots and deferrals, by name.
	Schedules map[string]*structs.ScheduleState `json:"schedules,omitempty"`
	// Availability is the per-minute record of the active site's
	// services, which the availability KPIs are computed from.
	Availability kpi.Minutes `json:"availability"`
}

func newFSMState() *fsmState {
	return &fsmState{
		Agents:     map[string]structs.Agent{},
		Servers:    map[string]structs.Server{},
		Requests:   requestTable{Results: map[string]structs.ApplyResult{}},
		Executions: map[string]*structs.Execution{},
	}
}

// FSM is the replicated state machine. Apply is deterministic: every
// decision it makes depends only on the state and the log entry.
type FSM struct {
	logger hclog.Logger

	mu    sync.RWMutex
	state *fsmState
	// changed is closed and replaced after every applied entry, so the
	// executor can wait for an approval or a cancel without polling.
	changed chan struct{}
}

// NewFSM returns an empty FSM.
func NewFSM(logger hclog.Logger) *FSM {
	return &FSM{logger: logger.Named("fsm"), state: newFSMState(), changed: make(chan struct{})}
}

// watch returns a channel closed at the next change of the state.
func (f *FSM) watch() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// notifyLocked wakes the watchers of the state.
func (f *FSM) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Apply applies one committed log entry. A decode failure panics: it means a
// corrupt log or a binary that does not match the cluster.
func (f *FSM) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	msgType := structs.MessageType(l.Data[0])
	buf := l.Data[1:]

	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.notifyLocked()
	switch msgType {
	case structs.InitSitesRequestType:
		return applyCommand(f, buf, l.Index, &structs.InitSitesRequest{}, f.applyInitSites)
	case structs.SetActiveSiteRequestType:
		return applyCommand(f, buf, l.Index, &structs.SetActiveSiteRequest{}, f.applySetActiveSite)
	case structs.RegisterAgentRequestType:
		return applyCommand(f, buf, l.Index, &structs.RegisterAgentRequest{}, f.applyRegisterAgent)
	case structs.DeregisterAgentRequestType:
		return applyCommand(f, buf, l.Index, &structs.DeregisterAgentRequest{}, f.applyDeregisterAgent)
	case structs.UpsertServerRequestType:
		return applyCommand(f, buf, l.Index, &structs.UpsertServerRequest{}, f.applyUpsertServer)
	case structs.RemoveServerRequestType:
		return applyCommand(f, buf, l.Index, &structs.RemoveServerRequest{}, f.applyRemoveServer)
	case structs.AuditRequestType:
		return applyCommand(f, buf, l.Index, &structs.AuditRequest{}, f.applyAudit)
	case structs.StartExecutionRequestType:
		return applyCommand(f, buf, l.Index, &structs.StartExecutionRequest{}, f.applyStartExecution)
	case structs.StepUpdateRequestType:
		return applyCommand(f, buf, l.Index, &structs.StepUpdateRequest{}, f.applyStepUpdate)
	case structs.ApproveStepRequestType:
		return applyCommand(f, buf, l.Index, &structs.ApproveStepRequest{}, f.applyApproveStep)
	case structs.CancelExecutionRequestType:
		return applyCommand(f, buf, l.Index, &structs.CancelExecutionRequest{}, f.applyCancelExecution)
	case structs.FinishExecutionRequestType:
		return applyCommand(f, buf, l.Index, &structs.FinishExecutionRequest{}, f.applyFinishExecution)
	case structs.AutomationRequestType:
		return applyCommand(f, buf, l.Index, &structs.AutomationRequest{}, f.applyAutomation)
	case structs.SyncReplicationRequestType:
		return applyCommand(f, buf, l.Index, &structs.SyncReplicationRequest{}, f.applySyncReplication)
	case structs.RaiseNotificationRequestType:
		return applyCommand(f, buf, l.Index, &structs.RaiseNotificationRequest{}, f.applyRaiseNotification)
	case structs.NotificationSentRequestType:
		return applyCommand(f, buf, l.Index, &structs.NotificationSentRequest{}, f.applyNotificationSent)
	case structs.AckNotificationsRequestType:
		return applyCommand(f, buf, l.Index, &structs.AckNotificationsRequest{}, f.applyAckNotifications)
	case structs.ScheduleRequestType:
		return applyCommand(f, buf, l.Index, &structs.ScheduleRequest{}, f.applySchedule)
	case structs.AvailabilityRequestType:
		return applyCommand(f, buf, l.Index, &structs.AvailabilityRequest{}, f.applyAvailability)
	}
	// An entry from a newer server that marked itself skippable is
	// ignored during a rolling upgrade; anything else is fatal.
	if msgType&structs.IgnoreUnknownTypeFlag != 0 {
		f.logger.Warn("ignoring unknown message type", "type", uint8(msgType), "index", l.Index)
		return nil
	}
	panic(fmt.Errorf("failed to apply request: unknown message type %d at index %d", msgType, l.Index))
}

// applyCommand decodes buf into req and runs fn once per request id: a
// request id seen before returns its recorded result without touching the
// state, which is what makes client retries safe.
func applyCommand[T structs.Command](f *FSM, buf []byte, index uint64, req T, fn func(T, uint64) string) *structs.ApplyResult {
	if err := json.Unmarshal(buf, req); err != nil {
		panic(fmt.Errorf("failed to decode request at index %d: %w", index, err))
	}
	id := req.Write().RequestID
	if res, ok := f.state.Requests.get(id); ok {
		res.Duplicate = true
		return &res
	}
	res := structs.ApplyResult{Index: index, Rejection: fn(req, index)}
	res.Epoch, res.ActiveSite = f.state.Epoch, f.state.ActiveSite
	f.state.Requests.put(id, res)
	return &res
}

// auditLocked appends one entry to the audit trail.
func (f *FSM) auditLocked(index uint64, w *structs.WriteRequest, action, detail string) {
	f.state.Audit = append(f.state.Audit, structs.AuditEntry{
		Index:     index,
		Time:      w.Time,
		Actor:     w.Actor,
		Action:    action,
		Detail:    detail,
		RequestID: w.RequestID,
	})
}

// applyAudit appends an operator action to the audit trail.
func (f *FSM) applyAudit(req *structs.AuditRequest, index uint64) string {
	f.auditLocked(index, &req.WriteRequest, req.Action, req.Detail)
	return ""
}

// Snapshot captures the state; the encoding is written out in Persist.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	buf, err := json.Marshal(f.state)
	if err != nil {
		return nil, fmt.Errorf("encode fsm state: %w", err)
	}
	return &fsmSnapshot{buf: buf}, nil
}

// Restore replaces the state with a snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	state := newFSMState()
	if err := json.NewDecoder(rc).Decode(state); err != nil {
		return fmt.Errorf("decode fsm snapshot: %w", err)
	}
	if state.Executions == nil {
		state.Executions = map[string]*structs.Execution{}
	}
	f.mu.Lock()
	f.state = state
	f.notifyLocked()
	f.mu.Unlock()
	return nil
}

type fsmSnapshot struct {
	buf []byte
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.buf); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write fsm snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// requestTable remembers the result of the newest applied request ids, in
// application order, so eviction is deterministic on every server.
type requestTable struct {
	Results map[string]structs.ApplyResult `json:"results"`
	Order   []string                       `json:"order"`
}

func (t *requestTable) get(id string) (structs.ApplyResult, bool) {
	if id == "" {
		return structs.ApplyResult{}, false
	}
	res, ok := t.Results[id]
	return res, ok
}

func (t *requestTable) put(id string, res structs.ApplyResult) {
	if id == "" {
		return
	}
	t.Results[id] = res
	t.Order = append(t.Order, id)
	for len(t.Order) > maxRecordedRequests {
		delete(t.Results, t.Order[0])
		t.Order = t.Order[1:]
	}
}
