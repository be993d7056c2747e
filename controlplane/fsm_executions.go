package controlplane

import (
	"fmt"
	"maps"
	"slices"

	"github.com/drplane/drplane/internal/notify"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
)

// applyStartExecution starts an execution if none is running and the epoch
// is still the one its plan was derived in: one execution at a time per
// deployment, never one planned against a stale active site.
func (f *FSM) applyStartExecution(req *structs.StartExecutionRequest, index uint64) string {
	ex := req.Execution
	if running := f.runningExecutionLocked(); running != nil {
		return fmt.Sprintf("execution %s (%s to %s) is running; wait for it, or cancel it with `drplane cancel %s`", running.ID, running.Kind, running.To, running.ID)
	}
	if _, dup := f.state.Executions[ex.ID]; dup {
		return fmt.Sprintf("execution %s exists", ex.ID)
	}
	if ex.StartEpoch != f.state.Epoch {
		return fmt.Sprintf("epoch is %d, not %d: the active site changed while the plan was made; run the command again", f.state.Epoch, ex.StartEpoch)
	}
	if ex.Trigger == structs.TriggerAutomatic {
		if why := f.state.Automation.Blocked(req.Time, req.Cooldown); why != "" {
			return why
		}
	}
	if len(ex.Steps) != len(ex.Plan.Steps) {
		return fmt.Sprintf("execution %s has %d step states for %d steps", ex.ID, len(ex.Steps), len(ex.Plan.Steps))
	}
	if ex.Trigger == structs.TriggerScheduled {
		// One execution per slot, whichever leader proposes it.
		if why := f.takeSlotLocked(&ex, req.Time); why != "" {
			return why
		}
	}
	ex.State = structs.ExecRunning
	ex.StartedAt = req.Time
	f.state.Executions[ex.ID] = &ex
	f.state.ExecutionOrder = append(f.state.ExecutionOrder, ex.ID)
	if ex.Trigger == structs.TriggerAutomatic {
		f.state.Automation.LastAutomatic, f.state.Automation.LastAutomaticID = req.Time, ex.ID
	}
	f.auditLocked(index, &req.WriteRequest, "start-execution",
		fmt.Sprintf("%s %s: %s -> %s, plan %s, %d steps, trigger %s", ex.Kind, ex.ID, ex.From, ex.To, ex.PlanName, len(ex.Steps), ex.Trigger))
	if ex.Kind == string(plan.KindFailover) {
		f.raiseLocked(structs.Notification{ID: ex.ID + "/failover", Event: notify.EventFailover, Site: ex.To, ExecutionID: ex.ID,
			Message: fmt.Sprintf("%s failover from %s to %s started (%s)", ex.Trigger, ex.From, ex.To, ex.ID), RaisedAt: req.Time})
	}
	return ""
}

