package cli

import (
	"fmt"
	"html/template"
	"io"
	"os"
	"slices"
	"time"

	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// The HTML report is one self-contained file: inline CSS and inline SVG
// drawn here, no script and no external asset, so it opens anywhere and
// prints as it shows.

// htmlReport is what the template draws.
type htmlReport struct {
	Generated string
	Evidence  string
	// KPIs are the KPI rows (name, value, target, pass, detail), with
	// the window they cover; none from a server too old to compute them.
	KPIs       [][]string
	KPIWindow  string
	Summary    [][]string
	Log        [][]string
	Trends     []rtoTrend
	Executions []htmlExecution
}

// rtoTrend is one scenario's RTO over its runs, as an SVG polyline.
type rtoTrend struct {
	Scenario string
	Points   string // "x,y x,y ..." in the chart's box
	Dots     []point
	Target   float64 // y of the target line; 0: none, or off the scale
	MaxLabel string
	// TargetNote says the target when it is far above every run.
	TargetNote string
}

type point struct {
	X, Y  float64
	Title string
}

// htmlExecution is one execution's timeline: a lane per host, a bar per
// step that ran, and above them, when the RTO was measured, the span it
// counts (spans are not bars: one bar is one step).
type htmlExecution struct {
	ID, Title, Result, Measured string
	Height                      float64
	Lanes                       []lane
	Bars                        []bar
	Spans                       []bar
	Ticks                       []tick
}

type lane struct {
	Name string
	Y    float64
}

type bar struct {
	X, Y, W float64
	Class   string
	Title   string
}

type tick struct {
	X, Y  float64
	Label string
}

// Chart geometry, in SVG user units.
const (
	timelineLeft  = 130.0
	timelineWidth = 760.0
	laneHeight    = 22.0
	trendWidth    = 420.0
	trendHeight   = 120.0
)

// timelineOf lays out ex's steps: each host a lane (control-plane steps
// in the leader's lane). With a measured RTO, an RTO lane on top shows
// what it counts: from the outage's start (a failover's last sign of
// life of the lost site, or the command) to the end of the last health
// gate, so that the time before the first step (detection and decision)
// is on the chart too. The x axis is time from the earlier of that start
// and the execution's.
func timelineOf(ex *pb.Execution) htmlExecution {
	out := htmlExecution{ID: ex.GetId(), Title: ex.GetKind() + " " + route(ex), Result: execState(ex),
		Measured: fmt.Sprintf("RTO %s, RPO %s", measured(ex.GetHasRto(), ex.GetRtoSeconds()), measured(ex.GetHasRpo(), ex.GetRpoSeconds()))}
	execStart := ex.GetStartedAt().AsTime()
	start := execStart
	rtoFrom, rtoTo, hasRTO := rtoSpan(ex)
	if hasRTO && rtoFrom.Before(start) {
		start = rtoFrom
	}
	end := start
	for _, st := range ex.GetSteps() {
		if st.GetEndedAt() != nil && st.GetEndedAt().AsTime().After(end) {
			end = st.GetEndedAt().AsTime()
		}
	}
	if ex.GetFinishedAt() != nil && ex.GetFinishedAt().AsTime().After(end) {
		end = ex.GetFinishedAt().AsTime()
	}
	span := max(end.Sub(start), time.Millisecond)
	x := func(t time.Time) float64 { return timelineLeft + timelineWidth*float64(t.Sub(start))/float64(span) }
	laneOf := map[string]int{}
	var names []string
	if hasRTO {
		names = append(names, "RTO")
		y := 4.0
		if rtoFrom.Before(execStart) {
			out.Spans = append(out.Spans, bar{X: x(rtoFrom), Y: y, W: max(x(execStart)-x(rtoFrom), 2), Class: "before",
				Title: fmt.Sprintf("%s before the first step (detection and decision), from %s", execStart.Sub(rtoFrom).Round(time.Millisecond), rtoFrom.UTC().Format("15:04:05.000"))})
		}
		from := execStart
		if rtoFrom.After(from) {
			from = rtoFrom
		}
		out.Spans = append(out.Spans, bar{X: x(from), Y: y, W: max(x(rtoTo)-x(from), 2), Class: "rto",
			Title: fmt.Sprintf("RTO %s: to the end of the last health gate at %s", measured(true, ex.GetRtoSeconds()), rtoTo.UTC().Format("15:04:05.000"))})
	}
	for _, st := range ex.GetSteps() {
		if st.GetStartedAt() == nil {
			continue
		}
		host := st.GetStep().GetHost()
		if host == "" {
			host = "leader"
		}
		if _, ok := laneOf[host]; !ok {
			laneOf[host] = len(names)
			names = append(names, host)
		}
		stEnd := end
		if st.GetEndedAt() != nil {
			stEnd = st.GetEndedAt().AsTime()
		}
		b := bar{X: x(st.GetStartedAt().AsTime()), Y: float64(laneOf[host])*laneHeight + 4, Class: "bar " + stepState(st),
			Title: fmt.Sprintf("%s: %s in %s", st.GetStep().GetId(), stepState(st), stEnd.Sub(st.GetStartedAt().AsTime()).Round(time.Millisecond))}
		b.W = max(x(stEnd)-b.X, 2) // an instant step still shows
		out.Bars = append(out.Bars, b)
	}
	for i, n := range names {
		out.Lanes = append(out.Lanes, lane{Name: n, Y: float64(i)*laneHeight + 4 + laneHeight/2})
	}
	out.Height = float64(len(names))*laneHeight + 30
	for i := 0; i <= 4; i++ {
		d := span * time.Duration(i) / 4
		out.Ticks = append(out.Ticks, tick{X: timelineLeft + timelineWidth*float64(i)/4, Y: out.Height - 6, Label: "+" + d.Round(time.Millisecond).String()})
	}
	return out
}

// rtoSpan is what ex's RTO counts: it ends at the end of the last health
// gate that succeeded (as the leader measures it) and starts RTO seconds
// before. False without a measured RTO.
func rtoSpan(ex *pb.Execution) (from, to time.Time, ok bool) {
	if !ex.GetHasRto() {
		return time.Time{}, time.Time{}, false
	}
	for _, st := range ex.GetSteps() {
		if st.GetStep().GetHealthGate() && st.GetState() == pb.StepState_STEP_STATE_SUCCEEDED && st.GetEndedAt() != nil && st.GetEndedAt().AsTime().After(to) {
			to = st.GetEndedAt().AsTime()
		}
	}
	if to.IsZero() {
		return time.Time{}, time.Time{}, false
	}
	return to.Add(-time.Duration(ex.GetRtoSeconds() * float64(time.Second))), to, true
}

// trendsOf draws each scenario's RTO over its runs in time order.
func trendsOf(execs []*pb.Execution) []rtoTrend {
	runs := map[string][]*pb.Execution{}
	var order []string
	for _, ex := range execs {
		if !ex.GetHasRto() {
			continue
		}
		name := ex.GetPlan()
		if name == "" {
			name = ex.GetKind()
		}
		if _, ok := runs[name]; !ok {
			order = append(order, name)
		}
		runs[name] = append(runs[name], ex)
	}
	var out []rtoTrend
	for _, name := range order {
		rs := runs[name]
		// Scaled to the runs; a target far above them is said, not drawn,
		// or every run would sit on the axis.
		top := 0.0
		for _, ex := range rs {
			top = max(top, ex.GetRtoSeconds())
		}
		target := rs[len(rs)-1].GetRtoTargetSeconds()
		if target > top && target <= 2*top {
			top = target
		}
		top = max(top*1.25, 1)
		y := func(v float64) float64 { return trendHeight - trendHeight*v/top }
		tr := rtoTrend{Scenario: name, MaxLabel: fmt.Sprintf("%.1fs", top)}
		for i, ex := range rs {
			px := trendWidth / 2
			if len(rs) > 1 {
				px = trendWidth * float64(i) / float64(len(rs)-1)
			}
			p := point{X: px, Y: y(ex.GetRtoSeconds()), Title: fmt.Sprintf("%s %s: RTO %.1fs", ex.GetId(),
				ex.GetStartedAt().AsTime().Local().Format(time.DateTime), ex.GetRtoSeconds())}
			tr.Dots = append(tr.Dots, p)
			tr.Points += fmt.Sprintf("%.1f,%.1f ", p.X, p.Y)
		}
		switch {
		case target > 0 && target <= top:
			tr.Target = y(target)
		case target > 0:
			tr.TargetNote = fmt.Sprintf("target %s, above every run", seconds(target))
		}
		out = append(out, tr)
	}
	return out
}

var reportTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>drplane report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}h3{font-size:15px;margin:18px 0 4px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2}.yes{color:#0a7d28;font-weight:bold}.no{color:#b3261e;font-weight:bold}
svg{display:block;margin:4px 0 12px}.lane{font-size:12px;fill:#444}.tick{font-size:11px;fill:#777}
.bar{stroke:#333;stroke-width:.5}.succeeded{fill:#4caf50}.failed{fill:#e53935}.cancelled,.skipped{fill:#bbb}
.running,.waiting,.pending{fill:#fbc02d}.trend{fill:none;stroke:#1565c0;stroke-width:2}.dot{fill:#1565c0}
.target{stroke:#b3261e;stroke-dasharray:4 3}.meta{color:#666}
.span{stroke:#333;stroke-width:.5}.span.before{fill:#f5c6c3}.span.rto{fill:#90caf9}
</style></head><body>
<h1>drplane report</h1>
<p class="meta">Generated {{.Generated}}.{{if .Evidence}} {{.Evidence}}{{end}}</p>
{{if .KPIs}}<h2>KPIs</h2>
<p class="meta">{{.KPIWindow}}</p>
<table class="kpis"><tr><th>KPI</th><th>Value</th><th>Target</th><th>Pass</th><th>Detail</th></tr>
{{range .KPIs}}<tr>{{range $i, $c := .}}{{if eq $i 3}}<td class="{{$c}}">{{if eq $c "yes"}}&#10004; yes{{else if eq $c "no"}}&#10008; no{{else}}{{$c}}{{end}}</td>{{else}}<td>{{$c}}</td>{{end}}{{end}}</tr>
{{end}}</table>{{end}}
<h2>RTO/RPO summary</h2>
<table><tr><th>Scenario</th><th>Kind</th><th>RTO target</th><th>RTO last</th><th>RTO worst</th><th>RPO target</th><th>RPO last</th><th>RPO worst</th><th>Last exercised</th><th>Pass</th></tr>
{{range .Summary}}<tr>{{range $i, $c := .}}{{if eq $i 9}}<td class="{{$c}}">{{if eq $c "yes"}}&#10004; yes{{else if eq $c "no"}}&#10008; no{{else}}{{$c}}{{end}}</td>{{else}}<td>{{$c}}</td>{{end}}{{end}}</tr>
{{end}}</table>
<h2>RTO trend per scenario</h2>
{{range .Trends}}<h3>{{.Scenario}}{{if .TargetNote}} <span class="meta">({{.TargetNote}})</span>{{end}}</h3>
<svg class="trend-chart" width="470" height="140" viewBox="-40 -5 470 140" role="img" aria-label="RTO of {{.Scenario}} over time">
<line x1="0" y1="120" x2="420" y2="120" stroke="#999"/><line x1="0" y1="0" x2="0" y2="120" stroke="#999"/>
<text class="tick" x="-36" y="8">{{.MaxLabel}}</text><text class="tick" x="-36" y="120">0s</text>
{{if .Target}}<line class="target" x1="0" y1="{{.Target}}" x2="420" y2="{{.Target}}"><title>RTO target</title></line>{{end}}
<polyline class="trend" points="{{.Points}}"/>
{{range .Dots}}<circle class="dot" cx="{{.X}}" cy="{{.Y}}" r="3.5"><title>{{.Title}}</title></circle>{{end}}
</svg>
{{else}}<p>No execution has an RTO yet.</p>{{end}}
<h2>DR test log</h2>
<table><tr><th>Date</th><th>Scenario</th><th>Result</th><th>Notes</th><th>Who</th></tr>
{{range .Log}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
<h2>Executions</h2>
<p class="meta">A bar per step that ran, a lane per host; red is a failed step. The RTO lane shows what the RTO counts: <span style="background:#f5c6c3">&nbsp;before the first step&nbsp;</span> (detecting the outage and deciding), then <span style="background:#90caf9">&nbsp;the steps&nbsp;</span> to the end of the last health gate. Hover over a bar for its step and times.</p>
{{range .Executions}}<h3 id="{{.ID}}">{{.ID}}: {{.Title}}, {{.Result}} ({{.Measured}})</h3>
<svg class="timeline" data-execution="{{.ID}}" width="900" height="{{.Height}}" viewBox="0 0 900 {{.Height}}" role="img" aria-label="steps of {{.ID}} over time">
{{range .Lanes}}<text class="lane" x="4" y="{{.Y}}" dominant-baseline="middle">{{.Name}}</text>{{end}}
{{range .Spans}}<rect class="span {{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="16"><title>{{.Title}}</title></rect>{{end}}
{{range .Bars}}<rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="16"><title>{{.Title}}</title></rect>{{end}}
{{range .Ticks}}<text class="tick" x="{{.X}}" y="{{.Y}}" text-anchor="middle">{{.Label}}</text>{{end}}
</svg>
{{end}}
</body></html>
`))

// writeHTMLReport writes the report as one self-contained HTML file.
func writeHTMLReport(path string, plans []*pb.PlanScenario, execs []*pb.Execution, evidence string, kpis *pb.GetKPIsResponse) error {
	r := htmlReport{Generated: time.Now().Format(time.RFC1123), Evidence: evidence, Summary: scenarioRows(plans, execs),
		Log: testLogRows(execs), Trends: trendsOf(execs)}
	if kpis != nil {
		r.KPIs, r.KPIWindow = kpiRows(kpis), kpiWindowText(kpis)
	}
	for _, ex := range slices.Backward(execs) {
		r.Executions = append(r.Executions, timelineOf(ex))
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	if err := renderHTMLReport(f, r); err != nil {
		_ = f.Close()
		return fmt.Errorf("--html: %w", err)
	}
	return f.Close()
}

func renderHTMLReport(w io.Writer, r htmlReport) error { return reportTemplate.Execute(w, r) }
