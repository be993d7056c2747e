package controlplane

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func (e *operatorEndpoint) startExecutionLocal(ctx context.Context, req *pb.StartExecutionRequest) (*pb.StartExecutionResponse, error) {
	s := e.srv
	if err := s.verifyLeader(ctx); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	w := writeRequest(ctx, req.GetWrite(), s.config.NodeID)
	// A new leader probes the agents once before the exposure shown and
	// recorded is judged.
	s.awaitObservations(ctx, req.GetTo())
	ex, err := s.newExecution(req, w.Actor, now)
	if err != nil {
		return nil, err
	}
	if ex.Kind == string(plan.KindRestore) {
		// Before anything stops: the target must be one the repository
		// can reach.
		if err := s.checkRestore(ctx, ex, now); err != nil {
			return nil, err
		}
	}
	if req.GetDryRun() {
		ex.State = structs.ExecPlanned
		return &pb.StartExecutionResponse{Meta: s.meta(false), Execution: s.executionToProto(ex)}, nil
	}
	res, err := s.raftApply(structs.StartExecutionRequestType, &structs.StartExecutionRequest{WriteRequest: w, Execution: *ex})
	if err != nil {
		return nil, err
	}
	if res.Duplicate {
		// A retried request: the execution it started is the one to
		// report, and its executor already runs.
		if running := s.fsm.runningExecutionIDs(); len(running) > 0 {
			ex.ID = running[0]
		}
	} else if lctx := s.leaderContext(); lctx != nil {
		s.startExecutor(lctx, ex.ID)
	}
	started, ok := s.fsm.execution(ex.ID)
	if !ok {
		return nil, fmt.Errorf("execution %s vanished after it started", ex.ID)
	}
	return &pb.StartExecutionResponse{Meta: s.metaAt(res.Index), Execution: s.executionToProto(&started)}, nil
}

// newExecution derives the plan a request asks for, as an execution that
// has not started.
func (s *Server) newExecution(req *pb.StartExecutionRequest, actor string, now time.Time) (*structs.Execution, error) {
	v := s.fsm.view()
	if !v.Initialized {
		return nil, fmt.Errorf("%w: the cluster has not initialized its sites yet", errInvalidArgument)
	}
	id := uuid.NewString()[:8]
	var p *plan.Plan
	var err error
	if req.GetCleanupOf() != "" {
		id = "cleanup-" + id
		p, err = s.cleanupPlan(req.GetCleanupOf())
	} else {
		p, err = s.derivePlan(v, req, id)
	}
	if err != nil {
		return nil, err
	}
	if req.GetCleanupOf() == "" {
		id = string(p.Kind) + "-" + id
	}
	ex := &structs.Execution{
		ID: id, Kind: string(p.Kind), PlanName: p.Name, From: p.From, To: p.To,
		Trigger: structs.TriggerManual, Actor: actor, Note: req.GetNote(), AllowDataLoss: req.GetAllowDataLoss(), CleanupOf: req.GetCleanupOf(),
		TriggeredAt: now, StartEpoch: v.Epoch, Plan: *p,
	}
	for _, st := range p.Steps {
		ex.Steps = append(ex.Steps, structs.ExecStep{ID: st.ID, State: structs.StepPending})
	}
	if p.Kind == plan.KindDrill && req.GetCleanupOf() == "" {
		// What the drill practises, for the programme's records (a
		// schedule names its plan instead).
		ex.Exercises = string(plan.KindFailover)
		if p.Name == string(plan.KindRestore) {
			ex.Exercises = string(plan.KindRestore)
		}
	}
	// The exposure at the trigger instant is the RPO of a failover, and
	// what the operator is shown before confirming.
	if p.Kind == plan.KindFailover && p.Finishes == "" {
		s.countOutage(ex, v, p.From, nil)
	}
	switch {
	case p.Kind == plan.KindRestart:
		zero := 0.0
		ex.RPOSeconds, ex.RPODetail = &zero, "a restart in place keeps every service's data where it is: it loses nothing a database or a state directory holds (what a crashed process held only in memory before the restart is not counted)"
	case p.Kind == plan.KindRestore:
		// Set by checkRestore, which reads the repository.
	case p.Kind == plan.KindDrill && p.Name == string(plan.KindRestore):
		ex.RPODetail = "a restore drill measures how long restoring the newest backup takes; the data a restore loses is its target's distance from its start, known only when one runs"
	case p.Finishes != "":
		ex.RPODetail = "the rest of " + p.Finishes + ", which activated " + p.To + ": any data loss happened then, and its RPO says it"
	case req.GetCleanupOf() == "":
		s.recordExposure(ex)
	}
	return ex, nil
}

// recordExposure sets an execution's RPO to the exposure of its target:
// an upper bound, or unknown with the reason (invariant 9).
func (s *Server) recordExposure(ex *structs.Execution) {
	exp := s.rpoExposure(ex.To, ex)
	ex.RPODetail, ex.RPOSeconds = exp.detail, nil
	if exp.known {
		sec := exp.seconds
		ex.RPOSeconds = &sec
	}
}

