package controlplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/wirecheck"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// operatorEndpoint serves the Operator gRPC service: the CLI's calls.
// Every method that needs the leader goes through withLeader; the *Local
// methods run on the leader only. The domain logic stays where it lives
// (executions.go, hoststep.go, detector.go, quorum_watch.go, recovery.go,
// members.go); the handlers here validate, forward and convert.
type operatorEndpoint struct {
	pb.UnimplementedOperatorServer
	srv *Server
}

// GetStatus answers locally when the caller accepts a stale answer and
// from the leader otherwise.
func (e *operatorEndpoint) GetStatus(ctx context.Context, req *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
	if req.GetRead().GetStale() {
		return e.status(ctx, true)
	}
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.GetStatus), func(ctx context.Context, _ *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
		if err := e.srv.verifyLeader(ctx); err != nil {
			return nil, err
		}
		return e.status(ctx, false)
	})
}

func (e *operatorEndpoint) status(ctx context.Context, stale bool) (*pb.GetStatusResponse, error) {
	members, err := e.srv.members(ctx, stale)
	if err != nil {
		return nil, toStatus(err)
	}
	v := e.srv.fsm.view()
	resp := &pb.GetStatusResponse{
		Meta:       e.srv.meta(stale),
		Epoch:      v.Epoch,
		ActiveSite: v.ActiveSite,
		Servers:    members,
	}
	_, leader := e.srv.raft.LeaderWithID()
	resp.LeaderId = string(leader)
	for _, site := range v.Sites {
		resp.Sites = append(resp.Sites, &pb.Site{Name: site.Name, Kind: site.Kind, Active: site.Name == v.ActiveSite})
	}
	for _, a := range v.Agents {
		pa := agentToProto(a)
		pa.Probe = e.srv.agentProbe(a.HostID)
		resp.Agents = append(resp.Agents, pa)
	}
	resp.Automation = e.srv.automationStatus(stale)
	resp.Drills = e.srv.planDrills(e.srv.fsm.scheduleView(), e.srv.calendar.Now())
	if !stale {
		resp.Degraded = e.srv.productionProblems(v)
		resp.Replication = e.srv.replicationStatus(v)
		for _, site := range v.Sites {
			if site.Kind == structs.SiteKindData && site.Name != v.ActiveSite {
				resp.Readiness = append(resp.Readiness, e.srv.readiness(site.Name, 0))
			}
		}
	}
	return resp, nil
}

// automationStatus reports the automation controls and, on the leader, the
// detector's latest verdict.
func (s *Server) automationStatus(stale bool) *pb.Automation {
	f := s.config.Failover
	a := s.fsm.automation()
	out := &pb.Automation{Enabled: f.Automatic, Paused: a.Paused, PausedBy: a.PausedBy,
		Blocked: a.Blocked(time.Now(), f.Cooldown), LastAutomaticId: a.LastAutomaticID}
	if stale {
		return out
	}
	if v := s.detector.verdict(); !v.At.IsZero() {
		out.SiteLost, out.WouldFire, out.Reason, out.JudgedAt = v.Lost, v.WouldFire, v.Reason, timestamppb.New(v.At)
	}
	if target, err := failoverTarget(s.fsm.view()); err == nil {
		exp := s.rpoExposure(target, nil)
		out.ExposureTarget, out.ExposureKnown, out.ExposureSeconds, out.ExposureDetail = target, exp.known, exp.seconds, exp.detail
	}
	return out
}

// ListMembers lists the Raft configuration with each member's state.
func (e *operatorEndpoint) ListMembers(ctx context.Context, req *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	local := func(ctx context.Context, _ *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
		stale := req.GetRead().GetStale()
		members, err := e.srv.members(ctx, stale)
		if err != nil {
			return nil, toStatus(err)
		}
		_, leader := e.srv.raft.LeaderWithID()
		return &pb.ListMembersResponse{Meta: e.srv.meta(stale), LeaderId: string(leader), Servers: members}, nil
	}
	if req.GetRead().GetStale() {
		return local(ctx, req)
	}
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.ListMembers), local)
}

