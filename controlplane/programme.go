package controlplane

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/drplane/drplane/internal/calendar"
	"github.com/drplane/drplane/internal/kpi"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// planDrills is, per plan that has a drill (a failover plan's site drill,
// a restore plan's restore drill) or a schedule or a drill on record, its
// last drill and whether it is overdue: no successful drill within the
// shortest interval of its schedules, or never one.
func (s *Server) planDrills(v scheduleView, now time.Time) []*pb.PlanDrill {
	intervals := map[string]time.Duration{}
	var order []string
	for _, sc := range s.config.Schedules {
		iv := sc.Timing.Interval(now)
		if cur, ok := intervals[sc.Plan]; !ok || iv < cur {
			intervals[sc.Plan] = iv
		}
		if !slices.Contains(order, sc.Plan) {
			order = append(order, sc.Plan)
		}
	}
	for _, scn := range plan.Scenarios(s.config.Objectives, s.config.Plans) {
		if (scn.Kind == plan.KindFailover || scn.Kind == plan.KindRestore) && !slices.Contains(order, scn.Name) {
			order = append(order, scn.Name)
		}
	}
	var others []string
	for name := range v.LastDrill {
		if !slices.Contains(order, name) {
			others = append(others, name)
		}
	}
	slices.Sort(others)
	order = append(order, others...)
	var out []*pb.PlanDrill
	for _, name := range order {
		d := &pb.PlanDrill{Plan: name}
		if last, ok := v.LastDrill[name]; ok {
			d.LastExecution, d.LastState, d.LastAt = last.ID, structs.ExecStateToProto(last.State), timestamppb.New(last.TriggeredAt)
		}
		last, succeeded := v.LastSucceeded[name]
		if succeeded {
			d.LastSucceededAt = timestamppb.New(last.TriggeredAt)
		}
		if iv, ok := intervals[name]; ok {
			d.Interval = durationpb.New(iv)
			switch {
			case !succeeded:
				d.Overdue, d.OverdueReason = true, "no successful drill on record"
			case now.Sub(last.TriggeredAt) > iv:
				d.Overdue, d.OverdueReason = true, fmt.Sprintf("last successful drill %s ago, interval %s", now.Sub(last.TriggeredAt).Round(time.Minute), iv)
			}
		}
		out = append(out, d)
	}
	return out
}

// ListSchedules lists the schedule blocks and what became of their slots.
func (e *operatorEndpoint) ListSchedules(ctx context.Context, req *pb.ListSchedulesRequest) (*pb.ListSchedulesResponse, error) {
	local := func(_ context.Context, req *pb.ListSchedulesRequest) (*pb.ListSchedulesResponse, error) {
		return e.srv.listSchedules(req.GetRead().GetStale()), nil
	}
	if req.GetRead().GetStale() {
		return local(ctx, req)
	}
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.ListSchedules), local)
}

func (s *Server) listSchedules(stale bool) *pb.ListSchedulesResponse {
	now := s.calendar.Now()
	v := s.fsm.scheduleView()
	resp := &pb.ListSchedulesResponse{Meta: s.meta(stale)}
	for _, h := range s.config.TradingHours {
		resp.TradingHours = append(resp.TradingHours, h.Name)
	}
	for _, sc := range s.config.Schedules {
		j := s.judgeSchedule(v, sc, now)
		out := &pb.Schedule{Name: sc.Name, Plan: sc.Plan, Drill: sc.Drill, Cron: sc.Timing.Cron, NextSlot: timestamppb.New(j.next),
			LastExecution: j.state.LastExecution}
		if sc.Timing.Cron != "" {
			out.Timezone = sc.Timing.Location.String()
		} else {
			out.Every = durationpb.New(sc.Timing.Every)
		}
		if !j.state.LastSlot.IsZero() {
			out.LastSlot = timestamppb.New(j.state.LastSlot)
		}
		next := j.next
		if !j.due.IsZero() {
			out.Due, next = timestamppb.New(j.due), now
			out.Waiting = v.blocked()
		}
		if d := j.state.Deferred; d != nil && !j.due.IsZero() && d.Slot.Equal(j.due) {
			out.Deferred = &pb.ScheduleDeferral{Slot: timestamppb.New(d.Slot), Market: d.Market, NoSlot: d.NoSlot}
			if !d.NoSlot {
				out.Deferred.To = timestamppb.New(d.To)
				next = maxTime(d.To, now)
			}
		}
		if free, ok := s.config.TradingHours.FirstFree(next, j.expected, deferralHorizon); ok {
			out.NextRun = timestamppb.New(free)
		}
		for _, ev := range j.state.Log {
			out.Log = append(out.Log, &pb.ScheduleEvent{At: timestamppb.New(ev.At), Slot: timestamppb.New(ev.Slot), Detail: ev.Detail})
		}
		resp.Schedules = append(resp.Schedules, out)
	}
	return resp
}