// derivePlan derives the plan req asks for (its kind, or the operator
// plan it names) from the registered agents.
func (s *Server) derivePlan(v stateView, req *pb.StartExecutionRequest, drillID string) (*plan.Plan, error) {
	kind, name, to := plan.Kind(req.GetKind()), req.GetPlan(), req.GetTo()
	topo := topology(v)
	if name == "" && kind == "" {
		return nil, fmt.Errorf("%w: name a plan kind or an operator-defined plan", errInvalidArgument)
	}
	var drillOf plan.Kind
	if kind == plan.KindDrill && name == string(plan.KindRestore) {
		// `drplane drill --plan restore`: the restore drill.
		drillOf, name = plan.KindRestore, ""
	}
	if name == "" {
		name = string(kind)
	}
	defKind, def, err := plan.Resolve(name, s.config.Plans)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalidArgument, err)
	}
	if kind == "" {
		kind = defKind
	}
	if defKind != kind {
		return nil, fmt.Errorf("%w: plan %q is a %s plan, not a %s plan", errInvalidArgument, name, defKind, kind)
	}
	opts := s.config.PlanOptions()
	opts.To, opts.DrillID, opts.Service, opts.DrillOf = to, drillID, req.GetService(), drillOf
	if opts.Service != "" && kind != plan.KindRestart && kind != plan.KindRestore {
		return nil, fmt.Errorf("%w: service %q: only a restart or a restore acts on one service; a %s moves every service", errInvalidArgument, opts.Service, kind)
	}
	if req.GetRestoreToTime() != nil || req.GetRestoreBackup() != "" {
		switch {
		case kind != plan.KindRestore:
			return nil, fmt.Errorf("%w: a restore target is only for a restore, not a %s", errInvalidArgument, kind)
		case req.GetRestoreToTime() != nil && req.GetRestoreBackup() != "":
			return nil, fmt.Errorf("%w: name a time or a backup to restore to, not both", errInvalidArgument)
		case req.GetRestoreToTime() != nil:
			opts.RestoreToTime = req.GetRestoreToTime().AsTime()
		default:
			opts.RestoreLabel = req.GetRestoreBackup()
		}
	}
	if to != "" && to == v.ActiveSite && (kind == plan.KindFailover || kind == plan.KindSwitchover) {
		// The same command again after it activated the target and
		// stopped: derive the rest of it.
		if first, ok := s.unfinished(v); ok {
			opts.From, opts.FinishOf, def = first.From, first.ID, nil
		}
	}
	p, err := plan.Derive(kind, topo, def, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalidArgument, err)
	}
	return p, nil
}

// countOutage sets where a failover's RTO counts from: the last sign of
// life of site, or of hosts of it when set (see outageEvidence).
func (s *Server) countOutage(ex *structs.Execution, v stateView, site string, hosts []string) {
	what := site
	if hosts != nil {
		what = strings.Join(hosts, ", ")
	}
	since, detail, ok := s.outageEvidence(v, site, ex.TriggeredAt, hosts)
	if !ok {
		ex.OutageSince = time.Time{}
		ex.RTODetail = fmt.Sprintf("unknown: no survivor saw %s alive (this leader got no answer from it and no standby heard from its primary), so when its outage began cannot be bounded", what)
		return
	}
	ex.OutageSince = since
	ex.RTODetail = fmt.Sprintf("from %s, the last sign of life of %s: %s", since.UTC().Format("15:04:05.000"), what, detail)
}

// unfinished is the execution that activated the active site in the
// current epoch, when it ended without succeeding: the target may not
// serve, and running the same kind of plan to it again finishes it.
func (s *Server) unfinished(v stateView) (structs.Execution, bool) {
	all := s.fsm.executions()
	for i := len(all) - 1; i >= 0; i-- {
		ex := &all[i]
		if ex.Plan.Finishes != "" && ex.State == structs.ExecSucceeded {
			return structs.Execution{}, false // finished already
		}
		if !activated(ex) {
			continue
		}
		ended := ex.State == structs.ExecFailed || ex.State == structs.ExecCancelled
		if ended && ex.To == v.ActiveSite && v.Epoch == ex.StartEpoch+1 {
			return *ex, true
		}
		return structs.Execution{}, false
	}
	return structs.Execution{}, false
}

