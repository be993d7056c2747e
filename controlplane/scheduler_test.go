package controlplane

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/calendar"
	"github.com/drplane/drplane/internal/clock"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/notify"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// usEquities is the New York equity market's trading hours.
func usEquities(t *testing.T) calendar.TradingHours {
	t.Helper()
	h, err := calendar.NewTradingHours("us-equities", "America/New_York", []string{"mon", "tue", "wed", "thu", "fri"}, "09:30", "16:00")
	require.NoError(t, err)
	return h
}

// scheduledTwoSites is twoSites whose servers run the programme by cal,
// with us-equities trading hours and the schedules given.
func scheduledTwoSites(t *testing.T, cal clock.Clock, schedules ...config.ScheduleConfig) *twoSites {
	t.Helper()
	hours := usEquities(t)
	c := newTestClusterSites(t, nil, testRaftConfig, testSites(3), func(cfg *config.ServerConfig) {
		cfg.TradingHours = calendar.Calendar{hours}
		cfg.Schedules = schedules
		// The drill's expected length: it must end before the open.
		cfg.Objectives.RTO = 15 * time.Minute
	}, withCalendar(cal))
	return newTwoSitesIn(t, c)
}

// listSchedules waits for the leader's schedule list to satisfy cond.
func (ts *twoSites) waitSchedule(t *testing.T, name, what string, cond func(*pb.Schedule) bool) *pb.Schedule {
	t.Helper()
	var found *pb.Schedule
	testutil.WaitForResult(t, 60*time.Second, func() (bool, error) {
		resp, err := ts.c.client(ts.c.waitForLeader()).ListSchedules(testCtx(t), &pb.ListSchedulesRequest{})
		if err != nil {
			return false, err
		}
		for _, s := range resp.GetSchedules() {
			if s.GetName() == name {
				found = s
				if cond(s) {
					return true, nil
				}
			}
		}
		return false, fmt.Errorf("schedule %s: not yet %s: %v", name, what, found)
	})
	return found
}

// TestScheduler_DrillDeferredOutOfTradingHours_RunsOnce: a site drill
// every 90 days that never ran is due at once, but it is a Friday 10:00
// in New York: the leader records the move to the close (16:00) and tells
// the drill_deferred receivers, and runs nothing. At 16:00 it runs the
// drill, recorded as scheduled, for its slot; a new leader does not run
// the slot again, and status shows the plan's drill as done.
func TestScheduler_DrillDeferredOutOfTradingHours_RunsOnce(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	// The coming Friday, 10:00 in New York: the programme's clock runs a
	// few days ahead of the real one, which the executions' own times
	// keep.
	friday10 := nextWeekday(time.Now().In(ny).AddDate(0, 0, 1), time.Friday, 10, ny)
	cal := clock.NewFake(friday10)
	timing, err := calendar.NewSchedule("", "90d", "")
	require.NoError(t, err)
	ts := scheduledTwoSites(t, cal, config.ScheduleConfig{Name: "site-drill", Plan: "failover", Drill: true, Timing: timing})
	client := func() pb.OperatorClient { return ts.c.client(ts.c.waitForLeader()) }

	friday16 := nextWeekday(friday10, time.Friday, 16, ny)
	s := ts.waitSchedule(t, "site-drill", "deferred", func(s *pb.Schedule) bool { return s.GetDeferred() != nil })
	require.True(t, s.GetDeferred().GetTo().AsTime().Equal(friday16), "deferred to the close: %s", s.GetDeferred().GetTo().AsTime())
	require.True(t, s.GetDeferred().GetSlot().AsTime().Equal(friday10))
	require.Equal(t, "us-equities", s.GetDeferred().GetMarket())
	require.True(t, s.GetNextRun().AsTime().Equal(friday16))
	notes, err := client().ListNotifications(testCtx(t), &pb.ListNotificationsRequest{})
	require.NoError(t, err)
	require.True(t, hasEvent(notes.GetNotifications(), notify.EventDrillDeferred), "drill_deferred raised")
	// Inside trading hours nothing runs, however long the leader looks.
	time.Sleep(3 * schedulerTick)
	require.Empty(t, executions(t, ts))
	st := ts.status(t)
	require.True(t, planDrill(t, st, "failover").GetOverdue(), "never drilled: overdue")
	require.False(t, planDrill(t, st, "restore").GetOverdue(), "no schedule: never overdue")
	require.Nil(t, planDrill(t, st, "restore").GetInterval())

	// At the close the drill runs.
	cal.Advance(friday16.Sub(friday10))
	var ex *pb.Execution
	testutil.WaitForResult(t, 60*time.Second, func() (bool, error) {
		exs := executions(t, ts)
		if len(exs) == 0 {
			return false, fmt.Errorf("no execution yet")
		}
		ex = exs[0]
		return true, nil
	})
	ex = ts.waitEnded(t, ex.GetId())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.Equal(t, "drill", ex.GetKind())
	require.Equal(t, pb.ExecutionTrigger_EXECUTION_TRIGGER_SCHEDULED, ex.GetTrigger())
	require.Equal(t, "site-drill", ex.GetSchedule())
	require.Equal(t, "failover", ex.GetExercises())
	require.True(t, ex.GetScheduledFor().AsTime().Equal(friday10), "the slot, before its deferral")
	require.Equal(t, driver.RolePrimary, ts.db1["postgres"].Role(), "a drill leaves production alone")
	notes, err = client().ListNotifications(testCtx(t), &pb.ListNotificationsRequest{})
	require.NoError(t, err)
	require.True(t, hasEvent(notes.GetNotifications(), notify.EventScheduledDrill), "scheduled_drill raised")

	// The next slot is 90 days on; a new leader runs nothing now.
	s = ts.waitSchedule(t, "site-drill", "taken", func(s *pb.Schedule) bool { return s.GetLastExecution() == ex.GetId() })
	require.True(t, s.GetNextSlot().AsTime().Equal(friday10.Add(90*24*time.Hour)), "next slot %s", s.GetNextSlot().AsTime())
	require.Nil(t, s.GetDue())
	old := ts.c.waitForLeader()
	ts.c.leadFrom(t, otherSite(old.cfg.Site))
	time.Sleep(3 * schedulerTick)
	require.Len(t, executions(t, ts), 1, "a new leader does not run the slot again")
	st = ts.status(t)
	d := planDrill(t, st, "failover")
	require.Equal(t, ex.GetId(), d.GetLastExecution())
	require.False(t, d.GetOverdue(), d.GetOverdueReason())
	require.Equal(t, 90*24*time.Hour, d.GetInterval().AsDuration())
}

