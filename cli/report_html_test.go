package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// reportExecutions are three executions as the servers return them: a
// switchover, a failover with a failed step and a skipped one, and an
// automatic failover whose RTO counts from the outage, 5 s before its
// first step, to its health gate.
func reportExecutions() []*pb.Execution {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	step := func(id, host string, state pb.StepState, from, to time.Duration) *pb.ExecutionStep {
		st := &pb.ExecutionStep{Step: &pb.PlanStep{Id: id, Host: host}, State: state}
		if state != pb.StepState_STEP_STATE_SKIPPED {
			st.StartedAt, st.EndedAt = ts(from), ts(to)
		}
		return st
	}
	ok, failed, skipped := pb.StepState_STEP_STATE_SUCCEEDED, pb.StepState_STEP_STATE_FAILED, pb.StepState_STEP_STATE_SKIPPED
	return []*pb.Execution{
		{Id: "switchover-1", Kind: "switchover", From: "primary", To: "dr", State: pb.ExecutionState_EXECUTION_STATE_SUCCEEDED,
			StartedAt: ts(0), FinishedAt: ts(2 * time.Second), HasRto: true, RtoSeconds: 1.4, HasRpo: true, RtoTargetSeconds: 600,
			Steps: []*pb.ExecutionStep{step("stop:engine@app-1", "app-1", ok, 0, 300*time.Millisecond), step("activate:dr", "", ok, 300*time.Millisecond, 310*time.Millisecond),
				step("promote:postgres@db-2", "db-2", ok, 310*time.Millisecond, time.Second), step("start:engine@app-2", "app-2", ok, time.Second, 1400*time.Millisecond)}},
		{Id: "failover-2", Kind: "failover", From: "primary", To: "dr", State: pb.ExecutionState_EXECUTION_STATE_FAILED,
			StartedAt: ts(time.Hour), FinishedAt: ts(time.Hour + 3*time.Second),
			Steps: []*pb.ExecutionStep{step("fence:db-1", "db-1", ok, time.Hour, time.Hour+200*time.Millisecond),
				step("promote:postgres@db-2", "db-2", failed, time.Hour+200*time.Millisecond, time.Hour+3*time.Second),
				step("start:engine@app-2", "app-2", skipped, 0, 0)}},
		{Id: "failover-3", Kind: "failover", From: "primary", To: "dr", Trigger: pb.ExecutionTrigger_EXECUTION_TRIGGER_AUTOMATIC, State: pb.ExecutionState_EXECUTION_STATE_SUCCEEDED,
			StartedAt: ts(2 * time.Hour), FinishedAt: ts(2*time.Hour + 1500*time.Millisecond), HasRto: true, RtoSeconds: 6.4, HasRpo: true, RtoTargetSeconds: 600,
			Steps: []*pb.ExecutionStep{step("promote:postgres@db-2", "db-2", ok, 2*time.Hour, 2*time.Hour+400*time.Millisecond),
				gate(step("check:engine@app-2", "app-2", ok, 2*time.Hour+400*time.Millisecond, 2*time.Hour+1400*time.Millisecond))}},
	}
}

// gate makes st a health gate, the step whose end ends the RTO.
func gate(st *pb.ExecutionStep) *pb.ExecutionStep {
	st.Step.HealthGate = true
	return st
}

// TestHTMLReport_OneBarPerStep: the report is one self-contained file
// (no script, no external asset) with a timeline bar per step that ran,
// failed steps marked; headless Chromium (Debian's) renders it to a PNG
// and its DOM holds the same bars.
func TestHTMLReport_OneBarPerStep(t *testing.T) {
	execs := reportExecutions()
	path := filepath.Join(t.TempDir(), "report.html")
	yes, no := true, false
	kpis := &pb.GetKPIsResponse{To: timestamppb.Now(), Kpis: []*pb.KPI{
		{Name: "drill_success_rate", Value: 0.95, Known: true, Detail: "19 of 20 drills passed", Target: 0.95, HasTarget: true, Pass: &yes},
		{Name: "availability", Value: 0.9931, Known: true, Detail: "1440 minutes, 10 down", Target: 0.995, HasTarget: true, Pass: &no},
		{Name: "availability_trading_hours", Detail: "no trading_hours blocks in the config"},
		{Name: "mttr", Value: 252, Known: true, Detail: "mean of 1 incident", Target: 900, HasTarget: true, Pass: &yes},
	}}
	require.NoError(t, writeHTMLReport(path, []*pb.PlanScenario{{Name: "failover", Kind: "failover", RtoTargetSeconds: 900}}, execs, "Evidence chain: 2 executions sealed", kpis))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	html := string(b)
	ran := 0
	for _, ex := range execs {
		for _, st := range ex.GetSteps() {
			if st.GetStartedAt() != nil {
				ran++
			}
		}
	}
	require.Equal(t, ran, strings.Count(html, `<rect class="bar `), "one bar per step that ran")
	require.Equal(t, 1, strings.Count(html, `<rect class="bar failed"`))
	require.NotContains(t, html, "<script")
	require.NotRegexp(t, `(src|href)="(https?:)?//`, html, "no external asset")
	require.Contains(t, html, "&#10004; yes")
	require.Contains(t, html, "Evidence chain: 2 executions sealed")
	require.Contains(t, html, "<td>99.31 %</td><td>99.5 %</td><td class=\"no\">&#10008; no</td>", "a KPI below its target is marked")
	require.Contains(t, html, "<td>4m12s</td><td>15m0s</td>")
	// The RTO lane shows what the RTO counts, the time before the first
	// step included: 5 s before, then 1.4 s of steps to the health gate.
	require.Equal(t, 1, strings.Count(html, `<rect class="span rto"`), "only an execution with a health gate has an RTO lane")
	require.Equal(t, 1, strings.Count(html, `<rect class="span before"`))
	require.Contains(t, html, "<title>5s before the first step (detection and decision), from 10:59:55.000</title>")
	require.Contains(t, html, "<title>RTO 6.4s: to the end of the last health gate at 11:00:01.400</title>")
	require.Regexp(t, `<rect class="span before" x="130" y="4" width="584\.61`, html, "5 s of the chart's 6.5 s, outage to the execution's end")

	chromium := testutil.RequireProgram(t, "chromium", "chromium")
	dir := t.TempDir()
	png := filepath.Join(dir, "report.png")
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--user-data-dir=" + filepath.Join(dir, "profile"),
			"--window-size=1200,1800"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "chromium %s: %s", strings.Join(args, " "), stderr.String())
		return stdout.String()
	}
	run("--screenshot="+png, "file://"+path)
	if out := os.Getenv("DRPLANE_REPORT_PNG"); out != "" {
		_ = os.WriteFile(out, mustRead(t, png), 0o644)
	}
	shot, err := os.ReadFile(png)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(shot, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
	require.Greater(t, len(shot), 10_000, "something was drawn")
	dom := run("--dump-dom", "file://"+path)
	require.Equal(t, ran, strings.Count(dom, `<rect class="bar `), "the browser's DOM has one bar per step")
	require.Equal(t, 3, strings.Count(dom, `<svg class="timeline"`))
	require.Equal(t, 1, strings.Count(dom, `<rect class="span before"`))
	require.Equal(t, 1, strings.Count(dom, `<table class="kpis">`))
	require.Contains(t, dom, "availability_trading_hours")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
