// Package kpi computes the disaster-recovery programme's KPIs against the
// objectives in the config: drill success rate, availability of the active
// site's services (overall and inside trading hours) and MTTR over real
// incidents. It also holds the compact per-minute record of the leader's
// probes that availability is computed from, small enough to live in the
// replicated Raft state.
//
// The figures are conservative: never better than what clients experienced.
// A minute in which any probe saw a service down is a down minute; a minute
// nobody observed counts as down (and the report says how many); a figure
// that cannot be bounded is unknown, with the reason, rather than estimated.
//
// The package is pure arithmetic: no I/O, no goroutines, no clock; every
// function takes its instants.
package kpi

import (
	"fmt"
	"strings"
	"time"
)

// The KPI names, as the config's objectives keys.
const (
	NameDrillSuccessRate         = "drill_success_rate"
	NameAvailability             = "availability"
	NameAvailabilityTradingHours = "availability_trading_hours"
	NameMTTR                     = "mttr"
)

// RTOStatus is how a drill fared against its plan's RTO target.
type RTOStatus uint8

const (
	// RTOUnknown: the plan has an RTO target and nobody can say whether
	// the drill met it. It is the zero value so that a caller that says
	// nothing gets the conservative answer: the drill does not pass.
	RTOUnknown RTOStatus = iota
	// RTONoTarget: the plan has no RTO target.
	RTONoTarget
	// RTOMet: the recorded RTO was within the target.
	RTOMet
	// RTOMissed: the recorded RTO exceeded the target.
	RTOMissed
)

// Drill is one finished drill execution, as the report knows it.
type Drill struct {
	ID         string
	Plan       string
	FinishedAt time.Time
	Succeeded  bool // the execution succeeded
	RTO        RTOStatus
}

// passed reports whether the drill counts as passed: it succeeded and did
// not miss, or fail to show it met, its RTO target.
func (d Drill) passed() bool {
	return d.Succeeded && (d.RTO == RTONoTarget || d.RTO == RTOMet)
}

// Incident is one real recovery (a failover, restore or restart that was
// not a drill).
type Incident struct {
	ID         string
	Kind       string
	FinishedAt time.Time
	Recovery   *time.Duration // the recorded RTO: outage start to service back; nil when unknown
	Reason     string         // why Recovery is unknown, when it is
}

// Objectives are the programme's targets; a zero field is "no target".
type Objectives struct {
	DrillSuccessRate         float64 // 0..1
	Availability             float64 // 0..1
	AvailabilityTradingHours float64 // 0..1
	MTTR                     time.Duration
	Window                   time.Duration // the KPI window, e.g. 365 days; 0 is everything recorded
}

// Result is one KPI against its target.
type Result struct {
	Name      string  // one of the Name constants (the config keys)
	Value     float64 // ratio 0..1, or seconds for mttr; 0 when not Known
	Known     bool
	Detail    string  // how Value was reached, or why it is unknown
	Target    float64 // ratio, or seconds for mttr; 0 when HasTarget is false
	HasTarget bool
	Pass      *bool // nil when there is no target or Value is not known
}

// ratioEpsilon absorbs float rounding when a ratio is compared with its
// target (19/20 against 0.95 must pass); it is far below one minute in a
// year (1/525600), so it never turns a real miss into a pass.
const ratioEpsilon = 1e-9