// RemoveMember removes a server from the Raft configuration after the
// autopilot-style safety checks.
func (e *operatorEndpoint) RemoveMember(ctx context.Context, req *pb.RemoveMemberRequest) (*pb.RemoveMemberResponse, error) {
	if req.GetId() == "" {
		return nil, toStatus(fmt.Errorf("%w: server id is empty", errInvalidArgument))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.RemoveMember), e.removeMemberLocal)
}

func (e *operatorEndpoint) removeMemberLocal(ctx context.Context, req *pb.RemoveMemberRequest) (*pb.RemoveMemberResponse, error) {
	s := e.srv
	members, err := s.members(ctx, false)
	if err != nil {
		return nil, err
	}
	if err := checkRemovable(members, req.GetId()); err != nil {
		return nil, err
	}
	if req.GetId() == s.config.NodeID {
		// A leader cannot remove itself cleanly: hand leadership over and
		// let withLeader retry the request at the new leader.
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			return nil, fmt.Errorf("transfer leadership before removing %s: %w", req.GetId(), err)
		}
		return nil, raft.ErrNotLeader
	}
	if err := s.raft.RemoveServer(raft.ServerID(req.GetId()), 0, 0).Error(); err != nil {
		return nil, fmt.Errorf("remove server %s from raft configuration: %w", req.GetId(), err)
	}
	_, err = s.raftApply(structs.RemoveServerRequestType, &structs.RemoveServerRequest{
		WriteRequest: writeRequest(ctx, req.GetWrite(), s.config.NodeID),
		ID:           req.GetId(),
	})
	if err != nil && !isRejected(err) {
		return nil, err
	}
	s.logger.Info("removed server", "id", req.GetId())
	return &pb.RemoveMemberResponse{Meta: s.meta(false)}, nil
}

// SetActiveSite flips the active site with a compare-and-set on the epoch.
func (e *operatorEndpoint) SetActiveSite(ctx context.Context, req *pb.SetActiveSiteRequest) (*pb.SetActiveSiteResponse, error) {
	if req.GetSite() == "" {
		return nil, toStatus(fmt.Errorf("%w: site is empty", errInvalidArgument))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.SetActiveSite), func(ctx context.Context, req *pb.SetActiveSiteRequest) (*pb.SetActiveSiteResponse, error) {
		res, err := e.srv.raftApply(structs.SetActiveSiteRequestType, &structs.SetActiveSiteRequest{
			WriteRequest:  writeRequest(ctx, req.GetWrite(), e.srv.config.NodeID),
			Site:          req.GetSite(),
			ExpectedEpoch: req.GetExpectedEpoch(),
			Reason:        req.GetReason(),
		})
		if isRejected(err) && res != nil && res.Epoch != req.GetExpectedEpoch() {
			return nil, &epochMismatchError{expected: req.GetExpectedEpoch(), current: res.Epoch, err: err}
		}
		if err != nil {
			return nil, err
		}
		return &pb.SetActiveSiteResponse{Meta: e.srv.metaAt(res.Index), Epoch: res.Epoch, ActiveSite: res.ActiveSite}, nil
	})
}

// ListAudit returns the audit trail, newest last.
func (e *operatorEndpoint) ListAudit(ctx context.Context, req *pb.ListAuditRequest) (*pb.ListAuditResponse, error) {
	local := func(_ context.Context, req *pb.ListAuditRequest) (*pb.ListAuditResponse, error) {
		resp := &pb.ListAuditResponse{Meta: e.srv.meta(req.GetRead().GetStale())}
		for _, a := range e.srv.fsm.auditTrail(int(req.GetLimit())) {
			resp.Entries = append(resp.Entries, &pb.AuditEntry{
				Index: a.Index, Time: timestamppb.New(a.Time), Actor: a.Actor,
				Action: a.Action, Detail: a.Detail, RequestId: a.RequestID,
			})
		}
		return resp, nil
	}
	if req.GetRead().GetStale() {
		return local(ctx, req)
	}
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.ListAudit), local)
}

