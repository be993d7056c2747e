package controlplane

import (
	"fmt"
	"slices"
	"time"

	"github.com/drplane/drplane/internal/kpi"
	"github.com/drplane/drplane/internal/notify"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
)

// maxScheduleLog is how many events each schedule's log keeps.
const maxScheduleLog = 50

// availabilityRetention is how far back the availability record reaches:
// a year's window and some.
const availabilityRetention = 400 * 24 * time.Hour

// scheduleLocked returns the state of schedule name, creating it.
func (f *FSM) scheduleLocked(name string) *structs.ScheduleState {
	if f.state.Schedules == nil {
		f.state.Schedules = map[string]*structs.ScheduleState{}
	}
	st := f.state.Schedules[name]
	if st == nil {
		st = &structs.ScheduleState{}
		f.state.Schedules[name] = st
	}
	return st
}

// logScheduleLocked appends one event to a schedule's log.
func logScheduleLocked(st *structs.ScheduleState, e structs.ScheduleEvent) {
	st.Log = append(st.Log, e)
	if over := len(st.Log) - maxScheduleLog; over > 0 {
		st.Log = st.Log[over:]
	}
}

// applySchedule records a schedule first seen, or a slot deferred out of
// trading hours.
func (f *FSM) applySchedule(req *structs.ScheduleRequest, index uint64) string {
	if req.Name == "" || req.At.IsZero() {
		return "a schedule request needs the schedule's name and the instant it was decided at"
	}
	switch req.Op {
	case structs.ScheduleSeen:
		st := f.scheduleLocked(req.Name)
		if st.Since.IsZero() {
			st.Since = req.At
		}
		return ""
	case structs.ScheduleDefer:
		d := req.Deferral
		if d == nil || d.Slot.IsZero() {
			return "a deferral needs its slot"
		}
		st := f.scheduleLocked(req.Name)
		if !st.LastSlot.IsZero() && !d.Slot.After(st.LastSlot) {
			return fmt.Sprintf("schedule %s: slot %s was taken by %s", req.Name, d.Slot.UTC().Format(time.RFC3339), st.LastExecution)
		}
		if cur := st.Deferred; cur != nil && cur.Slot.Equal(d.Slot) && cur.To.Equal(d.To) && cur.NoSlot == d.NoSlot {
			return "" // the same move, proposed again by a new leader
		}
		st.Deferred = d
		detail := fmt.Sprintf("slot %s falls inside trading hours (%s): deferred to %s", d.Slot.UTC().Format(time.RFC3339), d.Market, d.To.UTC().Format(time.RFC3339))
		if d.NoSlot {
			detail = fmt.Sprintf("slot %s: no time outside trading hours (%s) long enough for the drill within the search horizon; waiting", d.Slot.UTC().Format(time.RFC3339), d.Market)
		}
		logScheduleLocked(st, structs.ScheduleEvent{At: req.Time, Slot: d.Slot, Detail: detail})
		f.auditLocked(index, &req.WriteRequest, "schedule-deferred", "schedule "+req.Name+": "+detail)
		f.raiseLocked(structs.Notification{ID: fmt.Sprintf("schedule/%s/%d/deferred", req.Name, d.Slot.Unix()), Event: notify.EventDrillDeferred,
			Message: "scheduled drill " + req.Name + ": " + detail, RaisedAt: req.Time})
		return ""
	}
	return fmt.Sprintf("unknown schedule operation %q", req.Op)
}

// takeSlotLocked records that ex runs its schedule's slot; it refuses a
// slot already taken, so that two leaders never run one slot twice.
func (f *FSM) takeSlotLocked(ex *structs.Execution, at time.Time) string {
	if ex.Schedule == "" || ex.ScheduledFor.IsZero() {
		return fmt.Sprintf("scheduled execution %s names no schedule slot", ex.ID)
	}
	st := f.scheduleLocked(ex.Schedule)
	if !st.LastSlot.IsZero() && !ex.ScheduledFor.After(st.LastSlot) {
		return fmt.Sprintf("schedule %s: slot %s was taken by %s", ex.Schedule, ex.ScheduledFor.UTC().Format(time.RFC3339), st.LastExecution)
	}
	st.LastSlot, st.LastExecution, st.Deferred = ex.ScheduledFor, ex.ID, nil
	detail := fmt.Sprintf("started %s (%s of plan %s)", ex.ID, ex.Kind, ex.Exercises)
	logScheduleLocked(st, structs.ScheduleEvent{At: at, Slot: ex.ScheduledFor, Detail: detail})
	f.resolveLocked(at, func(n *structs.Notification) bool {
		return n.Event == notify.EventDrillDeferred && n.ID == fmt.Sprintf("schedule/%s/%d/deferred", ex.Schedule, ex.ScheduledFor.Unix())
	})
	f.raiseLocked(structs.Notification{ID: ex.ID + "/scheduled", Event: notify.EventScheduledDrill, Site: ex.To, ExecutionID: ex.ID,
		Message:  fmt.Sprintf("schedule %s started %s %s (plan %s) for its slot %s", ex.Schedule, ex.Kind, ex.ID, ex.Exercises, ex.ScheduledFor.UTC().Format(time.RFC3339)),
		RaisedAt: at})
	return ""
}

