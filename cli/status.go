package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type statusOptions struct {
	f     *Factory
	JSON  bool
	Stale bool
}

func newCmdStatus(f *Factory, runF func(*statusOptions) error) *cobra.Command {
	opts := &statusOptions{f: f}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the leader, epoch, active site, servers and agents",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runStatus(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&opts.Stale, "stale", false, "let the server answer from its local state without a leader")
	return cmd
}

func runStatus(ctx context.Context, opts *statusOptions) error {
	client, closeFn, err := opts.f.Operator()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := client.GetStatus(ctx, &pb.GetStatusRequest{Read: &pb.ReadOptions{Stale: opts.Stale}})
	if err != nil && !opts.Stale && status.Code(err) == codes.Unavailable {
		// No leader answers: what a reachable server knows is still worth
		// showing, marked stale, beside why there is no leader. The
		// command still fails, with the reason: a script must not take
		// this for a healthy cluster.
		if stale, serr := client.GetStatus(ctx, &pb.GetStatusRequest{Read: &pb.ReadOptions{Stale: true}}); serr == nil {
			out := toStatusJSON(stale)
			out.NoLeader = status.Convert(err).Message()
			if perr := printStatusAs(opts, out); perr != nil {
				return perr
			}
		}
	}
	if err != nil {
		return explain(opts.f.addr, err)
	}
	return printStatusAs(opts, toStatusJSON(resp))
}

// printStatusAs prints s as JSON or as text, as opts asks.
func printStatusAs(opts *statusOptions, s StatusJSON) error {
	if opts.JSON {
		return printJSON(opts.f.IO.Out, s)
	}
	return printStatus(opts.f.IO.Out, s)
}

func toStatusJSON(resp *pb.GetStatusResponse) StatusJSON {
	out := StatusJSON{
		LeaderID:   resp.GetLeaderId(),
		Epoch:      resp.GetEpoch(),
		ActiveSite: resp.GetActiveSite(),
		Stale:      resp.GetMeta().GetStale(),
		ServedBy:   resp.GetMeta().GetServedBy(),
		Sites:      []SiteJSON{},
		Servers:    toServersJSON(resp.GetServers()),
		Agents:     []AgentJSON{},
	}
	for _, s := range resp.GetSites() {
		out.Sites = append(out.Sites, SiteJSON{Name: s.GetName(), Kind: s.GetKind(), Active: s.GetActive()})
	}
	if a := resp.GetAutomation(); a != nil {
		out.Automation = &AutomationJSON{Enabled: a.GetEnabled(), Paused: a.GetPaused(), PausedBy: a.GetPausedBy(), Blocked: a.GetBlocked(),
			SiteLost: a.GetSiteLost(), WouldFire: a.GetWouldFire(), Reason: a.GetReason(),
			ExposureTarget: a.GetExposureTarget(), ExposureSeconds: optional(a.GetExposureKnown(), a.GetExposureSeconds()), ExposureDetail: a.GetExposureDetail()}
	}
	if !out.Stale {
		out.Degraded = []ProductionProblemJSON{}
		for _, p := range resp.GetDegraded() {
			out.Degraded = append(out.Degraded, ProductionProblemJSON{HostID: p.GetHostId(), Service: p.GetService(), Problem: p.GetProblem()})
		}
	}
	for _, r := range resp.GetReplication() {
		out.Replication = append(out.Replication, toReplicationJSON(r))
	}
	for _, r := range resp.GetReadiness() {
		out.Readiness = append(out.Readiness, toReadinessJSON(r))
	}
	for _, d := range resp.GetDrills() {
		dj := PlanDrillJSON{Plan: d.GetPlan(), LastExecution: d.GetLastExecution(), LastAt: optTime(d.GetLastAt()),
			LastSucceededAt: optTime(d.GetLastSucceededAt()), Overdue: d.GetOverdue(), OverdueReason: d.GetOverdueReason()}
		if d.GetLastExecution() != "" {
			dj.LastState = structs.ExecStateName(d.GetLastState())
		}
		if d.GetInterval() != nil {
			dj.Interval = days(d.GetInterval().AsDuration())
		}
		out.Drills = append(out.Drills, dj)
	}
	for _, a := range resp.GetAgents() {
		aj := AgentJSON{HostID: a.GetHostId(), Site: a.GetSite(), Address: a.GetAddress(), Services: []string{}}
		for _, svc := range a.GetServices() {
			aj.Services = append(aj.Services, svc.GetName())
		}
		addProbe(&aj, a.GetProbe())
		out.Agents = append(out.Agents, aj)
		for _, b := range a.GetProbe().GetBackups() {
			out.Backups = append(out.Backups, toBackupStatusJSON(a.GetHostId(), b))
		}
	}
	return out
}