// StartExecution derives a plan and, unless dry_run, starts it.
func (e *operatorEndpoint) StartExecution(ctx context.Context, req *pb.StartExecutionRequest) (*pb.StartExecutionResponse, error) {
	kindOK := slices.Contains(plan.Kinds, plan.Kind(req.GetKind())) || (req.GetKind() == "" && req.GetPlan() != "")
	if req.GetCleanupOf() == "" && !kindOK {
		return nil, toStatus(fmt.Errorf("%w: kind %s; expected one of failover, switchover, failback, drill", errInvalidArgument, wirecheck.Quote(req.GetKind())))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.StartExecution), e.startExecutionLocal)
}

// GetExecution returns one execution; answered by the leader, it carries
// the running steps' progress.
func (e *operatorEndpoint) GetExecution(ctx context.Context, req *pb.GetExecutionRequest) (*pb.GetExecutionResponse, error) {
	local := func(_ context.Context, req *pb.GetExecutionRequest) (*pb.GetExecutionResponse, error) {
		ex, ok := e.srv.fsm.execution(req.GetId())
		if !ok {
			return nil, toStatus(fmt.Errorf("%w: execution %s does not exist", errNotFound, wirecheck.Quote(req.GetId())))
		}
		return &pb.GetExecutionResponse{Meta: e.srv.meta(req.GetRead().GetStale()), Execution: e.srv.executionToProto(&ex)}, nil
	}
	if req.GetRead().GetStale() {
		return local(ctx, req)
	}
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.GetExecution), local)
}

// ListExecutions returns every execution, oldest first.
func (e *operatorEndpoint) ListExecutions(ctx context.Context, req *pb.ListExecutionsRequest) (*pb.ListExecutionsResponse, error) {
	local := func(_ context.Context, req *pb.ListExecutionsRequest) (*pb.ListExecutionsResponse, error) {
		resp := &pb.ListExecutionsResponse{Meta: e.srv.meta(req.GetRead().GetStale())}
		for _, ex := range e.srv.fsm.executions() {
			resp.Executions = append(resp.Executions, e.srv.executionToProto(&ex))
		}
		return resp, nil
	}
	if req.GetRead().GetStale() {
		return local(ctx, req)
	}
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.ListExecutions), local)
}

// ListPlans lists the plans of the leader's configuration with their
// objectives; a stale read answers from this server's.
func (e *operatorEndpoint) ListPlans(ctx context.Context, req *pb.ListPlansRequest) (*pb.ListPlansResponse, error) {
	local := func(_ context.Context, req *pb.ListPlansRequest) (*pb.ListPlansResponse, error) {
		resp := &pb.ListPlansResponse{Meta: e.srv.meta(req.GetRead().GetStale())}
		for _, sc := range plan.Scenarios(e.srv.config.Objectives, e.srv.config.Plans) {
			resp.Plans = append(resp.Plans, &pb.PlanScenario{Name: sc.Name, Kind: string(sc.Kind),
				RtoTargetSeconds: sc.Objectives.RTO.Seconds(), RpoTargetSeconds: sc.Objectives.RPO.Seconds(), HasRpoTarget: sc.Objectives.HasRPO()})
		}
		return resp, nil
	}
	if req.GetRead().GetStale() {
		return local(ctx, req)
	}
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.ListPlans), local)
}

// ApproveExecution ends the execution's waiting approval.
func (e *operatorEndpoint) ApproveExecution(ctx context.Context, req *pb.ApproveExecutionRequest) (*pb.ApproveExecutionResponse, error) {
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.ApproveExecution), func(ctx context.Context, req *pb.ApproveExecutionRequest) (*pb.ApproveExecutionResponse, error) {
		res, err := e.srv.raftApply(structs.ApproveStepRequestType, &structs.ApproveStepRequest{
			WriteRequest: writeRequest(ctx, req.GetWrite(), e.srv.config.NodeID), ExecutionID: req.GetId(), StepID: req.GetStepId()})
		if err != nil {
			return nil, err
		}
		return &pb.ApproveExecutionResponse{Meta: e.srv.metaAt(res.Index)}, nil
	})
}