// scheduledDrillEndedLocked tells how a scheduled execution ended.
func (f *FSM) scheduledDrillEndedLocked(ex *structs.Execution, req *structs.FinishExecutionRequest) {
	f.resolveLocked(req.Time, func(n *structs.Notification) bool { return n.ID == ex.ID+"/scheduled" })
	f.raiseLocked(structs.Notification{ID: ex.ID + "/scheduled-ended", Event: notify.EventScheduledDrill, Site: ex.To, ExecutionID: ex.ID,
		Message:  fmt.Sprintf("scheduled %s %s (schedule %s, plan %s) %s: %s", ex.Kind, ex.ID, ex.Schedule, ex.Exercises, req.State, req.Message),
		RaisedAt: req.Time})
	if st := f.state.Schedules[ex.Schedule]; st != nil {
		logScheduleLocked(st, structs.ScheduleEvent{At: req.Time, Slot: ex.ScheduledFor, Detail: fmt.Sprintf("%s %s", ex.ID, req.State)})
	}
}

// applyAvailability records minutes of the active site's availability and
// drops what lies beyond the retention.
func (f *FSM) applyAvailability(req *structs.AvailabilityRequest, index uint64) string {
	for _, m := range req.Minutes {
		if m.State != kpi.MinuteUp && m.State != kpi.MinuteDown {
			return fmt.Sprintf("minute %s: state %d is neither up nor down", m.Minute.UTC().Format(time.RFC3339), m.State)
		}
	}
	for _, m := range req.Minutes {
		f.state.Availability.Record(m.Minute, m.State)
	}
	if _, to := f.state.Availability.Span(); !to.IsZero() {
		f.state.Availability.Trim(to.Add(-availabilityRetention))
	}
	return ""
}

// scheduleView is what the scheduler and the status read of the
// programme's state, copied under the lock.
type scheduleView struct {
	Schedules map[string]structs.ScheduleState
	Paused    bool
	// Running is the running execution's id; empty when none runs.
	Running string
	// LastDrill and LastSucceeded are, per plan name, the newest
	// execution that exercised it (a drill of it, or a scheduled
	// restart), and the newest of those that succeeded.
	LastDrill, LastSucceeded map[string]structs.Execution
}

// blocked says why no scheduled execution may start now: automatic action
// paused, or an execution running; empty when none.
func (v scheduleView) blocked() string {
	switch {
	case v.Paused:
		return "automatic action is paused (drplane resume)"
	case v.Running != "":
		return fmt.Sprintf("execution %s is running", v.Running)
	}
	return ""
}

func (f *FSM) scheduleView() scheduleView {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v := scheduleView{Schedules: map[string]structs.ScheduleState{}, Paused: f.state.Automation.Paused,
		LastDrill: map[string]structs.Execution{}, LastSucceeded: map[string]structs.Execution{}}
	for name, st := range f.state.Schedules {
		c := *st
		c.Log = slices.Clone(st.Log)
		v.Schedules[name] = c
	}
	for _, id := range f.state.ExecutionOrder {
		ex := f.state.Executions[id]
		if ex == nil {
			continue
		}
		if ex.State == structs.ExecRunning {
			v.Running = ex.ID
		}
		if ex.Exercises == "" {
			continue
		}
		brief := *ex
		brief.Plan, brief.Steps = plan.Plan{}, nil
		v.LastDrill[ex.Exercises] = brief
		if ex.State == structs.ExecSucceeded {
			v.LastSucceeded[ex.Exercises] = brief
		}
	}
	return v
}

// availability returns a copy of the availability record.
func (f *FSM) availability() kpi.Minutes {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return kpi.Minutes{Runs: slices.Clone(f.state.Availability.Runs)}
}
