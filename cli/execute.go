package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// followInterval is how often a command that follows an execution asks
// for its state.
const followInterval = 300 * time.Millisecond

type executeOptions struct {
	f             *Factory
	Kind          string
	To            string
	Plan          string
	AllowDataLoss bool
	Yes           bool
	Detach        bool
	Cleanup       string
	// Service is a restart's one service (with what depends on it), or
	// the data service a restore restores.
	Service string
	// ToTime and Backup are a restore's target, as given.
	ToTime, Backup string
	// Force and ConfirmPrimaryDown make a failover act without a quorum
	// (two sites, the active one down).
	Force              bool
	ConfirmPrimaryDown bool
	// Note is the operator's word on why, for the DR test log.
	Note string
}

func newCmdFailover(f *Factory) *cobra.Command {
	opts := &executeOptions{f: f, Kind: "failover"}
	cmd := &cobra.Command{
		Use:   "failover --to SITE",
		Short: "Fail over to another site (unplanned: fence the active site, promote the target)",
		Long: `Fail over to SITE: fence the active site best-effort, check the RPO guard,
make SITE active (bumping the epoch), promote its data services and start its
services in dependency order, each gated by its health check.

Without --yes the plan and the expected data loss are shown first and you are
asked to confirm; with no terminal and no --yes the command refuses.

With two sites and no witness, losing the active site loses the Raft quorum:
no leader can run a failover. Then --force --confirm-primary-down, sent to the
servers of SITE, has the server of SITE with the longest log make itself the
only voter (the other servers of SITE rejoin it) and, as leader, fail over.
Confirm only when every server and data host of the active site is down or
fenced: if it still runs, there would be two clusters. Its servers, when they
come back, refuse to serve until ` + "`drplane server rejoin`" + ` is run on them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runExecute(cmd.Context(), opts) },
	}
	cmd.Flags().StringVar(&opts.To, "to", "", "target site (required)")
	cmd.Flags().StringVar(&opts.Plan, "plan", "", "an operator-defined failover plan from the servers' config")
	cmd.Flags().BoolVar(&opts.AllowDataLoss, "allow-data-loss", false, "promote even when replication lag exceeds max_data_loss")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "fail over without a quorum (two sites, the active one down); needs --confirm-primary-down")
	cmd.Flags().BoolVar(&opts.ConfirmPrimaryDown, "confirm-primary-down", false, "confirm that every server and host of the active site is down or fenced")
	addExecuteFlags(cmd, opts)
	return cmd
}

func newCmdSwitchover(f *Factory) *cobra.Command {
	opts := &executeOptions{f: f, Kind: "switchover"}
	cmd := &cobra.Command{
		Use:   "switchover --to SITE",
		Short: "Move the active role to another site with zero data loss (planned)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runExecute(cmd.Context(), opts) },
	}
	cmd.Flags().StringVar(&opts.To, "to", "", "target site (required)")
	cmd.Flags().StringVar(&opts.Plan, "plan", "", "an operator-defined switchover plan")
	addExecuteFlags(cmd, opts)
	return cmd
}

func newCmdFailback(f *Factory) *cobra.Command {
	opts := &executeOptions{f: f, Kind: "failback"}
	cmd := &cobra.Command{
		Use:   "failback",
		Short: "Reprotect the original site as a standby and switch back to it",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runExecute(cmd.Context(), opts) },
	}
	cmd.Flags().StringVar(&opts.To, "to", "", "site to fail back to (default: the other data site)")
	addExecuteFlags(cmd, opts)
	return cmd
}

func newCmdDrill(f *Factory) *cobra.Command {
	opts := &executeOptions{f: f, Kind: "drill"}
	cmd := &cobra.Command{
		Use:   "drill [--plan NAME] | drill --cleanup ID",
		Short: "Test recovery at the DR site on isolated copies; production is untouched",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runExecute(cmd.Context(), opts) },
	}
	cmd.Flags().StringVar(&opts.Plan, "plan", "", "an operator-defined drill plan")
	cmd.Flags().StringVar(&opts.To, "to", "", "site to drill (default: the non-active data site)")
	cmd.Flags().StringVar(&opts.Cleanup, "cleanup", "", "tear down the copies of the interrupted drill ID")
	addExecuteFlags(cmd, opts)
	return cmd
}

func newCmdRestart(f *Factory) *cobra.Command {
	opts := &executeOptions{f: f, Kind: "restart"}
	cmd := &cobra.Command{
		Use:   "restart [--service S] [--plan NAME]",
		Short: "Restart the active site's services in place, in dependency order, each health-gated",
		Long: `Restart the services of the active site where they run: stop them in reverse
dependency order, start them in dependency order, each gated by its health
check, then check them all; the run is measured like a failover (RTO from the
command to the last health gate). With --service S, only S and the services
that depend on it, directly or not, are restarted; what S depends on keeps
running. For a failed application host, or a cascade of failed services.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runExecute(cmd.Context(), opts) },
	}
	cmd.Flags().StringVar(&opts.Service, "service", "", "restart this service and what depends on it (default: every service)")
	cmd.Flags().StringVar(&opts.Plan, "plan", "", "an operator-defined restart plan from the servers' config")
	addExecuteFlags(cmd, opts)
	return cmd
}