// CancelExecution stops scheduling the execution's new steps.
func (e *operatorEndpoint) CancelExecution(ctx context.Context, req *pb.CancelExecutionRequest) (*pb.CancelExecutionResponse, error) {
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.CancelExecution), func(ctx context.Context, req *pb.CancelExecutionRequest) (*pb.CancelExecutionResponse, error) {
		res, err := e.srv.raftApply(structs.CancelExecutionRequestType, &structs.CancelExecutionRequest{
			WriteRequest: writeRequest(ctx, req.GetWrite(), e.srv.config.NodeID), ExecutionID: req.GetId()})
		if err != nil {
			return nil, err
		}
		return &pb.CancelExecutionResponse{Meta: e.srv.metaAt(res.Index)}, nil
	})
}

// SetAutomation pauses or resumes automatic action, or acknowledges the
// last automatic failover.
func (e *operatorEndpoint) SetAutomation(ctx context.Context, req *pb.SetAutomationRequest) (*pb.SetAutomationResponse, error) {
	switch req.GetAction() {
	case structs.AutomationPause, structs.AutomationResume, structs.AutomationAck:
	default:
		return nil, toStatus(fmt.Errorf("%w: action %s; expected pause, resume or ack", errInvalidArgument, wirecheck.Quote(req.GetAction())))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.SetAutomation), func(ctx context.Context, req *pb.SetAutomationRequest) (*pb.SetAutomationResponse, error) {
		res, err := e.srv.raftApply(structs.AutomationRequestType, &structs.AutomationRequest{
			WriteRequest: writeRequest(ctx, req.GetWrite(), e.srv.config.NodeID), Action: req.GetAction(), Reason: req.GetReason()})
		if err != nil {
			return nil, err
		}
		return &pb.SetAutomationResponse{Meta: e.srv.metaAt(res.Index)}, nil
	})
}

// RecoverQuorum is the operator's forced quorum-loss failover.
func (e *operatorEndpoint) RecoverQuorum(ctx context.Context, req *pb.RecoverQuorumRequest) (*pb.RecoverQuorumResponse, error) {
	s := e.srv
	if !req.GetConfirmPrimaryDown() {
		return nil, toStatus(fmt.Errorf("%w: a forced failover needs the operator's confirmation that the active site is down (--confirm-primary-down)", errInvalidArgument))
	}
	st := s.fsm.view()
	why, err := s.checkQuorumLoss(ctx, st, req)
	var deferred *deferError
	if errors.As(err, &deferred) && deferred.serverID != s.config.NodeID {
		// Hand the request to the server that acts (the longest log).
		if conn, cerr := s.conns.get(deferred.address); cerr == nil {
			return pb.NewOperatorClient(conn).RecoverQuorum(forwardContext(ctx, s), req)
		}
	}
	if err != nil {
		return nil, toStatus(err)
	}
	p := s.newRecoveryPlan(st, time.Now(), false, req.GetAllowDataLoss(), actorFromContext(ctx, s.config.NodeID),
		"operator confirmed site "+st.ActiveSite+" down")
	p.Note = req.GetNote()
	s.setQuorumNote("quorum lost; " + why + "; recovering: " + p.Reason)
	if err := s.prepareRecovery(p); err != nil {
		return nil, toStatus(err)
	}
	return &pb.RecoverQuorumResponse{Id: p.ID, Voters: []string{s.config.NodeID},
		Message: fmt.Sprintf("server %s recovers the cluster as its only voter and, as leader, fails over from %s to %s; the other servers of %s rejoin it", s.config.NodeID, p.FromSite, p.ToSite, p.ToSite)}, nil
}