// applyStepUpdate moves one step. The transitions allowed are exactly the
// ones a single leader makes in order, so a deposed leader's late update
// or a duplicate from a resumed run is refused rather than applied twice.
func (f *FSM) applyStepUpdate(req *structs.StepUpdateRequest, index uint64) string {
	ex, i, reject := f.runningStepLocked(req.ExecutionID, req.Step.ID)
	if reject != "" {
		return reject
	}
	cur := &ex.Steps[i]
	next := req.Step
	switch next.State {
	case structs.StepRunning:
		switch {
		case cur.State == structs.StepPending && next.Attempt == 1:
		case cur.State == structs.StepRunning && next.Attempt == cur.Attempt+1:
		case cur.State == structs.StepRunning && next.Attempt == cur.Attempt:
			return "" // a resumed run re-sending the same attempt
		default:
			return fmt.Sprintf("step %s of %s is %s (attempt %d); cannot start attempt %d", cur.ID, ex.ID, cur.State, cur.Attempt, next.Attempt)
		}
		step := ex.Plan.Steps[i]
		if !step.Always && !step.Rollback && ex.CancelRequested {
			return fmt.Sprintf("execution %s is being cancelled; step %s is not started", ex.ID, cur.ID)
		}
		// A rollback starts services at the original site again: only
		// while that site is still the active one, in the epoch the
		// execution started in (invariant 1).
		if step.Rollback && (f.state.ActiveSite != ex.From || f.state.Epoch != ex.StartEpoch) {
			return fmt.Sprintf("step %s of %s rolls back to site %s in epoch %d, but site %s is active in epoch %d",
				cur.ID, ex.ID, ex.From, ex.StartEpoch, f.state.ActiveSite, f.state.Epoch)
		}
		cur.State, cur.Attempt, cur.StartedAt, cur.Message = structs.StepRunning, next.Attempt, req.Time, next.Message
	case structs.StepWaiting:
		if cur.State != structs.StepRunning || next.Attempt != cur.Attempt {
			return fmt.Sprintf("step %s of %s is %s; it cannot wait for approval", cur.ID, ex.ID, cur.State)
		}
		cur.State, cur.Message = structs.StepWaiting, next.Message
		f.raiseLocked(structs.Notification{ID: ex.ID + "/approval/" + cur.ID, Event: notify.EventApprovalWaiting, Site: ex.To, ExecutionID: ex.ID,
			Message: fmt.Sprintf("%s %s waits for approval at step %s: drplane approve %s", ex.Kind, ex.ID, cur.ID, ex.ID), RaisedAt: req.Time})
	case structs.StepSucceeded, structs.StepFailed, structs.StepCancelled:
		if (cur.State != structs.StepRunning && cur.State != structs.StepWaiting) || next.Attempt != cur.Attempt {
			return fmt.Sprintf("step %s of %s is %s (attempt %d); cannot end attempt %d", cur.ID, ex.ID, cur.State, cur.Attempt, next.Attempt)
		}
		if req.Activate != nil && next.State == structs.StepSucceeded {
			if reject := f.activateLocked(req, index); reject != "" {
				return reject
			}
		}
		if cur.State == structs.StepWaiting {
			approval := ex.ID + "/approval/" + cur.ID
			f.resolveLocked(req.Time, func(n *structs.Notification) bool { return n.ID == approval })
		}
		cur.State, cur.EndedAt, cur.Message = next.State, req.Time, next.Message
		cur.Outputs, cur.Replayed, cur.Verified = maps.Clone(next.Outputs), next.Replayed, next.Verified
		if next.State == structs.StepFailed {
			f.raiseLocked(structs.Notification{ID: fmt.Sprintf("%s/step_failed/%s", ex.ID, cur.ID), Event: notify.EventStepFailed, Site: ex.To, ExecutionID: ex.ID,
				Message: fmt.Sprintf("step %s of %s %s failed: %s", cur.ID, ex.Kind, ex.ID, next.Message), RaisedAt: req.Time})
		}
	default:
		return fmt.Sprintf("step state %q is not one a step moves to", next.State)
	}
	return ""
}

// activateLocked is the activate step's compare-and-set: the same check
// as SetActiveSite, applied in the entry that records the step's success,
// so a resumed execution can never flip the site twice.
func (f *FSM) activateLocked(req *structs.StepUpdateRequest, index uint64) string {
	a := req.Activate
	if a.ExpectedEpoch != f.state.Epoch {
		return fmt.Sprintf("epoch is %d, not %d", f.state.Epoch, a.ExpectedEpoch)
	}
	site, ok := findSite(f.state.Sites, a.Site)
	if !ok || site.Kind != structs.SiteKindData {
		return fmt.Sprintf("site %q is not a declared data site", a.Site)
	}
	from := f.state.ActiveSite
	f.state.ActiveSite = a.Site
	f.state.Epoch++
	f.auditLocked(index, &req.WriteRequest, "set-active-site",
		fmt.Sprintf("active site %s -> %s; epoch %d -> %d; execution %s", from, a.Site, a.ExpectedEpoch, f.state.Epoch, req.ExecutionID))
	return ""
}

