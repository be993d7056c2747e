package controlplane

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// schedulerTick is how often the leader looks at its schedules: slots
// are minutes apart at the finest, and a second late is on time.
const schedulerTick = time.Second

// deferralHorizon is how far ahead a slot inside trading hours looks for
// free time long enough for its drill.
const deferralHorizon = 31 * 24 * time.Hour

// runScheduler runs the schedule blocks' drills while this server leads.
// Every decision is recorded in the replicated state first (the first
// sight of a block, a deferral, the slot an execution takes), so a new
// leader neither runs a slot twice nor forgets that one was moved.
func (s *Server) runScheduler(ctx context.Context) {
	if len(s.config.Schedules) == 0 {
		return
	}
	t := time.NewTicker(schedulerTick)
	defer t.Stop()
	for {
		for _, sc := range s.config.Schedules {
			if ctx.Err() != nil {
				return
			}
			if err := s.runSchedule(ctx, sc); err != nil {
				s.logger.Warn("schedule not run", "schedule", sc.Name, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scheduleState is a schedule as the leader judges it now.
type scheduleState struct {
	config.ScheduleConfig
	state structs.ScheduleState
	// due is the slot to run now or as soon as allowed; zero when none
	// is due. next is the first slot after it, or after the last taken.
	due, next time.Time
	// expected is how long the drill is expected to run: its plan's RTO
	// target. A drill is started only where it ends before trading opens.
	expected time.Duration
}

// judgeSchedule computes what sc has due at now from the replicated state.
func (s *Server) judgeSchedule(v scheduleView, sc config.ScheduleConfig, now time.Time) scheduleState {
	j := scheduleState{ScheduleConfig: sc, state: v.Schedules[sc.Name]}
	since := j.state.Since
	if since.IsZero() {
		since = now
	}
	for _, scn := range plan.Scenarios(s.config.Objectives, s.config.Plans) {
		if scn.Name == sc.Plan {
			j.expected = scn.Objectives.RTO
		}
	}
	if sc.Timing.Every > 0 {
		// Counted from the plan's last drill, whoever ran it: a drill
		// run by hand last week satisfies this week's programme.
		base := j.state.LastSlot
		if last, ok := v.LastDrill[sc.Plan]; ok && last.TriggeredAt.After(base) {
			base = last.TriggeredAt
		}
		slot := since
		if !base.IsZero() {
			slot = base.Add(sc.Timing.Every)
		}
		if !slot.After(now) {
			j.due, j.next = slot, slot.Add(sc.Timing.Every)
		} else {
			j.next = slot
		}
		return j
	}
	base := since
	if j.state.LastSlot.After(base) {
		base = j.state.LastSlot
	}
	if slot, ok := sc.Timing.LatestAtOrBefore(base, now); ok && !repeatedHour(sc, j.state.LastSlot, slot) {
		j.due = slot
	}
	j.next = sc.Timing.NextAfter(maxTime(base, now))
	return j
}

// runSchedule records a schedule first seen and runs or defers its due
// slot.
func (s *Server) runSchedule(ctx context.Context, sc config.ScheduleConfig) error {
	now := s.calendar.Now()
	v := s.fsm.scheduleView()
	if st := v.Schedules[sc.Name]; st.Since.IsZero() {
		if _, err := s.raftApply(structs.ScheduleRequestType, &structs.ScheduleRequest{
			WriteRequest: structs.WriteRequest{RequestID: uuid.NewString(), Actor: s.scheduleActor(sc)}, Name: sc.Name, Op: structs.ScheduleSeen, At: now,
		}); err != nil {
			return fmt.Errorf("record schedule %s: %w", sc.Name, err)
		}
		v = s.fsm.scheduleView()
	}
	j := s.judgeSchedule(v, sc, now)
	if j.due.IsZero() {
		return nil
	}
	if d := j.state.Deferred; d != nil && d.Slot.Equal(j.due) && !d.NoSlot && now.Before(d.To) {
		return nil // moved out of trading hours; not yet time
	}
	if v.blocked() != "" {
		return nil
	}
	free, ok := s.config.TradingHours.FirstFree(now, j.expected, deferralHorizon)
	if !ok || free.After(now) {
		return s.deferSlot(sc, j, now, free, ok)
	}
	return s.startScheduled(ctx, sc, j)
}

// deferSlot records that j's due slot falls inside trading hours: moved to
// free, or, when !ok, waiting for free time that the horizon does not
// hold.
func (s *Server) deferSlot(sc config.ScheduleConfig, j scheduleState, now, free time.Time, ok bool) error {
	d := &structs.ScheduleDeferral{Slot: j.due, To: free, NoSlot: !ok}
	if sess, in := s.config.TradingHours.Overlap(now, now.Add(max(j.expected, time.Nanosecond))); in {
		d.Market = sess.Market
	}
	if cur := j.state.Deferred; cur != nil && cur.Slot.Equal(d.Slot) && cur.To.Equal(d.To) && cur.NoSlot == d.NoSlot {
		return nil
	}
	_, err := s.raftApply(structs.ScheduleRequestType, &structs.ScheduleRequest{
		WriteRequest: structs.WriteRequest{RequestID: uuid.NewString(), Actor: s.scheduleActor(sc)}, Name: sc.Name, Op: structs.ScheduleDefer, Deferral: d, At: now,
	})
	if err != nil {
		return fmt.Errorf("record deferral of schedule %s: %w", sc.Name, err)
	}
	s.logger.Info("scheduled drill deferred out of trading hours", "schedule", sc.Name, "slot", d.Slot, "to", d.To, "market", d.Market, "no_slot", d.NoSlot)
	return nil
}

// startScheduled starts the execution of j's due slot.
func (s *Server) startScheduled(ctx context.Context, sc config.ScheduleConfig, j scheduleState) error {
	req, err := scheduledRequest(sc, s.config.Plans)
	if err != nil {
		return err
	}
	actor := s.scheduleActor(sc)
	ex, err := s.newExecution(req, actor, time.Now())
	if err != nil {
		return fmt.Errorf("plan schedule %s: %w", sc.Name, err)
	}
	ex.Trigger, ex.Schedule, ex.ScheduledFor, ex.Exercises = structs.TriggerScheduled, sc.Name, j.due, sc.Plan
	res, err := s.raftApply(structs.StartExecutionRequestType, &structs.StartExecutionRequest{
		WriteRequest: structs.WriteRequest{RequestID: uuid.NewString(), Actor: actor},
		Execution:    *ex,
	})
	if err != nil {
		return fmt.Errorf("start schedule %s: %w", sc.Name, err)
	}
	if res.Rejection != "" {
		return fmt.Errorf("start schedule %s: %s", sc.Name, res.Rejection)
	}
	s.logger.Info("scheduled execution started", "schedule", sc.Name, "slot", j.due, "execution_id", ex.ID, "kind", ex.Kind, "plan", sc.Plan)
	s.startExecutor(ctx, ex.ID)
	return nil
}

// scheduleActor is who a schedule's records name.
func (s *Server) scheduleActor(sc config.ScheduleConfig) string {
	return "server:" + s.config.NodeID + " (schedule " + sc.Name + ")"
}

// scheduledRequest is the execution a schedule runs: the drill of its
// plan (a site drill for a plan that moves the active site, a restore
// drill for a restore plan), or a restart in place.
func scheduledRequest(sc config.ScheduleConfig, defs []*plan.Definition) (*pb.StartExecutionRequest, error) {
	kind, _, err := plan.Resolve(sc.Plan, defs)
	if err != nil {
		return nil, err
	}
	switch {
	case kind == plan.KindRestart:
		return &pb.StartExecutionRequest{Kind: string(plan.KindRestart), Plan: sc.Plan}, nil
	case kind == plan.KindRestore:
		return &pb.StartExecutionRequest{Kind: string(plan.KindDrill), Plan: string(plan.KindRestore)}, nil
	case kind == plan.KindDrill && sc.Plan != string(plan.KindDrill):
		return &pb.StartExecutionRequest{Kind: string(plan.KindDrill), Plan: sc.Plan}, nil
	}
	return &pb.StartExecutionRequest{Kind: string(plan.KindDrill)}, nil
}

// repeatedHour reports whether slot is the same local time as last, an
// hour or two later: the autumn clock change repeats an hour, and a cron
// fires in it twice (01:30 EDT, then 01:30 EST); the programme runs one
// drill for it.
func repeatedHour(sc config.ScheduleConfig, last, slot time.Time) bool {
	if last.IsZero() || slot.Sub(last) > 2*time.Hour {
		return false
	}
	loc := sc.Timing.Location
	if loc == nil {
		loc = time.UTC
	}
	a, b := last.In(loc), slot.In(loc)
	return a.Hour() == b.Hour() && a.Minute() == b.Minute() && a.YearDay() == b.YearDay()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
