package controlplane

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/drplane/drplane/internal/calendar"
	"github.com/drplane/drplane/internal/kpi"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
)

// TestProgrammeRecords_KPIs computes the KPIs from recorded executions as
// the replicated state keeps them: which count as drills, which as
// incidents, and the arithmetic over them.
func TestProgrammeRecords_KPIs(t *testing.T) {
	now := time.Date(2027, 3, 12, 12, 0, 0, 0, time.UTC)
	secs := func(s float64) *float64 { return &s }
	withRTO := plan.Plan{Objectives: plan.Objectives{RTO: 10 * time.Minute}}
	ex := func(id, kind, state string, rto *float64, p plan.Plan, ago time.Duration) structs.Execution {
		return structs.Execution{ID: id, Kind: kind, State: state, RTOSeconds: rto, Plan: p, FinishedAt: now.Add(-ago)}
	}
	exs := []structs.Execution{
		ex("drill-1", "drill", structs.ExecSucceeded, secs(120), withRTO, 48*time.Hour),     // within its RTO: passes
		ex("drill-2", "drill", structs.ExecSucceeded, secs(900), withRTO, 24*time.Hour),     // over its RTO: fails
		ex("drill-3", "drill", structs.ExecFailed, secs(60), withRTO, 12*time.Hour),         // failed: fails
		ex("drill-4", "drill", structs.ExecSucceeded, nil, withRTO, 6*time.Hour),            // RTO unknown against a target: fails
		ex("drill-5", "drill", structs.ExecSucceeded, nil, plan.Plan{}, 3*time.Hour),        // no target: passes
		ex("drill-old", "drill", structs.ExecFailed, nil, withRTO, 400*24*time.Hour),        // outside the 365-day window
		ex("failover-1", "failover", structs.ExecSucceeded, secs(42), withRTO, 5*time.Hour), // an incident
		ex("restart-1", "restart", structs.ExecSucceeded, secs(18), plan.Plan{}, 4*time.Hour),
		ex("switchover-1", "switchover", structs.ExecSucceeded, secs(3), plan.Plan{}, 2*time.Hour), // planned: neither
		ex("running-1", "drill", structs.ExecRunning, nil, withRTO, 0),
	}
	scheduled := ex("restart-2", "restart", structs.ExecSucceeded, secs(5), plan.Plan{}, time.Hour)
	scheduled.Schedule = "weekly-restart" // maintenance, neither
	cleanup := ex("cleanup-1", "drill", structs.ExecSucceeded, nil, plan.Plan{}, time.Hour)
	cleanup.CleanupOf = "drill-3"
	running := exs[len(exs)-1]
	running.FinishedAt = time.Time{}
	exs = append(exs[:len(exs)-1], running, scheduled, cleanup)

	drills, incidents := programmeRecords(exs)
	var drillIDs, incidentIDs []string
	for _, d := range drills {
		drillIDs = append(drillIDs, d.ID)
	}
	for _, in := range incidents {
		incidentIDs = append(incidentIDs, in.ID)
	}
	require.Equal(t, []string{"drill-1", "drill-2", "drill-3", "drill-4", "drill-5", "drill-old"}, drillIDs)
	require.Equal(t, []string{"failover-1", "restart-1"}, incidentIDs)

	results := kpi.Compute(kpi.Objectives{DrillSuccessRate: 0.95, MTTR: 15 * time.Minute, Window: 365 * 24 * time.Hour}, now, kpi.Minutes{}, nil, drills, incidents)
	rate, mttr := results[0], results[3]
	require.True(t, rate.Known)
	require.InDelta(t, 2.0/5, rate.Value, 1e-12, "2 of the 5 drills in the window passed")
	require.Equal(t, "2 of 5 drills passed; 1 with its RTO unknown counted as failed", rate.Detail)
	require.False(t, *rate.Pass)
	require.True(t, mttr.Known)
	require.InDelta(t, 30, mttr.Value, 1e-9, "mean of 42s and 18s")
	require.True(t, *mttr.Pass)

	// A failed incident leaves the mean unbounded: unknown, and why.
	failed := ex("restore-1", "restore", structs.ExecFailed, nil, plan.Plan{}, time.Hour)
	_, incidents = programmeRecords(append(exs, failed))
	mttr = kpi.Compute(kpi.Objectives{MTTR: 15 * time.Minute}, now, kpi.Minutes{}, nil, nil, incidents)[3]
	require.False(t, mttr.Known)
	require.Nil(t, mttr.Pass)
	require.Contains(t, mttr.Detail, "restore-1 (it failed: service was not restored by it)")
}

// TestSessionMemo: the memo answers as the calendar does, minute by
// minute over two weeks of two markets (one overnight), and out of order.
func TestSessionMemo(t *testing.T) {
	us, err := calendar.NewTradingHours("us-equities", "America/New_York", []string{"mon", "tue", "wed", "thu", "fri"}, "09:30", "16:00")
	require.NoError(t, err)
	globex, err := calendar.NewTradingHours("globex", "America/Chicago", []string{"sun", "mon", "tue", "wed", "thu"}, "17:00", "16:00")
	require.NoError(t, err)
	for _, cal := range []calendar.Calendar{{us}, {us, globex}} {
		m := &sessionMemo{cal: cal}
		from := time.Date(2027, 3, 5, 0, 0, 0, 0, time.UTC) // across the March DST change
		for at := from; at.Before(from.Add(14 * 24 * time.Hour)); at = at.Add(time.Minute) {
			_, want := cal.Inside(at)
			require.Equal(t, want, m.inside(at), "%s", at)
		}
		for _, at := range []time.Time{from.Add(36 * time.Hour), from.Add(3 * time.Hour), from.Add(100 * time.Hour)} {
			_, want := cal.Inside(at)
			require.Equal(t, want, m.inside(at), "out of order: %s", at)
		}
	}
}