// replicationModes spell ReplicationMode as --json and the table do.
var replicationModes = map[pb.ReplicationMode]string{
	pb.ReplicationMode_REPLICATION_MODE_ASYNC: "async", pb.ReplicationMode_REPLICATION_MODE_SYNC: "sync",
	pb.ReplicationMode_REPLICATION_MODE_SYNC_STRICT: "sync-strict",
}

func toReplicationJSON(r *pb.DataReplication) ReplicationJSON {
	rj := ReplicationJSON{Service: r.GetService(), Mode: replicationModes[r.GetMode()], Primary: r.GetPrimary(),
		SynchronousStandbyNames: r.GetSynchronousStandbyNames(), Synchronous: append([]string{}, r.GetSynchronous()...),
		DegradedReason: r.GetDegradedReason(), Standbys: []StandbyJSON{},
		ExposureSeconds: optional(r.GetExposureKnown(), r.GetExposureSeconds()), ExposureDetail: r.GetExposureDetail()}
	if r.GetDegradedSince() != nil {
		since := r.GetDegradedSince().AsTime()
		rj.DegradedSince = &since
	}
	for _, s := range r.GetStandbys() {
		rj.Standbys = append(rj.Standbys, StandbyJSON{HostID: s.GetHostId(), ApplicationName: s.GetApplicationName(),
			State: structs.WalSenderStateName(s.GetState()), SyncState: structs.SyncStateName(s.GetSyncState()),
			FlushPosition: s.GetFlushPosition(), RecordedSynchronous: s.GetRecordedSynchronous()})
	}
	return rj
}

// printReplication prints each data service's replication: the mode, the
// synchronous standbys the cluster relies on, a degrade, and the standbys
// as their primary sees them.
func printReplication(w io.Writer, reps []ReplicationJSON) error {
	if len(reps) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nReplication")
	for _, r := range reps {
		state := r.Mode
		switch {
		case r.Mode == "async":
		case r.DegradedSince != nil:
			state += fmt.Sprintf(", DEGRADED to async since %s: %s", clock(*r.DegradedSince), r.DegradedReason)
		case len(r.Synchronous) > 0:
			state += ", synchronous with " + strings.Join(r.Synchronous, ", ")
		case r.Mode == "sync-strict":
			state += ", no synchronous standby recorded yet (commits wait for one)"
		default:
			state += ", no synchronous standby recorded yet"
		}
		primary := r.Primary
		if primary == "" {
			primary = "(none answering)"
		}
		fmt.Fprintf(w, "  %s: primary %s, %s\n", r.Service, primary, state)
		loss := "unknown"
		if r.ExposureSeconds != nil {
			loss = fmt.Sprintf("%.1fs", *r.ExposureSeconds)
		}
		fmt.Fprintf(w, "  RPO now: %s (%s)\n", loss, r.ExposureDetail)
	}
	t := newTable(w, "SERVICE", "STANDBY", "APPLICATION NAME", "STATE", "SYNC STATE", "FLUSHED", "RECORDED SYNC")
	for _, r := range reps {
		for _, s := range r.Standbys {
			t.row(r.Service, s.HostID, orDash(s.ApplicationName), orDash(s.State), orDash(s.SyncState), orDash(s.FlushPosition), yesNo(s.RecordedSynchronous))
		}
	}
	return t.flush()
}