// applyApproveStep ends a waiting approval step.
func (f *FSM) applyApproveStep(req *structs.ApproveStepRequest, index uint64) string {
	ex, ok := f.state.Executions[req.ExecutionID]
	if !ok {
		return fmt.Sprintf("execution %q does not exist", req.ExecutionID)
	}
	if ex.State != structs.ExecRunning {
		return fmt.Sprintf("execution %s has ended (%s)", ex.ID, ex.State)
	}
	i := slices.IndexFunc(ex.Steps, func(s structs.ExecStep) bool {
		return s.State == structs.StepWaiting && (req.StepID == "" || s.ID == req.StepID)
	})
	if i < 0 {
		return fmt.Sprintf("execution %s has no step waiting for approval", ex.ID)
	}
	st := &ex.Steps[i]
	st.State, st.EndedAt, st.ApprovedBy = structs.StepSucceeded, req.Time, req.Actor
	st.Message = "approved by " + req.Actor
	f.auditLocked(index, &req.WriteRequest, "approve", fmt.Sprintf("step %s of execution %s", st.ID, ex.ID))
	return ""
}

// applyCancelExecution marks a running execution for cancellation: no new
// step starts (teardown steps still do), a waiting approval ends.
func (f *FSM) applyCancelExecution(req *structs.CancelExecutionRequest, index uint64) string {
	ex, ok := f.state.Executions[req.ExecutionID]
	if !ok {
		return fmt.Sprintf("execution %q does not exist", req.ExecutionID)
	}
	if ex.State != structs.ExecRunning {
		return fmt.Sprintf("execution %s has ended (%s)", ex.ID, ex.State)
	}
	ex.CancelRequested, ex.CancelledBy = true, req.Actor
	for i := range ex.Steps {
		if st := &ex.Steps[i]; st.State == structs.StepWaiting {
			st.State, st.EndedAt, st.Message = structs.StepCancelled, req.Time, "cancelled by "+req.Actor
		}
	}
	f.auditLocked(index, &req.WriteRequest, "cancel", "execution "+ex.ID)
	return ""
}

// applyFinishExecution records the end of a running execution.
func (f *FSM) applyFinishExecution(req *structs.FinishExecutionRequest, index uint64) string {
	ex, ok := f.state.Executions[req.ExecutionID]
	if !ok {
		return fmt.Sprintf("execution %q does not exist", req.ExecutionID)
	}
	if ex.State != structs.ExecRunning {
		return fmt.Sprintf("execution %s has ended (%s)", ex.ID, ex.State)
	}
	switch req.State {
	case structs.ExecSucceeded, structs.ExecFailed, structs.ExecCancelled:
	default:
		return fmt.Sprintf("%q is not an end state of an execution", req.State)
	}
	for _, id := range req.Skip {
		if i := ex.Step(id); i >= 0 && ex.Steps[i].State == structs.StepPending {
			ex.Steps[i].State = structs.StepSkipped
		}
	}
	ex.State, ex.Message, ex.FinishedAt = req.State, req.Message, req.Time
	f.resolveLocked(req.Time, func(n *structs.Notification) bool {
		return n.ExecutionID == ex.ID && n.Event == notify.EventApprovalWaiting
	})
	if ex.Schedule != "" {
		f.scheduledDrillEndedLocked(ex, req)
	}
	if req.State == structs.ExecFailed {
		f.raiseLocked(structs.Notification{ID: ex.ID + "/failed", Event: notify.EventExecutionFailed, Site: ex.To, ExecutionID: ex.ID,
			Message: fmt.Sprintf("%s %s (%s to %s) failed: %s", ex.Kind, ex.ID, ex.From, ex.To, req.Message), RaisedAt: req.Time})
	}
	ex.RTOSeconds = req.RTOSeconds
	if req.RPOSeconds != nil {
		ex.RPOSeconds = req.RPOSeconds
	}
	f.sealLocked(ex, index, req.Time)
	f.auditLocked(index, &req.WriteRequest, "finish-execution", fmt.Sprintf("%s %s %s: %s", ex.Kind, ex.ID, ex.State, ex.Message))
	return ""
}