func newCmdRestore(f *Factory) *cobra.Command {
	opts := &executeOptions{f: f, Kind: "restore"}
	cmd := &cobra.Command{
		Use:   "restore --service S [--to-time T | --backup LABEL] [--plan NAME]",
		Short: "Restore a data service of the active site from its backups (pgBackRest), in place",
		Long: `Restore the PostgreSQL service S of the active site from its backup block:
stop the services that depend on it in reverse dependency order, take a
restoration point (a backup, and a snapshot of every snapshot block) while it
still runs, stop it and its standbys, restore it to the target and bring it up
as primary, start its dependents in dependency order with health gates, and
rejoin its standbys to it. Operator steps of a restore plan (--plan: the
circuit breaker, migrations, reconciliation, an approval) run where the plan
puts them. The target is checked against the repository before anything stops.

--to-time restores the state at that instant ("2026-12-03 09:00:00+00", RFC
3339 also works); --backup the state a backup left (drplane backup list);
neither, the newest state the repository holds. The RPO recorded is the
target's distance from the command; the RTO runs to the last health gate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runExecute(cmd.Context(), opts) },
	}
	cmd.Flags().StringVar(&opts.Service, "service", "", "the data service to restore (required)")
	cmd.Flags().StringVar(&opts.ToTime, "to-time", "", `restore the state at this time, e.g. "2026-12-03 09:00:00+00"`)
	cmd.Flags().StringVar(&opts.Backup, "backup", "", "restore the state this backup left (a label from drplane backup list)")
	cmd.Flags().StringVar(&opts.Plan, "plan", "", "an operator-defined restore plan from the servers' config")
	addExecuteFlags(cmd, opts)
	return cmd
}

// restoreTimeLayouts are the forms --to-time takes: PostgreSQL's own and
// RFC 3339.
var restoreTimeLayouts = []string{"2006-01-02 15:04:05.999999999-07", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999Z07:00", time.RFC3339Nano}

// parseRestoreTime parses --to-time; a time needs its zone.
func parseRestoreTime(s string) (time.Time, error) {
	for _, layout := range restoreTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf(`--to-time %q is not a time with its zone; expected e.g. "2026-12-03 09:00:00+00" or "2026-12-03T09:00:00Z"`, s)
}

func addExecuteFlags(cmd *cobra.Command, opts *executeOptions) {
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&opts.Detach, "detach", false, "start the execution and return without following it")
	cmd.Flags().StringVar(&opts.Note, "note", "", `why, for the report's DR test log, e.g. "Q4 site drill, change CHG-1234"`)
}

func runExecute(ctx context.Context, opts *executeOptions) error {
	if (opts.Kind == "failover" || opts.Kind == "switchover") && opts.To == "" {
		return errors.New("--to is required: name the site to move the active role to")
	}
	if opts.ConfirmPrimaryDown && !opts.Force {
		return errors.New("--confirm-primary-down goes with --force")
	}
	var toTime *timestamppb.Timestamp
	if opts.Kind == "restore" {
		switch {
		case opts.Service == "":
			return errors.New("--service is required: name the data service to restore (drplane status lists them)")
		case opts.ToTime != "" && opts.Backup != "":
			return errors.New("--to-time and --backup exclude each other: restore to a time or to a backup")
		case opts.ToTime != "":
			t, err := parseRestoreTime(opts.ToTime)
			if err != nil {
				return err
			}
			toTime = timestamppb.New(t)
		}
	}
	client, closeFn, err := opts.f.Operator()
	if err != nil {
		return err
	}
	defer closeFn()
	if opts.Force {
		return runForcedFailover(ctx, opts, client)
	}
	req := &pb.StartExecutionRequest{Write: &pb.WriteOptions{RequestId: uuid.NewString()},
		Kind: opts.Kind, Plan: opts.Plan, To: opts.To, AllowDataLoss: opts.AllowDataLoss, CleanupOf: opts.Cleanup, Service: opts.Service,
		RestoreToTime: toTime, RestoreBackup: opts.Backup, Note: opts.Note}
	out := opts.f.IO.Out
	if !opts.Yes {
		if err := confirmPlan(ctx, opts, client, req); err != nil {
			return err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := client.StartExecution(rctx, req)
	cancel()
	if err != nil {
		return explain(opts.f.addr, err)
	}
	ex := resp.GetExecution()
	fmt.Fprintf(out, "started %s %s (%s, %d steps)\n", ex.GetKind(), ex.GetId(), route(ex), len(ex.GetSteps()))
	if opts.Detach {
		fmt.Fprintf(out, "follow it with: drplane history %s\n", ex.GetId())
		return nil
	}
	return follow(ctx, opts.f, client, ex.GetId())
}

// forcedFailoverWait bounds how long the command waits for the recovered
// leader to start the failover.
const forcedFailoverWait = 2 * time.Minute

// runForcedFailover is the quorum-loss failover: the servers of the target
// site recover the cluster and their new leader starts the failover, which
// the command then follows.
func runForcedFailover(ctx context.Context, opts *executeOptions, client pb.OperatorClient) error {
	if !opts.ConfirmPrimaryDown {
		return errors.New("--force acts without a quorum and needs --confirm-primary-down: confirm that every server and data host of the active site is down or fenced (if it still runs, there would be two clusters)")
	}
	out := opts.f.IO.Out
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := client.RecoverQuorum(rctx, &pb.RecoverQuorumRequest{To: opts.To, ConfirmPrimaryDown: true, AllowDataLoss: opts.AllowDataLoss, Note: opts.Note})
	cancel()
	if err != nil {
		return explain(opts.f.addr, err)
	}
	fmt.Fprintf(out, "quorum-loss recovery %s: %s\n", resp.GetId(), resp.GetMessage())
	if opts.Detach {
		fmt.Fprintln(out, "follow the failover with: drplane history")
		return nil
	}
	deadline := time.Now().Add(forcedFailoverWait)
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		list, err := client.ListExecutions(rctx, &pb.ListExecutionsRequest{})
		cancel()
		if err == nil {
			for _, ex := range list.GetExecutions() {
				if ex.GetKind() == "failover" && ex.GetTo() == opts.To && !ex.GetStartedAt().AsTime().Before(start.Add(-time.Second)) {
					fmt.Fprintf(out, "started failover %s (%s -> %s, %d steps)\n", ex.GetId(), ex.GetFrom(), ex.GetTo(), len(ex.GetSteps()))
					return follow(ctx, opts.f, client, ex.GetId())
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the recovered servers started no failover to %s within %s (last error: %v); see `drplane status` and the servers' logs", opts.To, forcedFailoverWait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(followInterval):
		}
	}
}

// confirmPlan shows the plan and the expected data loss and asks on a
// terminal; without one it refuses, as --yes was not given.
func confirmPlan(ctx context.Context, opts *executeOptions, client pb.OperatorClient, req *pb.StartExecutionRequest) error {
	dry := &pb.StartExecutionRequest{Kind: req.GetKind(), Plan: req.GetPlan(), To: req.GetTo(), AllowDataLoss: req.GetAllowDataLoss(), CleanupOf: req.GetCleanupOf(),
		Service: req.GetService(), RestoreToTime: req.GetRestoreToTime(), RestoreBackup: req.GetRestoreBackup(), DryRun: true}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := client.StartExecution(rctx, dry)
	cancel()
	if err != nil {
		return explain(opts.f.addr, err)
	}
	out := opts.f.IO.Out
	ex := resp.GetExecution()
	printPlan(out, ex)
	fmt.Fprintf(out, "\nexpected data loss: %s\n", expectedLoss(ex))
	if !opts.f.IsTerminal() {
		return fmt.Errorf("refusing to run a %s without confirmation: no terminal to ask on; pass --yes", req.GetKind())
	}
	fmt.Fprintf(out, "Run this %s? Type yes to continue: ", req.GetKind())
	line, _ := bufio.NewReader(opts.f.IO.In).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return errors.New("aborted: nothing was changed")
	}
	return nil
}

func expectedLoss(ex *pb.Execution) string {
	switch {
	case ex.GetKind() == "drill":
		return "none (a drill runs on copies)"
	case ex.GetKind() == "restart":
		return "none (" + ex.GetRpoDetail() + ")"
	case ex.GetKind() != "failover":
		return "none (the target catches up before it is promoted)"
	case !ex.GetHasRpo():
		return "unknown (" + ex.GetRpoDetail() + ")"
	}
	return fmt.Sprintf("%.1fs of writes (max_data_loss %s; %s)", ex.GetRpoSeconds(), seconds(ex.GetMaxDataLossSeconds()), ex.GetRpoDetail())
}

// follow prints each step's start and end until the execution ends. An
// interrupt detaches: the execution goes on in the control plane.
func follow(ctx context.Context, f *Factory, client pb.OperatorClient, id string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := f.IO.Out
	seen := map[string]string{}
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := client.GetExecution(rctx, &pb.GetExecutionRequest{Id: id})
		cancel()
		switch {
		case ctx.Err() != nil:
			fmt.Fprintf(out, "detached; %s goes on. Follow it with: drplane history %s\n", id, id)
			return &ExitError{Code: 130}
		case err != nil:
			// A leader election is in progress; the execution resumes
			// under the next leader.
			fmt.Fprintf(f.IO.ErrOut, "waiting for the control plane: %v\n", err)
		default:
			ex := resp.GetExecution()
			printTransitions(out, ex, seen)
			if execState(ex) != structs.ExecRunning {
				return finished(out, ex)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(followInterval):
		}
	}
}

// printTransitions prints the steps whose state changed since last time,
// in the order they happened: several may change between two polls.
func printTransitions(w io.Writer, ex *pb.Execution, seen map[string]string) {
	type event struct {
		at   time.Time
		line string
	}
	var events []event
	for _, st := range ex.GetSteps() {
		id, state := st.GetStep().GetId(), stepState(st)
		if seen[id] == state || state == structs.StepPending {
			continue
		}
		seen[id] = state
		where := st.GetStep().GetHost()
		if where == "" {
			where = "control plane"
		}
		switch state {
		case structs.StepRunning, structs.StepWaiting:
			line := fmt.Sprintf("%s  %-9s %s (%s)", clock(st.GetStartedAt().AsTime()), state, id, where)
			if state == structs.StepWaiting {
				line += ": " + st.GetMessage()
			}
			events = append(events, event{st.GetStartedAt().AsTime(), line})
		case structs.StepSkipped:
			// Skipped steps never ran: they sort last, without a time.
			events = append(events, event{time.Now().Add(time.Hour), fmt.Sprintf("%12s  %-9s %s (%s): not run", "", state, id, where)})
		default:
			took := ""
			if st.GetStartedAt() != nil && st.GetEndedAt() != nil {
				took = " in " + st.GetEndedAt().AsTime().Sub(st.GetStartedAt().AsTime()).Round(time.Millisecond).String()
			}
			end := st.GetEndedAt().AsTime()
			events = append(events, event{end, fmt.Sprintf("%s  %-9s %s (%s)%s: %s", clock(end), state, id, where, took, oneLine(st.GetMessage()))})
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].at.Before(events[j].at) })
	for _, e := range events {
		fmt.Fprintln(w, e.line)
	}
}

func clock(t time.Time) string { return t.Local().Format("15:04:05.000") }

// finished prints the outcome and turns a failed execution into an error.
func finished(w io.Writer, ex *pb.Execution) error {
	fmt.Fprintf(w, "%s %s %s: %s\n", ex.GetKind(), ex.GetId(), execState(ex), ex.GetMessage())
	if ex.GetHasRto() || ex.GetHasRpo() {
		fmt.Fprintf(w, "RTO %s (target %s), RPO %s (target %s)\n", measured(ex.GetHasRto(), ex.GetRtoSeconds()), seconds(ex.GetRtoTargetSeconds()),
			measured(ex.GetHasRpo(), ex.GetRpoSeconds()), rpoTarget(ex))
	}
	if d := ex.GetRtoDetail(); d != "" {
		fmt.Fprintf(w, "RTO counted %s\n", d)
	}
	if execState(ex) != structs.ExecSucceeded {
		return fmt.Errorf("%s %s %s: %s", ex.GetKind(), ex.GetId(), execState(ex), ex.GetMessage())
	}
	return nil
}

func measured(ok bool, sec float64) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1fs", sec)
}

// rpoTarget is an execution's RPO target: "0s" is zero data loss, not
// none.
func rpoTarget(ex *pb.Execution) string {
	if ex.GetHasRpoTarget() && ex.GetRpoTargetSeconds() == 0 {
		return "0s"
	}
	return seconds(ex.GetRpoTargetSeconds())
}

func seconds(sec float64) string {
	if sec == 0 {
		return "none"
	}
	return (time.Duration(sec * float64(time.Second))).String()
}

func newCmdApprove(f *Factory) *cobra.Command {
	var step string
	cmd := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve the execution's waiting approval step",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return simpleWrite(cmd.Context(), f, func(ctx context.Context, c pb.OperatorClient, w *pb.WriteOptions) error {
				_, err := c.ApproveExecution(ctx, &pb.ApproveExecutionRequest{Write: w, Id: args[0], StepId: step})
				return err
			}, "approved "+args[0])
		},
	}
	cmd.Flags().StringVar(&step, "step", "", "the approval step id, when several wait")
	return cmd
}