// cleanupPlan is the teardown of an interrupted drill: its Always steps,
// with dependencies among them kept.
func (s *Server) cleanupPlan(drillID string) (*plan.Plan, error) {
	ex, ok := s.fsm.execution(drillID)
	if !ok {
		return nil, fmt.Errorf("%w: execution %q does not exist", errNotFound, drillID)
	}
	if ex.Kind != string(plan.KindDrill) {
		return nil, fmt.Errorf("%w: execution %s is a %s, not a drill", errInvalidArgument, drillID, ex.Kind)
	}
	p := ex.Plan
	p.Name = "drill-cleanup"
	p.Steps = nil
	keep := map[string]bool{}
	for _, st := range ex.Plan.Steps {
		if st.Always {
			keep[st.ID] = true
		}
	}
	for _, st := range ex.Plan.Steps {
		if !keep[st.ID] {
			continue
		}
		st.DependsOn = slices.DeleteFunc(slices.Clone(st.DependsOn), func(d string) bool { return !keep[d] })
		p.Steps = append(p.Steps, st)
	}
	if len(p.Steps) == 0 {
		return nil, fmt.Errorf("%w: drill %s has no teardown steps", errInvalidArgument, drillID)
	}
	return &p, nil
}

// topology is what plans are derived from.
func topology(v stateView) plan.Topology {
	t := plan.Topology{ActiveSite: v.ActiveSite}
	for _, site := range v.Sites {
		if site.Kind == structs.SiteKindData {
			t.DataSites = append(t.DataSites, site.Name)
		}
	}
	for _, a := range v.Agents {
		pa := plan.Agent{HostID: a.HostID, Site: a.Site, Address: a.Address, Syncs: a.Syncs, Snapshots: a.Snapshots, Hooks: a.Hooks}
		for _, svc := range a.Services {
			pa.Services = append(pa.Services, plan.Service{Name: svc.Name, Driver: svc.Driver, DependsOn: svc.DependsOn, Port: svc.Port, Promotable: svc.Promotable, Drillable: svc.Drillable, Backup: svc.Backup, StateSnapshots: svc.StateSnapshots})
		}
		t.Agents = append(t.Agents, pa)
	}
	return t
}

// executionToProto converts an execution, adding the leader's progress
// lines and the targets that apply.
func (s *Server) executionToProto(ex *structs.Execution) *pb.Execution {
	out := &pb.Execution{
		Id: ex.ID, Kind: ex.Kind, Plan: ex.PlanName, From: ex.From, To: ex.To, Trigger: structs.TriggerToProto(ex.Trigger), Actor: ex.Actor,
		AllowDataLoss: ex.AllowDataLoss, CleanupOf: ex.CleanupOf, StartEpoch: ex.StartEpoch, State: structs.ExecStateToProto(ex.State), Message: ex.Message,
		CancelRequested: ex.CancelRequested, RpoDetail: ex.RPODetail, Note: ex.Note,
		RtoTargetSeconds: ex.Plan.Objectives.RTO.Seconds(), RpoTargetSeconds: ex.Plan.Objectives.RPO.Seconds(), HasRpoTarget: ex.Plan.Objectives.HasRPO(),
		MaxDataLossSeconds: ex.Plan.MaxDataLoss.Seconds(), Warnings: ex.Plan.Warnings, RtoDetail: ex.RTODetail,
		TriggeredAt: timestamppb.New(ex.TriggeredAt), Schedule: ex.Schedule, Exercises: ex.Exercises,
	}
	if !ex.ScheduledFor.IsZero() {
		out.ScheduledFor = timestamppb.New(ex.ScheduledFor)
	}
	if !ex.StartedAt.IsZero() {
		out.StartedAt = timestamppb.New(ex.StartedAt)
	}
	if !ex.FinishedAt.IsZero() {
		out.FinishedAt = timestamppb.New(ex.FinishedAt)
	}
	if ex.RTOSeconds != nil {
		out.RtoSeconds, out.HasRto = *ex.RTOSeconds, true
	}
	if ex.RPOSeconds != nil {
		out.RpoSeconds, out.HasRpo = *ex.RPOSeconds, true
	}
	progress := s.progress.get(ex.ID)
	for i, st := range ex.Plan.Steps {
		es := ex.Steps[i]
		ps := &pb.ExecutionStep{
			Step: &pb.PlanStep{Id: st.ID, Phase: st.Phase, Action: structs.ActionToProto(st.Action), Host: st.Host, Site: st.Site, Target: st.Target,
				Args: st.Args, ArgsFrom: st.ArgsFrom, TimeoutMs: uint64(st.Timeout.Milliseconds()), Retries: int32(st.Retries),
				OnFailure: st.OnFailure, DependsOn: st.DependsOn, HealthGate: st.HealthGate, Always: st.Always, Rollback: st.Rollback, Description: st.Description},
			State: structs.StepStateToProto(es.State), Attempt: int32(es.Attempt), Message: es.Message, Outputs: es.Outputs, Replayed: es.Replayed, Verified: es.Verified, ApprovedBy: es.ApprovedBy,
		}
		if !es.StartedAt.IsZero() {
			ps.StartedAt = timestamppb.New(es.StartedAt)
		}
		if !es.EndedAt.IsZero() {
			ps.EndedAt = timestamppb.New(es.EndedAt)
		}
		if es.State == structs.StepRunning {
			ps.Progress = progress[st.ID]
		}
		out.Steps = append(out.Steps, ps)
	}
	return out
}