// nextWeekday is the first day on or after from that is day, at hour
// o'clock in loc.
func nextWeekday(from time.Time, day time.Weekday, hour int, loc *time.Location) time.Time {
	d := time.Date(from.Year(), from.Month(), from.Day(), hour, 0, 0, 0, loc)
	for d.Weekday() != day {
		d = d.AddDate(0, 0, 1)
	}
	return d
}

// planDrill is plan's drill record in st.
func planDrill(t *testing.T, st *pb.GetStatusResponse, plan string) *pb.PlanDrill {
	t.Helper()
	var names []string
	for _, d := range st.GetDrills() {
		if d.GetPlan() == plan {
			return d
		}
		names = append(names, d.GetPlan())
	}
	t.Fatalf("no drill record of plan %s in status: %v", plan, names)
	return nil
}

func hasEvent(ns []*pb.Notification, event string) bool {
	for _, n := range ns {
		if n.GetEvent() == event {
			return true
		}
	}
	return false
}

// otherSite is a site whose server is not in site.
func otherSite(site string) string {
	if site == "dr" {
		return "witness"
	}
	return "dr"
}

// TestFSM_ScheduleSlotTakenOnce: two leaders proposing the same slot (one
// deposed after its proposal committed) start one execution; a deferral
// proposed again is not logged twice, and one for a taken slot is
// refused.
func TestFSM_ScheduleSlotTakenOnce(t *testing.T) {
	f := newTestFSM(t)
	initSites(t, f)
	slot := time.Date(2027, 3, 13, 11, 0, 0, 0, time.UTC)
	deferral := &structs.ScheduleDeferral{Slot: slot, To: slot.Add(5 * time.Hour), Market: "us-equities"}
	for _, id := range []string{"leader-1", "leader-2"} {
		res := f.apply(t, structs.ScheduleRequestType, &structs.ScheduleRequest{WriteRequest: structs.WriteRequest{RequestID: id}, Name: "restore-drill", Op: structs.ScheduleDefer, Deferral: deferral, At: slot})
		require.NoError(t, res.Err())
	}
	v := f.scheduleView()
	require.Len(t, v.Schedules["restore-drill"].Log, 1, "the same move proposed again is logged once")

	start := func(id string) *structs.ApplyResult {
		ex := structs.Execution{ID: id, Kind: "drill", Trigger: structs.TriggerScheduled, Schedule: "restore-drill", ScheduledFor: slot, Exercises: "restore", StartEpoch: 1}
		return f.apply(t, structs.StartExecutionRequestType, &structs.StartExecutionRequest{WriteRequest: structs.WriteRequest{RequestID: id}, Execution: ex})
	}
	require.NoError(t, start("drill-a").Err())
	require.NoError(t, f.apply(t, structs.FinishExecutionRequestType, &structs.FinishExecutionRequest{WriteRequest: structs.WriteRequest{RequestID: "fin"}, ExecutionID: "drill-a", State: structs.ExecSucceeded}).Err())
	require.Contains(t, start("drill-b").Rejection, "was taken by drill-a")
	v = f.scheduleView()
	require.Nil(t, v.Schedules["restore-drill"].Deferred, "taking the slot ends its deferral")
	require.Equal(t, "drill-a", v.LastSucceeded["restore"].ID)
	late := f.apply(t, structs.ScheduleRequestType, &structs.ScheduleRequest{WriteRequest: structs.WriteRequest{RequestID: "late"}, Name: "restore-drill", Op: structs.ScheduleDefer, At: slot,
		Deferral: &structs.ScheduleDeferral{Slot: slot, To: slot.Add(time.Hour)}})
	require.Contains(t, late.Rejection, "was taken", "a deferral of a taken slot is refused")
	// Both ends of the drill were told.
	var told []string
	for _, n := range f.notifications() {
		told = append(told, n.Event)
	}
	require.Equal(t, []string{notify.EventDrillDeferred, notify.EventScheduledDrill, notify.EventScheduledDrill}, told)
	require.Equal(t, structs.ExecSucceeded, v.LastDrill["restore"].State)
}