// operatorActions are the agent actions an operator may run directly;
// everything else runs only as a step of a plan.
var operatorActions = map[pb.StepAction]bool{pb.StepAction_STEP_ACTION_SNAPSHOT: true, pb.StepAction_STEP_ACTION_RESTORE: true,
	pb.StepAction_STEP_ACTION_BACKUP: true, pb.StepAction_STEP_ACTION_VERIFY_BACKUP: true}

// RunHostStep runs one operator step on a registered host, through the
// leader, and records it in the audit trail.
func (e *operatorEndpoint) RunHostStep(ctx context.Context, req *pb.RunHostStepRequest) (*pb.RunHostStepResponse, error) {
	if !operatorActions[req.GetAction()] {
		return nil, toStatus(fmt.Errorf("%w: action %s cannot be run directly; operators may run snapshot, restore, backup and verify-backup", errInvalidArgument, req.GetAction()))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.RunHostStep), e.runHostStepLocal)
}

// ListHostBackups asks a registered host for its backups: the one named,
// or the one whose service archives into the block's repository.
func (e *operatorEndpoint) ListHostBackups(ctx context.Context, req *pb.ListHostBackupsRequest) (*pb.ListHostBackupsResponse, error) {
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.ListHostBackups), func(ctx context.Context, req *pb.ListHostBackupsRequest) (*pb.ListHostBackupsResponse, error) {
		hostID := req.GetHostId()
		if hostID == "" {
			var err error
			if hostID, err = e.srv.backupHost(req.GetName()); err != nil {
				return nil, err
			}
		}
		client, err := e.srv.hostAgentClient(hostID)
		if err != nil {
			return nil, err
		}
		resp, err := client.ListBackups(ctx, &pb.ListBackupsRequest{Name: req.GetName()})
		if err != nil {
			return nil, fmt.Errorf("list backups on %s: %w", hostID, err)
		}
		return &pb.ListHostBackupsResponse{Meta: e.srv.meta(false), HostId: hostID, Sets: resp.GetSets()}, nil
	})
}

// backupHost is the host to ask about backup block name (any block when
// empty): the one whose service archives, at the active site first, else
// any that reports the block.
func (s *Server) backupHost(name string) (string, error) {
	v := s.fsm.view()
	var archiving, declaring []structs.Agent
	for _, a := range v.Agents {
		r, ok := s.probes.get(a.HostID)
		if !ok {
			continue
		}
		for _, b := range r.lastResp.GetBackups() {
			if name != "" && b.GetName() != name {
				continue
			}
			declaring = append(declaring, a)
			if b.GetArchiving() {
				archiving = append(archiving, a)
			}
		}
	}
	for _, list := range [][]structs.Agent{archiving, declaring} {
		slices.SortStableFunc(list, func(a, b structs.Agent) int {
			return cmp.Compare(boolRank(b.Site == v.ActiveSite), boolRank(a.Site == v.ActiveSite))
		})
		if len(list) > 0 {
			return list[0].HostID, nil
		}
	}
	what := "any backup block"
	if name != "" {
		what = fmt.Sprintf("backup block %q", name)
	}
	return "", fmt.Errorf("%w: no registered host reports %s; declare it in the agents' config (backup \"name\" { ... })", errNotFound, what)
}

// boolRank orders true before false in a descending compare.
func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ListHostSnapshots asks a registered host for its snapshots.
func (e *operatorEndpoint) ListHostSnapshots(ctx context.Context, req *pb.ListHostSnapshotsRequest) (*pb.ListHostSnapshotsResponse, error) {
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.ListHostSnapshots), func(ctx context.Context, req *pb.ListHostSnapshotsRequest) (*pb.ListHostSnapshotsResponse, error) {
		client, err := e.srv.hostAgentClient(req.GetHostId())
		if err != nil {
			return nil, err
		}
		resp, err := client.ListSnapshots(ctx, &pb.ListSnapshotsRequest{Name: req.GetName()})
		if err != nil {
			return nil, fmt.Errorf("list snapshots on %s: %w", req.GetHostId(), err)
		}
		return &pb.ListHostSnapshotsResponse{Meta: e.srv.meta(false), Snapshots: resp.GetSnapshots()}, nil
	})
}
