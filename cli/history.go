package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func newCmdHistory(f *Factory) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history [ID]",
		Short: "List executions, or show one with every step",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, closeFn, err := f.Operator()
			if err != nil {
				return err
			}
			defer closeFn()
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			if len(args) == 1 {
				resp, err := client.GetExecution(ctx, &pb.GetExecutionRequest{Id: args[0]})
				if err != nil {
					return explain(f.addr, err)
				}
				if asJSON {
					return printJSON(f.IO.Out, executionJSONOf(resp.GetExecution(), true))
				}
				return printExecution(f.IO.Out, resp.GetExecution())
			}
			resp, err := client.ListExecutions(ctx, &pb.ListExecutionsRequest{})
			if err != nil {
				return explain(f.addr, err)
			}
			if asJSON {
				out := []ExecutionJSON{}
				for _, ex := range resp.GetExecutions() {
					out = append(out, executionJSONOf(ex, false))
				}
				return printJSON(f.IO.Out, out)
			}
			t := newTable(f.IO.Out, "ID", "KIND", "TRIGGER", "FROM", "TO", "STARTED", "DURATION", "RESULT", "RTO", "RPO")
			for _, ex := range resp.GetExecutions() {
				t.row(ex.GetId(), ex.GetKind(), execTrigger(ex), ex.GetFrom(), ex.GetTo(), ex.GetStartedAt().AsTime().Local().Format(time.DateTime),
					duration(ex), execState(ex), measured(ex.GetHasRto(), ex.GetRtoSeconds()), measured(ex.GetHasRpo(), ex.GetRpoSeconds()))
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func duration(ex *pb.Execution) string {
	if ex.GetFinishedAt() == nil || ex.GetStartedAt() == nil {
		return "-"
	}
	return ex.GetFinishedAt().AsTime().Sub(ex.GetStartedAt().AsTime()).Round(time.Millisecond).String()
}

// printExecution prints one execution with every step.
func printExecution(w io.Writer, ex *pb.Execution) error {
	fmt.Fprintf(w, "%s %s (%s, plan %s, trigger %s by %s)\n", ex.GetKind(), ex.GetId(), execState(ex), ex.GetPlan(), execTrigger(ex), ex.GetActor())
	fmt.Fprintf(w, "%s, epoch at start %d; %s\n", route(ex), ex.GetStartEpoch(), ex.GetMessage())
	if n := ex.GetNote(); n != "" {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	fmt.Fprintf(w, "RTO %s (target %s), RPO %s (target %s)\n", measured(ex.GetHasRto(), ex.GetRtoSeconds()), seconds(ex.GetRtoTargetSeconds()),
		measured(ex.GetHasRpo(), ex.GetRpoSeconds()), rpoTarget(ex))
	if d := ex.GetRtoDetail(); d != "" {
		fmt.Fprintf(w, "RTO counted %s\n", d)
	}
	fmt.Fprintln(w)
	t := newTable(w, "STEP", "HOST", "START", "END", "DURATION", "RESULT", "MESSAGE")
	for _, st := range ex.GetSteps() {
		host := st.GetStep().GetHost()
		if host == "" {
			host = "-"
		}
		start, end, took := "-", "-", "-"
		if st.GetStartedAt() != nil {
			start = clock(st.GetStartedAt().AsTime())
		}
		if st.GetEndedAt() != nil {
			end = clock(st.GetEndedAt().AsTime())
			if st.GetStartedAt() != nil {
				took = st.GetEndedAt().AsTime().Sub(st.GetStartedAt().AsTime()).Round(time.Millisecond).String()
			}
		}
		msg := st.GetMessage()
		if stepState(st) == structs.StepRunning && st.GetProgress() != "" {
			msg = st.GetProgress()
		}
		if st.GetReplayed() {
			msg += " (from the agent's journal)"
		}
		if st.GetVerified() {
			msg += " (verified on the service after the agent stopped)"
		}
		t.row(st.GetStep().GetId(), host, start, end, took, stepState(st), oneLine(msg))
	}
	return t.flush()
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

func executionJSONOf(ex *pb.Execution, withSteps bool) ExecutionJSON {
	out := ExecutionJSON{ID: ex.GetId(), Kind: ex.GetKind(), Trigger: execTrigger(ex), Plan: ex.GetPlan(), From: ex.GetFrom(), To: ex.GetTo(),
		Actor: ex.GetActor(), Note: ex.GetNote(), StartedAt: ex.GetStartedAt().AsTime(), Result: execState(ex), Message: ex.GetMessage(), Pass: pass(ex),
		Schedule: ex.GetSchedule(), ScheduledFor: optTime(ex.GetScheduledFor()), Exercises: ex.GetExercises()}
	if ex.GetFinishedAt() != nil {
		t := ex.GetFinishedAt().AsTime()
		out.FinishedAt = &t
	}
	out.RTOSeconds = optional(ex.GetHasRto(), ex.GetRtoSeconds())
	out.RPOSeconds = optional(ex.GetHasRpo(), ex.GetRpoSeconds())
	out.RPODetail = ex.GetRpoDetail()
	out.RTOTargetSeconds = optional(ex.GetRtoTargetSeconds() > 0, ex.GetRtoTargetSeconds())
	out.RTODetail = ex.GetRtoDetail()
	out.RPOTargetSeconds = optional(ex.GetRpoTargetSeconds() > 0 || ex.GetHasRpoTarget(), ex.GetRpoTargetSeconds())
	if !withSteps {
		return out
	}
	for _, st := range ex.GetSteps() {
		sj := StepJSON{ID: st.GetStep().GetId(), Action: structs.ActionName(st.GetStep().GetAction()), Host: st.GetStep().GetHost(), Target: st.GetStep().GetTarget(),
			State: stepState(st), Attempt: st.GetAttempt(), Message: st.GetMessage(), Outputs: st.GetOutputs(), Replayed: st.GetReplayed(), Verified: st.GetVerified()}
		if st.GetStartedAt() != nil {
			t := st.GetStartedAt().AsTime()
			sj.Started = &t
		}
		if st.GetEndedAt() != nil {
			t := st.GetEndedAt().AsTime()
			sj.Ended = &t
		}
		out.Steps = append(out.Steps, sj)
	}
	return out
}

func optional(ok bool, v float64) *float64 {
	if !ok {
		return nil
	}
	return &v
}

// pass is whether an execution succeeded within its targets.
func pass(ex *pb.Execution) bool {
	if execState(ex) != structs.ExecSucceeded {
		return false
	}
	if t := ex.GetRtoTargetSeconds(); t > 0 && (!ex.GetHasRto() || ex.GetRtoSeconds() > t) {
		return false
	}
	if t := ex.GetRpoTargetSeconds(); (t > 0 || ex.GetHasRpoTarget()) && (!ex.GetHasRpo() || ex.GetRpoSeconds() > t) {
		return false
	}
	return true
}

func newCmdReport(f *Factory) *cobra.Command {
	var asJSON, markdown, verify, kpisOnly bool
	var junit, html, window string
	cmd := &cobra.Command{
		Use:   "report [--json|--markdown] [--kpis] [--window 90d] [--junit FILE] [--html FILE] [--verify]",
		Short: "The programme's KPIs, achieved RTO and RPO against the targets, and the DR test log",
		Long: "The programme's KPIs, achieved RTO and RPO against the targets, and the DR test log.\n\n" +
			"The KPIs are computed against the objectives block: drill success rate, availability of the active\n" +
			"site's services (per minute, from the leader's probes; a minute nobody watched counts as down), the\n" +
			"same inside trading hours, and MTTR over real incidents (unknown when one incident's RTO is).\n\n" +
			"--verify checks the evidence chain instead: every finished execution is sealed with a SHA-256 hash\n" +
			"over its record and the previous hash; a record changed after it ended, or a link removed, is named.\n" +
			"Keep the head hash it prints outside drplane: a chain rewritten whole then shows too.\n" +
			"--junit FILE also writes the executions as JUnit XML, a test case per step, for CI dashboards.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON && markdown {
				return fmt.Errorf("--json and --markdown cannot be combined")
			}
			if verify {
				return runVerifyEvidence(cmd.Context(), f)
			}
			win, err := parseWindow(window)
			if err != nil {
				return err
			}
			client, closeFn, err := f.Operator()
			if err != nil {
				return err
			}
			defer closeFn()
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			kpis, err := fetchKPIs(ctx, client, win)
			if err != nil {
				return explain(f.addr, err)
			}
			if kpisOnly {
				if kpis == nil {
					return fmt.Errorf("the servers are too old to compute KPIs")
				}
				if asJSON {
					return printJSON(f.IO.Out, kpisJSONOf(kpis))
				}
				return printKPIs(f.IO.Out, kpis, false)
			}
			resp, err := client.ListExecutions(ctx, &pb.ListExecutionsRequest{})
			if err != nil {
				return explain(f.addr, err)
			}
			var ended []*pb.Execution
			for _, ex := range resp.GetExecutions() {
				if execState(ex) != structs.ExecRunning && ex.GetCleanupOf() == "" {
					ended = append(ended, ex)
				}
			}
			if junit != "" || html != "" {
				// The step lists: ListExecutions leaves them out.
				var full []*pb.Execution
				for _, ex := range ended {
					one, err := client.GetExecution(ctx, &pb.GetExecutionRequest{Id: ex.GetId()})
					if err != nil {
						return explain(f.addr, err)
					}
					full = append(full, one.GetExecution())
				}
				if junit != "" {
					if err := writeJUnit(junit, full); err != nil {
						return err
					}
				}
				if html != "" {
					plans, err := client.ListPlans(ctx, &pb.ListPlansRequest{})
					if err != nil && status.Code(err) != codes.Unimplemented {
						return explain(f.addr, err)
					}
					evidence := ""
					if v, err := client.VerifyEvidence(ctx, &pb.VerifyEvidenceRequest{}); err == nil {
						evidence = fmt.Sprintf("Evidence chain: %d executions sealed, head %s", v.GetLinks(), v.GetHeadHash())
						if len(v.GetProblems()) > 0 {
							evidence += fmt.Sprintf(" — BROKEN: %s", strings.Join(v.GetProblems(), "; "))
						}
					}
					if err := writeHTMLReport(html, plans.GetPlans(), full, evidence, kpis); err != nil {
						return err
					}
					fmt.Fprintf(f.IO.ErrOut, "wrote %s\n", html)
				}
			}
			if asJSON {
				out := []ExecutionJSON{}
				for _, ex := range ended {
					out = append(out, executionJSONOf(ex, false))
				}
				return printJSON(f.IO.Out, out)
			}
			// The scenarios: every plan the leader's configuration offers,
			// exercised or not. A server too old to list them leaves the
			// ones the executions name.
			plans, err := client.ListPlans(ctx, &pb.ListPlansRequest{})
			if err != nil && status.Code(err) != codes.Unimplemented {
				return explain(f.addr, err)
			}
			if err := printKPIs(f.IO.Out, kpis, markdown); err != nil {
				return err
			}
			return printReport(f.IO.Out, plans.GetPlans(), ended, markdown)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the plan documents' Markdown tables")
	cmd.Flags().BoolVar(&verify, "verify", false, "check the evidence chain of the finished executions; exit 1 when it is broken")
	cmd.Flags().StringVar(&junit, "junit", "", "also write the executions as JUnit XML to FILE (a test case per step)")
	cmd.Flags().BoolVar(&kpisOnly, "kpis", false, "print only the KPIs against the objectives (with --json, as JSON)")
	cmd.Flags().StringVar(&window, "window", "", "the KPIs' window, e.g. 90d (default: the objectives block's window, 365d)")
	cmd.Flags().StringVar(&html, "html", "", "also write the report as one self-contained HTML file: summary, RTO trends, test log, a timeline of every execution")
	return cmd
}

// printReport prints the RTO/RPO summary (per scenario: its targets, the
// last and worst actuals of its ended executions and drills, when it was
// last exercised and whether that run passed; a scenario never exercised
// says so) and the DR test log (every execution).
func printReport(w io.Writer, plans []*pb.PlanScenario, execs []*pb.Execution, markdown bool) error {
	summary := scenarioRows(plans, execs)
	log := testLogRows(execs)
	if markdown {
		fmt.Fprintln(w, "## RTO/RPO summary")
		fmt.Fprintln(w)
		markdownTable(w, []string{"Scenario", "Kind", "RTO target", "RTO last", "RTO worst", "RPO target", "RPO last", "RPO worst", "Last exercised", "Pass"}, summary)
		fmt.Fprintln(w)
		fmt.Fprintln(w, "## DR test log")
		fmt.Fprintln(w)
		markdownTable(w, []string{"Date", "Scenario", "Result", "Notes", "Who"}, log)
		return nil
	}
	fmt.Fprintln(w, "RTO/RPO summary")
	t := newTable(w, "SCENARIO", "KIND", "RTO TARGET", "RTO LAST", "RTO WORST", "RPO TARGET", "RPO LAST", "RPO WORST", "LAST EXERCISED", "PASS")
	for _, r := range summary {
		t.row(r...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nDR test log")
	t = newTable(w, "DATE", "SCENARIO", "RESULT", "NOTES", "WHO")
	for _, r := range log {
		t.row(r...)
	}
	return t.flush()
}

// testLogRows is the DR test log: date, scenario, result, notes (the
// operator's note and the outcome), who.
func testLogRows(execs []*pb.Execution) [][]string {
	log := [][]string{}
	for _, ex := range execs {
		notes := ex.GetId() + ": " + ex.GetMessage()
		if ex.GetNote() != "" {
			notes = ex.GetId() + ": " + ex.GetNote() + " — " + ex.GetMessage()
		}
		log = append(log, []string{ex.GetStartedAt().AsTime().Local().Format(time.DateTime), scenario(ex), execState(ex), oneLine(notes), ex.GetActor()})
	}
	return log
}

// scenarioRows is the summary's rows: one per plan, in the order the
// servers list them, then plans only executions name (a plan since
// removed from the configuration).
func scenarioRows(plans []*pb.PlanScenario, execs []*pb.Execution) [][]string {
	runs := map[string][]*pb.Execution{}
	for _, ex := range execs {
		name := ex.GetPlan()
		if name == "" {
			name = ex.GetKind()
		}
		if _, ok := runs[name]; !ok && !slices.ContainsFunc(plans, func(p *pb.PlanScenario) bool { return p.GetName() == name }) {
			plans = append(plans, &pb.PlanScenario{Name: name, Kind: ex.GetKind(), RtoTargetSeconds: ex.GetRtoTargetSeconds(),
				RpoTargetSeconds: ex.GetRpoTargetSeconds(), HasRpoTarget: ex.GetHasRpoTarget() || ex.GetRpoTargetSeconds() > 0})
		}
		runs[name] = append(runs[name], ex)
	}
	rows := [][]string{}
	for _, p := range plans {
		rpoTgt := seconds(p.GetRpoTargetSeconds())
		if p.GetHasRpoTarget() && p.GetRpoTargetSeconds() == 0 {
			rpoTgt = "0s"
		}
		row := []string{p.GetName(), p.GetKind(), seconds(p.GetRtoTargetSeconds())}
		rs := runs[p.GetName()]
		if len(rs) == 0 {
			rows = append(rows, append(row, "-", "-", rpoTgt, "-", "-", "never exercised", "-"))
			continue
		}
		last := rs[len(rs)-1]
		exercised := last.GetStartedAt().AsTime().Local().Format(time.DateTime) + " (" + last.GetId() + ")"
		rows = append(rows, append(row, measured(last.GetHasRto(), last.GetRtoSeconds()), worst(rs, (*pb.Execution).GetHasRto, (*pb.Execution).GetRtoSeconds),
			rpoTgt, measured(last.GetHasRpo(), last.GetRpoSeconds()), worst(rs, (*pb.Execution).GetHasRpo, (*pb.Execution).GetRpoSeconds),
			exercised, passText(pass(last))))
	}
	return rows
}

// worst is the largest figure among the succeeded runs, "unknown" when
// one of them has none (it cannot be bounded), "-" without a succeeded
// run.
func worst(runs []*pb.Execution, has func(*pb.Execution) bool, value func(*pb.Execution) float64) string {
	out, any := 0.0, false
	for _, ex := range runs {
		if execState(ex) != structs.ExecSucceeded {
			continue
		}
		if !has(ex) {
			return "unknown"
		}
		out, any = max(out, value(ex)), true
	}
	return measured(any, out)
}

// route is where an execution goes: "primary -> dr", or "at primary"
// for a plan that stays in one site (a restart).
func route(ex *pb.Execution) string {
	if ex.GetFrom() == ex.GetTo() {
		return "at " + ex.GetFrom()
	}
	return ex.GetFrom() + " -> " + ex.GetTo()
}

func scenario(ex *pb.Execution) string {
	s := ex.GetKind() + " " + route(ex)
	if ex.GetKind() == "drill" {
		s = "drill at " + ex.GetTo()
	}
	if ex.GetPlan() != "" && ex.GetPlan() != ex.GetKind() {
		s += " (plan " + ex.GetPlan() + ")"
	}
	if execTrigger(ex) == structs.TriggerAutomatic {
		s += ", automatic"
	}
	return s
}

func passText(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func markdownTable(w io.Writer, headers []string, rows [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(headers, " | "))
	seps := make([]string, len(headers))
	for i := range seps {
		seps[i] = "---"
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(seps, " | "))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}