// GetKPIs computes the programme's KPIs against the objectives.
func (e *operatorEndpoint) GetKPIs(ctx context.Context, req *pb.GetKPIsRequest) (*pb.GetKPIsResponse, error) {
	local := func(_ context.Context, req *pb.GetKPIsRequest) (*pb.GetKPIsResponse, error) {
		return e.srv.kpis(req), nil
	}
	if req.GetRead().GetStale() {
		return local(ctx, req)
	}
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.GetKPIs), local)
}

func (s *Server) kpis(req *pb.GetKPIsRequest) *pb.GetKPIsResponse {
	now := s.calendar.Now()
	p := s.config.Programme
	o := kpi.Objectives{DrillSuccessRate: p.DrillSuccessRate, Availability: p.Availability, AvailabilityTradingHours: p.AvailabilityTradingHours,
		MTTR: p.MTTR, Window: p.Window}
	if w := req.GetWindow(); w != nil && w.AsDuration() > 0 {
		o.Window = w.AsDuration()
	}
	minutes := s.fsm.availability()
	drills, incidents := programmeRecords(s.fsm.executions())
	var inTrading func(time.Time) bool
	if len(s.config.TradingHours) > 0 {
		inTrading = (&sessionMemo{cal: s.config.TradingHours}).inside
	}
	resp := &pb.GetKPIsResponse{Meta: s.meta(req.GetRead().GetStale()), To: timestamppb.New(now)}
	if o.Window > 0 {
		resp.From = timestamppb.New(now.Add(-o.Window))
	}
	if from, _ := minutes.Span(); !from.IsZero() {
		resp.RecordedSince = timestamppb.New(from)
	}
	for _, r := range kpi.Compute(o, now, minutes, inTrading, drills, incidents) {
		k := &pb.KPI{Name: r.Name, Value: r.Value, Known: r.Known, Detail: r.Detail, Target: r.Target, HasTarget: r.HasTarget, Pass: r.Pass}
		resp.Kpis = append(resp.Kpis, k)
	}
	return resp
}

// programmeRecords sorts the finished executions into the KPIs' drills
// and incidents: every failover, restore or restart that no schedule
// started (a scheduled restart is maintenance, neither).
func programmeRecords(exs []structs.Execution) ([]kpi.Drill, []kpi.Incident) {
	var drills []kpi.Drill
	var incidents []kpi.Incident
	for _, ex := range exs {
		if ex.State == structs.ExecRunning || ex.FinishedAt.IsZero() || ex.CleanupOf != "" {
			continue
		}
		switch {
		case ex.Kind != string(plan.KindDrill) && ex.Schedule != "":
			continue
		case ex.Kind == string(plan.KindDrill):
			d := kpi.Drill{ID: ex.ID, Plan: cmp.Or(ex.Exercises, ex.PlanName), FinishedAt: ex.FinishedAt, Succeeded: ex.State == structs.ExecSucceeded,
				RTO: kpi.RTONoTarget}
			if target := ex.Plan.Objectives.RTO; target > 0 {
				switch {
				case ex.RTOSeconds == nil:
					d.RTO = kpi.RTOUnknown
				case *ex.RTOSeconds <= target.Seconds():
					d.RTO = kpi.RTOMet
				default:
					d.RTO = kpi.RTOMissed
				}
			}
			drills = append(drills, d)
		case ex.Kind == string(plan.KindFailover) || ex.Kind == string(plan.KindRestore) || ex.Kind == string(plan.KindRestart):
			in := kpi.Incident{ID: ex.ID, Kind: ex.Kind, FinishedAt: ex.FinishedAt}
			switch {
			case ex.State != structs.ExecSucceeded:
				in.Reason = "it " + ex.State + ": service was not restored by it"
			case ex.RTOSeconds == nil:
				in.Reason = cmp.Or(ex.RTODetail, "no RTO recorded")
			default:
				d := time.Duration(*ex.RTOSeconds * float64(time.Second))
				in.Recovery = &d
			}
			incidents = append(incidents, in)
		}
	}
	return drills, incidents
}

// sessionMemo answers "inside trading hours?" for instants mostly in
// increasing order (a year of minutes, for the KPIs) with one calendar
// look per session and per gap between sessions, not one per minute.
type sessionMemo struct {
	cal calendar.Calendar
	// [in, inEnd) is known inside a session, [out, outEnd) outside all.
	in, inEnd, out, outEnd time.Time
}

// memoLookAhead is how far a gap between sessions is looked for at once.
const memoLookAhead = 8 * 24 * time.Hour

func (m *sessionMemo) inside(t time.Time) bool {
	switch {
	case !t.Before(m.in) && t.Before(m.inEnd):
		return true
	case !t.Before(m.out) && t.Before(m.outEnd):
		return false
	}
	if s, ok := m.cal.Inside(t); ok {
		m.in, m.inEnd = t, s.Close
		return true
	}
	m.out, m.outEnd = t, t.Add(memoLookAhead)
	if s, ok := m.cal.Overlap(t, m.outEnd); ok {
		m.outEnd = s.Open
	}
	return false
}