// Compute returns the four KPIs, in the order drill_success_rate,
// availability, availability_trading_hours, mttr, over the window
// [now-o.Window, now) (a zero Window means everything recorded).
// inTradingHours may be nil when no trading hours are configured.
//
// Drills and incidents that finished before the window are ignored. Those
// that finished at or after now are kept: they can only come from clock
// skew between nodes, and dropping them could hide a failure.
func Compute(o Objectives, now time.Time, minutes Minutes, inTradingHours func(time.Time) bool, drills []Drill, incidents []Incident) []Result {
	var from time.Time // zero Window: from the first record
	if o.Window > 0 {
		from = now.Add(-o.Window)
	}
	inWindow := func(t time.Time) bool { return o.Window <= 0 || !t.Before(from) }

	var recentDrills []Drill
	for _, d := range drills {
		if inWindow(d.FinishedAt) {
			recentDrills = append(recentDrills, d)
		}
	}
	var recentIncidents []Incident
	for _, in := range incidents {
		if inWindow(in.FinishedAt) {
			recentIncidents = append(recentIncidents, in)
		}
	}

	trading := Result{Name: NameAvailabilityTradingHours, Detail: "no trading_hours blocks in the config"}
	if inTradingHours != nil {
		trading = availabilityResult(NameAvailabilityTradingHours, " inside trading hours",
			minutes.Availability(from, now, inTradingHours))
	}
	results := []Result{
		drillResult(recentDrills),
		availabilityResult(NameAvailability, "", minutes.Availability(from, now, nil)),
		trading,
		mttrResult(recentIncidents),
	}
	targets := []float64{o.DrillSuccessRate, o.Availability, o.AvailabilityTradingHours}
	for i, target := range targets {
		if target > 0 {
			results[i].Target, results[i].HasTarget = target, true
			if results[i].Known {
				results[i].Pass = boolPtr(results[i].Value >= target-ratioEpsilon)
			}
		}
	}
	if mttr := &results[3]; o.MTTR > 0 {
		mttr.Target, mttr.HasTarget = o.MTTR.Seconds(), true
		if mttr.Known {
			// Seconds of a Duration are exact enough: both sides come from
			// nanosecond integers.
			mttr.Pass = boolPtr(mttr.Value <= mttr.Target)
		}
	}
	return results
}

func drillResult(drills []Drill) Result {
	r := Result{Name: NameDrillSuccessRate}
	if len(drills) == 0 {
		r.Detail = "no drill finished in the window"
		return r
	}
	var passed, rtoUnknown int
	for _, d := range drills {
		switch {
		case d.passed():
			passed++
		case d.Succeeded && d.RTO == RTOUnknown:
			rtoUnknown++
		}
	}
	r.Value, r.Known = float64(passed)/float64(len(drills)), true
	r.Detail = fmt.Sprintf("%d of %s passed", passed, plural(len(drills), "drill"))
	if rtoUnknown > 0 {
		r.Detail += fmt.Sprintf("; %d with its RTO unknown counted as failed", rtoUnknown)
	}
	return r
}

func availabilityResult(name, where string, a Availability) Result {
	r := Result{Name: name, Value: a.Ratio, Known: a.Known}
	if !a.Known {
		r.Detail = "no minute" + where + " recorded in the window"
		return r
	}
	r.Detail = fmt.Sprintf("%s%s, %d down, %d unobserved (counted as down)",
		plural(int(a.Minutes), "minute"), where, a.Down, a.Unobserved)
	return r
}

func mttrResult(incidents []Incident) Result {
	r := Result{Name: NameMTTR}
	if len(incidents) == 0 {
		r.Detail = "no incident in the window"
		return r
	}
	var sum time.Duration
	var known int
	var unknown []string
	for _, in := range incidents {
		switch reason := in.Reason; {
		case in.Recovery == nil:
			if reason == "" {
				reason = "no reason recorded"
			}
			unknown = append(unknown, fmt.Sprintf("%s (%s)", in.ID, reason))
		case *in.Recovery < 0:
			// A negative recovery would flatter the mean.
			unknown = append(unknown, fmt.Sprintf("%s (recorded recovery time %s is negative)", in.ID, *in.Recovery))
		default:
			sum += *in.Recovery
			known++
		}
	}
	var mean time.Duration
	if known > 0 {
		mean = sum / time.Duration(known)
	}
	if len(unknown) == 0 {
		r.Value, r.Known = mean.Seconds(), true
		r.Detail = "mean of " + plural(known, "incident")
		return r
	}
	noun := "incident"
	if len(unknown) > 1 {
		noun = "incidents"
	}
	r.Detail = fmt.Sprintf("recovery time unknown for %s %s", noun, strings.Join(unknown, ", "))
	if known > 0 {
		r.Detail += fmt.Sprintf("; mean of the %d known: %s", known, mean.Round(time.Second))
	}
	return r
}

// plural is "1 drill", "2 drills".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func boolPtr(b bool) *bool { return &b }