// addProbe copies the leader's latest probe of an agent into its JSON.
func addProbe(aj *AgentJSON, p *pb.AgentProbe) {
	if p == nil {
		return
	}
	reachable := p.GetReachable()
	aj.Reachable, aj.LeaseValid, aj.LeaseGranted, aj.Fenced, aj.Epoch, aj.ProbeError = &reachable, p.GetLeaseValid(), p.GetLeaseGranted(), p.GetFenced(), p.GetEpoch(), p.GetError()
	aj.Roles, aj.Lag = map[string]string{}, map[string]LagJSON{}
	for _, hp := range p.GetProblems() {
		pj := HostProblemJSON{Kind: hostProblemKind(hp.GetKind()), Message: hp.GetMessage()}
		if hp.GetSince() != nil {
			since := hp.GetSince().AsTime()
			pj.Since = &since
		}
		aj.Problems = append(aj.Problems, pj)
	}
	for _, svc := range p.GetServices() {
		aj.Roles[svc.GetName()] = structs.RoleName(svc.GetRole())
		if r := svc.GetReplication(); r != nil {
			aj.Lag[svc.GetName()] = LagJSON{Position: r.GetPosition(), LagMs: r.GetLagMs(), LagBytes: r.GetLagBytes()}
		}
	}
}

func toServersJSON(servers []*pb.Server) []ServerJSON {
	out := []ServerJSON{}
	for _, s := range servers {
		out = append(out, ServerJSON{
			ID: s.GetId(), Site: s.GetSite(), Address: s.GetAddress(), RaftAddress: s.GetRaftAddress(),
			State: s.GetState(), Voter: s.GetVoter(), LastIndex: s.GetLastIndex(),
		})
	}
	return out
}

func printStatus(w io.Writer, s StatusJSON) error {
	leader := s.LeaderID
	if leader == "" {
		leader = "(none)"
	}
	if s.NoLeader != "" {
		leader = "(none: " + s.NoLeader + ")"
	}
	fmt.Fprintf(w, "Leader:       %s\nEpoch:        %d\nActive site:  %s\n", leader, s.Epoch, s.ActiveSite)
	if s.Stale {
		fmt.Fprintf(w, "(stale: answered by %s from its local state)\n", s.ServedBy)
	} else {
		fmt.Fprintf(w, "Production:   %s\n", production(s.Degraded))
	}
	fmt.Fprintln(w, "\nSites")
	t := newTable(w, "NAME", "KIND", "ACTIVE")
	for _, site := range s.Sites {
		t.row(site.Name, site.Kind, yesNo(site.Active))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nServers")
	if err := printServers(w, s.Servers); err != nil {
		return err
	}
	printAutomation(w, s.Automation)
	if err := printReplication(w, s.Replication); err != nil {
		return err
	}
	printBackupStatuses(w, s.Backups)
	printReadinessVerdicts(w, s.Readiness)
	if err := printDrills(w, s.Drills); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nAgents")
	if len(s.Agents) == 0 {
		fmt.Fprintln(w, "(none registered)")
		return nil
	}
	t = newTable(w, "HOST", "SITE", "ADDRESS", "REACHABLE", "LEASE", "SERVICES")
	for _, a := range s.Agents {
		t.row(a.HostID, a.Site, a.Address, reachability(a), leaseState(a), serviceRoles(a))
	}
	if err := t.flush(); err != nil {
		return err
	}
	printHostProblems(w, s.Agents)
	return nil
}

// printReadinessVerdicts prints, per site a failover could go to, whether
// it would succeed now and the failed checks (drplane ready --to SITE
// shows all).
func printReadinessVerdicts(w io.Writer, rs []ReadinessJSON) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nFailover readiness")
	for _, r := range rs {
		if r.Ready {
			fmt.Fprintf(w, "  %s: ready\n", r.Site)
			continue
		}
		fmt.Fprintf(w, "  %s: not ready\n", r.Site)
		for _, c := range r.Checks {
			if !c.OK {
				fmt.Fprintf(w, "    - %s: %s\n", c.Name, c.Detail)
			}
		}
	}
}