// TestJudgeSchedule pins what the leader finds due, from the replicated
// state, on the programme's clock.
func TestJudgeSchedule(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	cron := func(spec string) calendar.Schedule {
		s, err := calendar.NewSchedule(spec, "", "America/New_York")
		require.NoError(t, err)
		return s
	}
	every, err := calendar.NewSchedule("", "90d", "")
	require.NoError(t, err)
	sat6 := time.Date(2027, 3, 13, 6, 0, 0, 0, ny)
	day := 24 * time.Hour
	cases := []struct {
		name      string
		timing    calendar.Schedule
		state     structs.ScheduleState
		lastDrill time.Time // of the plan, by anyone
		now       time.Time
		due, next time.Time
	}{
		// A cron's first slot comes after the leader first saw it.
		{name: "cron, seen on Friday: Saturday 06:00 is next", timing: cron("0 6 * * sat"),
			state: structs.ScheduleState{Since: sat6.Add(-20 * time.Hour)}, now: sat6.Add(-time.Hour), next: sat6},
		{name: "cron, Saturday 06:00 passed: due", timing: cron("0 6 * * sat"),
			state: structs.ScheduleState{Since: sat6.Add(-20 * time.Hour)}, now: sat6.Add(time.Minute), due: sat6, next: sat6.AddDate(0, 0, 7)},
		// Three missed Saturdays (no leader ran): one drill, for the
		// latest.
		{name: "cron, slots missed: only the latest is due", timing: cron("0 6 * * sat"),
			state: structs.ScheduleState{Since: sat6.Add(-22 * day), LastSlot: sat6.Add(-21 * day)}, now: sat6.Add(time.Hour), due: sat6, next: sat6.AddDate(0, 0, 7)},
		{name: "cron, slot taken: nothing due", timing: cron("0 6 * * sat"),
			state: structs.ScheduleState{Since: sat6.Add(-day), LastSlot: sat6}, now: sat6.Add(time.Hour), next: sat6.AddDate(0, 0, 7)},
		// The autumn change repeats 01:30: one drill, not two.
		{name: "cron in the repeated hour: one slot", timing: cron("30 1 * * *"),
			state: structs.ScheduleState{Since: time.Date(2027, 11, 6, 12, 0, 0, 0, ny), LastSlot: time.Date(2027, 11, 7, 1, 30, 0, 0, time.FixedZone("EDT", -4*3600))},
			now:   time.Date(2027, 11, 7, 1, 45, 0, 0, time.FixedZone("EST", -5*3600)), next: time.Date(2027, 11, 8, 1, 30, 0, 0, ny)},
		// Never drilled: due when first seen.
		{name: "every, never run: due at once", timing: every, state: structs.ScheduleState{Since: sat6}, now: sat6, due: sat6, next: sat6.Add(90 * day)},
		{name: "every, counted from the last slot", timing: every, state: structs.ScheduleState{Since: sat6, LastSlot: sat6}, now: sat6.Add(89 * day),
			next: sat6.Add(90 * day)},
		// A drill run by hand counts: the next is 90 days after it.
		{name: "every, counted from a drill run by hand", timing: every, state: structs.ScheduleState{Since: sat6, LastSlot: sat6},
			lastDrill: sat6.Add(30 * day), now: sat6.Add(91 * day), next: sat6.Add(120 * day)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{config: &config.ServerConfig{}}
			v := scheduleView{Schedules: map[string]structs.ScheduleState{"s": tc.state}, LastDrill: map[string]structs.Execution{}}
			if !tc.lastDrill.IsZero() {
				v.LastDrill["failover"] = structs.Execution{ID: "drill-1", TriggeredAt: tc.lastDrill}
			}
			j := s.judgeSchedule(v, config.ScheduleConfig{Name: "s", Plan: "failover", Drill: true, Timing: tc.timing}, tc.now)
			require.True(t, j.due.Equal(tc.due), "due %s, want %s", j.due, tc.due)
			require.True(t, j.next.Equal(tc.next), "next %s, want %s", j.next, tc.next)
		})
	}
}