func newCmdCancel(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Stop scheduling the execution's new steps and record it as cancelled",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return simpleWrite(cmd.Context(), f, func(ctx context.Context, c pb.OperatorClient, w *pb.WriteOptions) error {
				_, err := c.CancelExecution(ctx, &pb.CancelExecutionRequest{Write: w, Id: args[0]})
				return err
			}, "cancelling "+args[0]+": running steps finish, no new step starts (teardown steps still run)")
		},
	}
}

// callOperator runs call against the servers within requestTimeout; an
// error the call returns is explained (which server, what to do).
func callOperator(ctx context.Context, f *Factory, call func(context.Context, pb.OperatorClient) error) error {
	client, closeFn, err := f.Operator()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := call(ctx, client); err != nil {
		return explain(f.addr, err)
	}
	return nil
}

// simpleWrite runs one write request and prints done on success.
func simpleWrite(ctx context.Context, f *Factory, call func(context.Context, pb.OperatorClient, *pb.WriteOptions) error, done string) error {
	if err := callOperator(ctx, f, func(ctx context.Context, c pb.OperatorClient) error {
		return call(ctx, c, &pb.WriteOptions{RequestId: uuid.NewString()})
	}); err != nil {
		return err
	}
	fmt.Fprintln(f.IO.Out, done)
	return nil
}

// newCmdAutomation returns pause, resume or ack.
func newCmdAutomation(f *Factory, action, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   action,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			done := map[string]string{
				"pause":  "automatic action paused; probes, leases and reports continue (drplane resume lifts it)",
				"resume": "automatic action resumed",
			}[action]
			return simpleWrite(cmd.Context(), f, func(ctx context.Context, c pb.OperatorClient, w *pb.WriteOptions) error {
				_, err := c.SetAutomation(ctx, &pb.SetAutomationRequest{Write: w, Action: action, Reason: reason})
				return err
			}, done)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail")
	return cmd
}