// applyAutomation pauses or resumes automatic action, or acknowledges the
// last automatic failover.
func (f *FSM) applyAutomation(req *structs.AutomationRequest, index uint64) string {
	a := &f.state.Automation
	switch req.Action {
	case structs.AutomationPause:
		a.Paused, a.PausedBy, a.PausedAt, a.PauseReason = true, req.Actor, req.Time, req.Reason
	case structs.AutomationResume:
		if !a.Paused {
			return "automatic action is not paused"
		}
		a.Paused, a.PausedBy, a.PauseReason = false, "", ""
	case structs.AutomationAck:
		if a.LastAutomatic.IsZero() || !a.AckedAt.Before(a.LastAutomatic) {
			return "there is no unacknowledged automatic failover"
		}
		a.AckedAt, a.AckedBy = req.Time, req.Actor
	default:
		return fmt.Sprintf("automation action %q; expected pause, resume or ack", req.Action)
	}
	f.auditLocked(index, &req.WriteRequest, req.Action, req.Reason)
	return ""
}

// automation returns the automation state.
func (f *FSM) automation() structs.Automation {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Automation
}

func (f *FSM) runningExecutionLocked() *structs.Execution {
	for _, ex := range f.state.Executions {
		if ex.State == structs.ExecRunning {
			return ex
		}
	}
	return nil
}

func (f *FSM) runningStepLocked(execID, stepID string) (*structs.Execution, int, string) {
	ex, ok := f.state.Executions[execID]
	if !ok {
		return nil, -1, fmt.Sprintf("execution %q does not exist", execID)
	}
	if ex.State != structs.ExecRunning {
		return nil, -1, fmt.Sprintf("execution %s has ended (%s)", ex.ID, ex.State)
	}
	i := ex.Step(stepID)
	if i < 0 {
		return nil, -1, fmt.Sprintf("execution %s has no step %q", ex.ID, stepID)
	}
	return ex, i, ""
}

// execution returns a deep copy of one execution.
func (f *FSM) execution(id string) (structs.Execution, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ex, ok := f.state.Executions[id]
	if !ok {
		return structs.Execution{}, false
	}
	return copyExecution(ex), true
}

// executions returns deep copies of every execution, oldest first.
func (f *FSM) executions() []structs.Execution {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]structs.Execution, 0, len(f.state.ExecutionOrder))
	for _, id := range f.state.ExecutionOrder {
		out = append(out, copyExecution(f.state.Executions[id]))
	}
	return out
}

// lastSiteDrill returns the newest successful site drill (not a restore
// drill) at site: the failover's steps rehearsed on isolated copies
// there. It reads from the newest back, copying only what it returns.
func (f *FSM) lastSiteDrill(site string) (structs.Execution, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, id := range slices.Backward(f.state.ExecutionOrder) {
		ex := f.state.Executions[id]
		if ex.Kind == string(plan.KindDrill) && ex.PlanName != string(plan.KindRestore) && ex.To == site && ex.State == structs.ExecSucceeded {
			return copyExecution(ex), true
		}
	}
	return structs.Execution{}, false
}

// runningExecutionIDs lists the executions a new leader must resume.
func (f *FSM) runningExecutionIDs() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var ids []string
	for _, id := range f.state.ExecutionOrder {
		if f.state.Executions[id].State == structs.ExecRunning {
			ids = append(ids, id)
		}
	}
	return ids
}

func copyExecution(ex *structs.Execution) structs.Execution {
	out := *ex
	out.Steps = slices.Clone(ex.Steps)
	for i := range out.Steps {
		out.Steps[i].Outputs = maps.Clone(out.Steps[i].Outputs)
	}
	out.Plan.Steps = slices.Clone(ex.Plan.Steps)
	return out
}
