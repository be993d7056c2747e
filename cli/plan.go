package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/spf13/cobra"
)

func newCmdPlan(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "plan", Short: "Show the concrete steps of a plan, or validate plan definitions"}
	var to, service string
	var asJSON bool
	show := &cobra.Command{
		Use:   "show NAME [--to SITE] [--service S]",
		Short: "Print the concrete steps, hosts and order of a plan without running anything",
		Long: `NAME is failover, switchover, failback, drill, restart, restore, or an operator-defined plan
from the servers' configuration. The plan is derived by the leader from the
registered agents, exactly as it would run now.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlanShow(cmd.Context(), f, args[0], to, service, asJSON)
		},
	}
	show.Flags().StringVar(&to, "to", "", "target site")
	show.Flags().StringVar(&service, "service", "", "a restart's service (with what depends on it), or a restore's data service")
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var offline bool
	validate := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check plan definitions (plan and objectives blocks) for errors, with file:line:col",
		Long: `Parses the plan and objectives blocks of FILE (a server configuration, or a
file holding only those blocks) and reports unknown actions, phases and keys,
bad durations and dependency cycles. Unless --offline, it also derives every
plan against the agents registered with the control plane, catching unknown
services, hooks and sync blocks.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlanValidate(cmd.Context(), f, args[0], offline)
		},
	}
	validate.Flags().BoolVar(&offline, "offline", false, "check the file only, without asking the control plane for the registered agents")
	cmd.AddCommand(show, validate)
	return cmd
}

func runPlanShow(ctx context.Context, f *Factory, name, to, service string, asJSON bool) error {
	client, closeFn, err := f.Operator()
	if err != nil {
		return err
	}
	defer closeFn()
	req := &pb.StartExecutionRequest{Kind: name, To: to, Service: service, DryRun: true}
	if !isKind(name) {
		// An operator-defined plan: the server knows its kind.
		req.Kind, req.Plan = "", name
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := client.StartExecution(ctx, req)
	if err != nil {
		return explain(f.addr, err)
	}
	ex := resp.GetExecution()
	if asJSON {
		return printJSON(f.IO.Out, planFromProto(ex))
	}
	printPlan(f.IO.Out, ex)
	fmt.Fprintf(f.IO.Out, "\nexpected data loss: %s\n", expectedLoss(ex))
	return nil
}

func isKind(name string) bool {
	for _, k := range plan.Kinds {
		if string(k) == name {
			return true
		}
	}
	return false
}

// printPlan prints a derived plan as a table.
func printPlan(w io.Writer, ex *pb.Execution) {
	_ = planFromProto(ex).Format(w)
}

// planFromProto turns the steps of an execution back into a plan.
func planFromProto(ex *pb.Execution) *plan.Plan {
	p := &plan.Plan{Name: ex.GetPlan(), Kind: plan.Kind(ex.GetKind()), From: ex.GetFrom(), To: ex.GetTo(), Warnings: ex.GetWarnings(),
		Objectives:  plan.Objectives{RTO: secondsDuration(ex.GetRtoTargetSeconds()), RPO: secondsDuration(ex.GetRpoTargetSeconds()), ZeroRPO: ex.GetHasRpoTarget() && ex.GetRpoTargetSeconds() == 0},
		MaxDataLoss: secondsDuration(ex.GetMaxDataLossSeconds())}
	for _, es := range ex.GetSteps() {
		st := es.GetStep()
		p.Steps = append(p.Steps, plan.Step{ID: st.GetId(), Phase: st.GetPhase(), Action: structs.ActionName(st.GetAction()), Host: st.GetHost(), Site: st.GetSite(),
			Target: st.GetTarget(), Args: st.GetArgs(), ArgsFrom: st.GetArgsFrom(), Timeout: time.Duration(st.GetTimeoutMs()) * time.Millisecond,
			Retries: int(st.GetRetries()), OnFailure: st.GetOnFailure(), DependsOn: st.GetDependsOn(), HealthGate: st.GetHealthGate(),
			Always: st.GetAlways(), Rollback: st.GetRollback(), Description: st.GetDescription()})
	}
	return p
}

func secondsDuration(sec float64) time.Duration { return time.Duration(sec * float64(time.Second)) }

func runPlanValidate(ctx context.Context, f *Factory, path string, offline bool) error {
	file, err := plan.ParseFile(path)
	if err != nil {
		return err
	}
	out := f.IO.Out
	if offline {
		fmt.Fprintf(out, "%s: %d plan definitions are well-formed (not checked against registered agents)\n", path, len(file.Plans))
		return nil
	}
	topo, err := fetchTopology(ctx, f)
	if err != nil {
		return fmt.Errorf("%s is well-formed, but the registered agents could not be fetched to check services and hooks (pass --offline to skip): %w", path, err)
	}
	if err := file.Validate(topo); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %d plan definitions are valid against %d registered agents\n", path, len(file.Plans), len(topo.Agents))
	return nil
}

// fetchTopology builds the plan topology from the control plane's status.
func fetchTopology(ctx context.Context, f *Factory) (plan.Topology, error) {
	client, closeFn, err := f.Operator()
	if err != nil {
		return plan.Topology{}, err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	st, err := client.GetStatus(ctx, &pb.GetStatusRequest{Read: &pb.ReadOptions{Stale: true}})
	if err != nil {
		return plan.Topology{}, explain(f.addr, err)
	}
	topo := plan.Topology{ActiveSite: st.GetActiveSite()}
	for _, s := range st.GetSites() {
		if s.GetKind() == "data" {
			topo.DataSites = append(topo.DataSites, s.GetName())
		}
	}
	for _, a := range st.GetAgents() {
		pa := plan.Agent{HostID: a.GetHostId(), Site: a.GetSite(), Address: a.GetAddress(), Syncs: a.GetSyncs(), Snapshots: a.GetSnapshots(), Hooks: a.GetHooks()}
		for _, s := range a.GetServices() {
			pa.Services = append(pa.Services, plan.Service{Name: s.GetName(), Driver: s.GetDriver(), DependsOn: s.GetDependsOn(), Port: int(s.GetPort()), Promotable: s.GetPromotable(), Drillable: s.GetDrillable(), Backup: s.GetBackup()})
		}
		topo.Agents = append(topo.Agents, pa)
	}
	return topo, nil
}