// printDrills prints each plan's last drill and whether it is overdue.
func printDrills(w io.Writer, drills []PlanDrillJSON) error {
	if len(drills) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nDrills")
	t := newTable(w, "PLAN", "LAST DRILL", "RESULT", "INTERVAL", "OVERDUE")
	for _, d := range drills {
		last, result := "never", "-"
		if d.LastExecution != "" {
			last, result = d.LastExecution+" ("+localTime(d.LastAt)+")", d.LastState
		}
		overdue := "no"
		switch {
		case d.Interval == "":
			overdue = "- (no schedule)"
		case d.Overdue:
			overdue = "YES: " + d.OverdueReason
		}
		t.row(d.Plan, last, result, orDash(d.Interval), overdue)
	}
	return t.flush()
}

// printHostProblems prints one line per problem an agent reported, such
// as a data_dir it cannot write.
func printHostProblems(w io.Writer, agents []AgentJSON) {
	for _, a := range agents {
		for _, p := range a.Problems {
			fmt.Fprintf(w, "host %s: %s\n", a.HostID, p.Message)
		}
	}
}

// hostProblemKind is a problem kind as --json spells it:
// HOST_PROBLEM_KIND_DATA_DIR_UNWRITABLE is "data_dir_unwritable".
func hostProblemKind(k pb.HostProblemKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "HOST_PROBLEM_KIND_"))
}

// printAutomation prints whether an automatic failover would fire now and
// what a failover would lose.
func printAutomation(w io.Writer, a *AutomationJSON) {
	if a == nil {
		return
	}
	fmt.Fprintln(w, "\nAutomatic failover")
	state := "off (failover { automatic = true } turns it on)"
	switch {
	case a.Enabled && a.Blocked != "":
		state = "on, blocked: " + a.Blocked
	case a.Enabled:
		state = "on"
	}
	fmt.Fprintf(w, "  state:     %s\n", state)
	if a.Reason != "" {
		fmt.Fprintf(w, "  judgement: %s\n", a.Reason)
	}
	if a.ExposureTarget != "" {
		loss := "unknown"
		if a.ExposureSeconds != nil {
			loss = fmt.Sprintf("%.1fs", *a.ExposureSeconds)
		}
		fmt.Fprintf(w, "  RPO now:   a failover to %s would lose %s of writes (%s)\n", a.ExposureTarget, loss, a.ExposureDetail)
	}
}

func printServers(w io.Writer, servers []ServerJSON) error {
	t := newTable(w, "ID", "SITE", "ADDRESS", "RAFT ADDRESS", "STATE", "VOTER", "LAST INDEX")
	for _, s := range servers {
		t.row(s.ID, s.Site, s.Address, s.RaftAddress, s.State, yesNo(s.Voter), fmt.Sprint(s.LastIndex))
	}
	return t.flush()
}

func reachability(a AgentJSON) string {
	if a.Reachable == nil {
		return "-"
	}
	return yesNo(*a.Reachable)
}

func leaseState(a AgentJSON) string {
	switch {
	case a.Reachable == nil:
		return "-"
	case a.Fenced:
		return "fenced"
	case a.LeaseValid && !a.LeaseGranted:
		return "boot window"
	case a.LeaseValid:
		return "valid"
	}
	return "none"
}

// serviceRoles renders "postgres=primary,engine=primary" in config order.
func serviceRoles(a AgentJSON) string {
	parts := make([]string, len(a.Services))
	for i, name := range a.Services {
		parts[i] = name
		if role, ok := a.Roles[name]; ok {
			parts[i] += "=" + role
		}
	}
	return strings.Join(parts, ",")
}

// production says whether the active site runs whole, or what is down.
func production(degraded []ProductionProblemJSON) string {
	if len(degraded) == 0 {
		return "up (every declared service of the active site runs and is healthy)"
	}
	parts := make([]string, len(degraded))
	for i, p := range degraded {
		where := p.Service + " on " + p.HostID
		switch {
		case p.HostID == "":
			where = p.Service
		case p.Service == "":
			where = "host " + p.HostID
		}
		parts[i] = where + ": " + p.Problem
	}
	return "degraded: " + strings.Join(parts, "; ")
}

// orDash shows an empty value as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
