package kpi

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const dayLen = 24 * time.Hour

// now is the end of the Monday the test records cover.
var now = at(1440)

// objectives are the targets of the example config.
var objectives = Objectives{
	DrillSuccessRate:         0.95,
	Availability:             0.995,
	AvailabilityTradingHours: 0.999,
	MTTR:                     15 * time.Minute,
	Window:                   365 * dayLen,
}

// drills returns passed drills that met their RTO target, then failed
// executions, all finished a day before now.
func drills(passed, failed int) []Drill {
	var d []Drill
	for i := 0; i < passed+failed; i++ {
		d = append(d, Drill{ID: "d", Plan: "failover", FinishedAt: now.Add(-dayLen), Succeeded: i < passed, RTO: RTOMet})
	}
	return d
}

func incident(id string, recovery time.Duration) Incident {
	return Incident{ID: id, Kind: "failover", FinishedAt: now.Add(-30 * dayLen), Recovery: &recovery}
}

func pass(b bool) *bool { return &b }

func TestCompute(t *testing.T) {
	monday := day(0, []int64{3 * 60, 15 * 60, 23 * 60}, []int64{15*60 + 10, 20*60 + 59})
	noTargets := objectives
	noTargets.DrillSuccessRate = 0
	everything := objectives
	everything.Window = 0
	oldFailed := Drill{ID: "old", FinishedAt: now.Add(-400 * dayLen)}
	unknownRecovery := Incident{ID: "inc-2", FinishedAt: now.Add(-dayLen), Reason: "the control plane had no quorum during the outage"}

	cases := []struct {
		name      string
		o         Objectives
		minutes   Minutes
		trading   func(time.Time) bool
		drills    []Drill
		incidents []Incident
		kpi       string
		want      Result
	}{
		{
			// Exactly at the target passes: 19/20 against 0.95.
			name: "drills at the target", o: objectives, drills: drills(19, 1), kpi: NameDrillSuccessRate,
			want: Result{Value: 19.0 / 20, Known: true, Detail: "19 of 20 drills passed", Target: 0.95, HasTarget: true, Pass: pass(true)},
		},
		{
			// Below the target fails.
			name: "drills below the target", o: objectives, drills: drills(18, 2), kpi: NameDrillSuccessRate,
			want: Result{Value: 18.0 / 20, Known: true, Detail: "18 of 20 drills passed", Target: 0.95, HasTarget: true, Pass: pass(false)},
		},
		{
			// A drill whose RTO is unknown against a target does not pass:
			// nobody can say it met it.
			name: "drill with RTO unknown", o: objectives,
			drills: append(drills(1, 0), Drill{ID: "d2", FinishedAt: now.Add(-dayLen), Succeeded: true, RTO: RTOUnknown}),
			kpi:    NameDrillSuccessRate,
			want:   Result{Value: 0.5, Known: true, Detail: "1 of 2 drills passed; 1 with its RTO unknown counted as failed", Target: 0.95, HasTarget: true, Pass: pass(false)},
		},
		{
			// A drill passes only when it succeeded and did not miss its
			// RTO; a plan without an RTO target needs only success.
			name: "RTO missed and failed execution", o: objectives,
			drills: []Drill{
				{ID: "no-target", FinishedAt: now.Add(-dayLen), Succeeded: true, RTO: RTONoTarget},
				{ID: "missed", FinishedAt: now.Add(-dayLen), Succeeded: true, RTO: RTOMissed},
				{ID: "failed", FinishedAt: now.Add(-dayLen), Succeeded: false, RTO: RTOMet},
			},
			kpi:  NameDrillSuccessRate,
			want: Result{Value: 1.0 / 3, Known: true, Detail: "1 of 3 drills passed", Target: 0.95, HasTarget: true, Pass: pass(false)},
		},
		{
			// A drill that finished before the window is ignored.
			name: "old drill outside the window", o: objectives, drills: append(drills(1, 0), oldFailed), kpi: NameDrillSuccessRate,
			want: Result{Value: 1, Known: true, Detail: "1 of 1 drill passed", Target: 0.95, HasTarget: true, Pass: pass(true)},
		},
		{
			// A zero window counts everything recorded.
			name: "zero window", o: everything, drills: append(drills(1, 0), oldFailed), kpi: NameDrillSuccessRate,
			want: Result{Value: 0.5, Known: true, Detail: "1 of 2 drills passed", Target: 0.95, HasTarget: true, Pass: pass(false)},
		},
		{
			// No drill: unknown, which is neither pass nor fail.
			name: "no drills", o: objectives, kpi: NameDrillSuccessRate,
			want: Result{Detail: "no drill finished in the window", Target: 0.95, HasTarget: true},
		},
		{
			// No target: the figure is shown, without pass or fail.
			name: "no drill target", o: noTargets, drills: drills(1, 1), kpi: NameDrillSuccessRate,
			want: Result{Value: 0.5, Known: true, Detail: "1 of 2 drills passed"},
		},
		{
			// Unobserved minutes count as down and the detail says how many.
			name: "availability passes", o: objectives, minutes: monday, kpi: NameAvailability,
			want: Result{Value: 1435.0 / 1440, Known: true, Detail: "1440 minutes, 3 down, 2 unobserved (counted as down)", Target: 0.995, HasTarget: true, Pass: pass(true)},
		},
		{
			// Nothing recorded: unknown.
			name: "availability without minutes", o: objectives, kpi: NameAvailability,
			want: Result{Detail: "no minute recorded in the window", Target: 0.995, HasTarget: true},
		},
		{
			// Without trading hours in the config that KPI is unknown.
			name: "no trading hours", o: objectives, minutes: monday, kpi: NameAvailabilityTradingHours,
			want: Result{Detail: "no trading_hours blocks in the config", Target: 0.999, HasTarget: true},
		},
		{
			// Inside trading hours one down and two unobserved of 390 minutes
			// miss 0.999.
			name: "trading hours fail", o: objectives, minutes: monday, trading: nyseHours, kpi: NameAvailabilityTradingHours,
			want: Result{Value: 387.0 / 390, Known: true, Detail: "390 minutes inside trading hours, 1 down, 2 unobserved (counted as down)", Target: 0.999, HasTarget: true, Pass: pass(false)},
		},
		{
			// A mean exactly at the target passes: (10+15+20)/3 = 15m.
			name: "mttr at the target", o: objectives, kpi: NameMTTR,
			incidents: []Incident{incident("inc-1", 10*time.Minute), incident("inc-2", 15*time.Minute), incident("inc-3", 20*time.Minute)},
			want:      Result{Value: 900, Known: true, Detail: "mean of 3 incidents", Target: 900, HasTarget: true, Pass: pass(true)},
		},
		{
			// A mean above the target fails: (10+20+30)/3 = 20m.
			name: "mttr above the target", o: objectives, kpi: NameMTTR,
			incidents: []Incident{incident("inc-1", 10*time.Minute), incident("inc-2", 20*time.Minute), incident("inc-3", 30*time.Minute)},
			want:      Result{Value: 1200, Known: true, Detail: "mean of 3 incidents", Target: 900, HasTarget: true, Pass: pass(false)},
		},
		{
			// One incident with an unknown recovery makes MTTR unknown; the
			// detail names it and gives the mean of the others.
			name: "mttr with an unknown recovery", o: objectives, kpi: NameMTTR,
			incidents: []Incident{incident("inc-1", 10*time.Minute), unknownRecovery, incident("inc-3", 20*time.Minute)},
			want: Result{
				Detail: "recovery time unknown for incident inc-2 (the control plane had no quorum during the outage); mean of the 2 known: 15m0s",
				Target: 900, HasTarget: true,
			},
		},
		{
			// A negative recovery would flatter the mean: unknown.
			name: "mttr with a negative recovery", o: objectives, kpi: NameMTTR,
			incidents: []Incident{incident("inc-1", -time.Minute)},
			want:      Result{Detail: "recovery time unknown for incident inc-1 (recorded recovery time -1m0s is negative)", Target: 900, HasTarget: true},
		},
		{
			// An incident before the window does not count, even unknown.
			name: "old incident outside the window", o: objectives, kpi: NameMTTR,
			incidents: []Incident{incident("inc-1", 10*time.Minute), {ID: "old", FinishedAt: now.Add(-400 * dayLen)}},
			want:      Result{Value: 600, Known: true, Detail: "mean of 1 incident", Target: 900, HasTarget: true, Pass: pass(true)},
		},
		{
			// No incident is not a failure: unknown, no pass or fail.
			name: "no incidents", o: objectives, kpi: NameMTTR,
			want: Result{Detail: "no incident in the window", Target: 900, HasTarget: true},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			results := Compute(tc.o, now, tc.minutes, tc.trading, tc.drills, tc.incidents)
			tc.want.Name = tc.kpi
			for _, r := range results {
				if r.Name == tc.kpi {
					require.Equal(t, tc.want, r)
					return
				}
			}
			t.Fatalf("no %s in %v", tc.kpi, results)
		})
	}
}

// The four KPIs come in the config's order, whatever is known.
func TestComputeOrder(t *testing.T) {
	var names []string
	for _, r := range Compute(Objectives{}, now, Minutes{}, nil, nil, nil) {
		names = append(names, r.Name)
		require.False(t, r.Known)
		require.Nil(t, r.Pass)
	}
	require.Equal(t, []string{NameDrillSuccessRate, NameAvailability, NameAvailabilityTradingHours, NameMTTR}, names)
}
