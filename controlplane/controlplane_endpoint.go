package controlplane

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// controlPlaneEndpoint serves the ControlPlane gRPC service. Every method
// that needs the leader goes through withLeader; the *Local methods run on
// the leader only.
type controlPlaneEndpoint struct {
	pb.UnimplementedControlPlaneServer
	srv *Server
}

func (s *Server) endpoint() *controlPlaneEndpoint { return &controlPlaneEndpoint{srv: s} }

// setupGRPC creates the gRPC server with mutual TLS and role checks.
func (s *Server) setupGRPC() {
	s.grpcServer = grpc.NewServer(
		grpc.Creds(s.tls.ServerCredentials(s.logger.Named("grpc"))),
		grpc.ChainUnaryInterceptor(authorize(s.logger.Named("grpc")), s.refuseWhenRemoved),
	)
	pb.RegisterControlPlaneServer(s.grpcServer, s.endpoint())
}

// GetStatus answers locally when the caller accepts a stale answer and
// from the leader otherwise.
func (e *controlPlaneEndpoint) GetStatus(ctx context.Context, req *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
	if req.GetRead().GetStale() {
		return e.status(ctx, true)
	}
	return withLeader(ctx, e.srv, req, pb.ControlPlaneClient.GetStatus, func(ctx context.Context, _ *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
		if err := e.srv.raft.VerifyLeader().Error(); err != nil {
			return nil, err
		}
		return e.status(ctx, false)
	})
}

func (e *controlPlaneEndpoint) status(ctx context.Context, stale bool) (*pb.GetStatusResponse, error) {
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
		exp := s.rpoExposure(target, time.Now())
		out.ExposureTarget, out.ExposureKnown, out.ExposureSeconds, out.ExposureDetail = target, exp.known, exp.seconds, exp.detail
	}
	return out
}

// ListMembers lists the Raft configuration with each member's state.
func (e *controlPlaneEndpoint) ListMembers(ctx context.Context, req *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
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
	return withLeader(ctx, e.srv, req, pb.ControlPlaneClient.ListMembers, local)
}

// RemoveMember removes a server from the Raft configuration after the
// autopilot-style safety checks.
func (e *controlPlaneEndpoint) RemoveMember(ctx context.Context, req *pb.RemoveMemberRequest) (*pb.RemoveMemberResponse, error) {
	if req.GetId() == "" {
		return nil, toStatus(fmt.Errorf("%w: server id is empty", errInvalidArgument))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, pb.ControlPlaneClient.RemoveMember, e.removeMemberLocal)
}

func (e *controlPlaneEndpoint) removeMemberLocal(ctx context.Context, req *pb.RemoveMemberRequest) (*pb.RemoveMemberResponse, error) {
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

// RegisterAgent records a host agent and its declared services.
func (e *controlPlaneEndpoint) RegisterAgent(ctx context.Context, req *pb.RegisterAgentRequest) (*pb.RegisterAgentResponse, error) {
	if err := validateAgent(ctx, req.GetAgent()); err != nil {
		return nil, toStatus(err)
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, pb.ControlPlaneClient.RegisterAgent, func(ctx context.Context, req *pb.RegisterAgentRequest) (*pb.RegisterAgentResponse, error) {
		res, err := e.srv.raftApply(structs.RegisterAgentRequestType, &structs.RegisterAgentRequest{
			WriteRequest: writeRequest(ctx, req.GetWrite(), e.srv.config.NodeID),
			Agent:        agentFromProto(req.GetAgent()),
		})
		if err != nil {
			return nil, err
		}
		return &pb.RegisterAgentResponse{Meta: e.srv.metaAt(res.Index), Epoch: res.Epoch, ActiveSite: res.ActiveSite}, nil
	})
}

// validateAgent checks a registration before it reaches the leader. An
// agent's certificate name must be its host id, so one host cannot
// register as another.
func validateAgent(ctx context.Context, a *pb.Agent) error {
	switch {
	case a == nil:
		return fmt.Errorf("%w: agent is missing", errInvalidArgument)
	case a.GetHostId() == "":
		return fmt.Errorf("%w: agent host_id is empty", errInvalidArgument)
	case a.GetSite() == "":
		return fmt.Errorf("%w: agent %s: site is empty", errInvalidArgument, a.GetHostId())
	}
	if _, _, err := net.SplitHostPort(a.GetAddress()); err != nil {
		return fmt.Errorf("%w: agent %s: address %q is not host:port", errInvalidArgument, a.GetHostId(), a.GetAddress())
	}
	if id, err := tlsutil.IdentityFromContext(ctx); err == nil && id.Role == tlsutil.RoleAgent && id.Name != a.GetHostId() {
		return fmt.Errorf("%w: certificate %s may not register host %s", errPermissionDenied, id.Name, a.GetHostId())
	}
	return nil
}

// DeregisterAgent removes a host agent.
func (e *controlPlaneEndpoint) DeregisterAgent(ctx context.Context, req *pb.DeregisterAgentRequest) (*pb.DeregisterAgentResponse, error) {
	if req.GetHostId() == "" {
		return nil, toStatus(fmt.Errorf("%w: host_id is empty", errInvalidArgument))
	}
	if id, err := tlsutil.IdentityFromContext(ctx); err == nil && id.Role == tlsutil.RoleAgent && id.Name != req.GetHostId() {
		return nil, toStatus(fmt.Errorf("%w: certificate %s may not deregister host %s", errPermissionDenied, id.Name, req.GetHostId()))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, pb.ControlPlaneClient.DeregisterAgent, func(ctx context.Context, req *pb.DeregisterAgentRequest) (*pb.DeregisterAgentResponse, error) {
		res, err := e.srv.raftApply(structs.DeregisterAgentRequestType, &structs.DeregisterAgentRequest{
			WriteRequest: writeRequest(ctx, req.GetWrite(), e.srv.config.NodeID),
			HostID:       req.GetHostId(),
		})
		if err != nil {
			return nil, err
		}
		return &pb.DeregisterAgentResponse{Meta: e.srv.metaAt(res.Index)}, nil
	})
}

// SetActiveSite flips the active site with a compare-and-set on the epoch.
func (e *controlPlaneEndpoint) SetActiveSite(ctx context.Context, req *pb.SetActiveSiteRequest) (*pb.SetActiveSiteResponse, error) {
	if req.GetSite() == "" {
		return nil, toStatus(fmt.Errorf("%w: site is empty", errInvalidArgument))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, pb.ControlPlaneClient.SetActiveSite, func(ctx context.Context, req *pb.SetActiveSiteRequest) (*pb.SetActiveSiteResponse, error) {
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
func (e *controlPlaneEndpoint) ListAudit(ctx context.Context, req *pb.ListAuditRequest) (*pb.ListAuditResponse, error) {
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
	return withLeader(ctx, e.srv, req, pb.ControlPlaneClient.ListAudit, local)
}

// NodeInfo describes this server; it is never forwarded.
func (e *controlPlaneEndpoint) NodeInfo(context.Context, *pb.NodeInfoRequest) (*pb.NodeInfoResponse, error) {
	return e.srv.localNodeInfo(), nil
}

// JoinCluster adds the calling server as a voter and records its
// addresses.
func (e *controlPlaneEndpoint) JoinCluster(ctx context.Context, req *pb.JoinClusterRequest) (*pb.JoinClusterResponse, error) {
	if req.GetId() == "" || req.GetRaftAddress() == "" || req.GetAddress() == "" {
		return nil, toStatus(fmt.Errorf("%w: join needs id, address and raft_address", errInvalidArgument))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, pb.ControlPlaneClient.JoinCluster, e.joinClusterLocal)
}

func (e *controlPlaneEndpoint) joinClusterLocal(ctx context.Context, req *pb.JoinClusterRequest) (*pb.JoinClusterResponse, error) {
	s := e.srv
	if !s.hasVoter(req.GetId(), req.GetRaftAddress()) {
		s.logger.Info("adding voter", "id", req.GetId(), "raft_addr", req.GetRaftAddress())
		f := s.raft.AddVoter(raft.ServerID(req.GetId()), raft.ServerAddress(req.GetRaftAddress()), 0, 0)
		if err := f.Error(); err != nil {
			return nil, fmt.Errorf("add voter %s: %w", req.GetId(), err)
		}
	}
	rec := structs.Server{ID: req.GetId(), Site: req.GetSite(), Address: req.GetAddress(), RaftAddress: req.GetRaftAddress()}
	if cur, ok := s.fsm.view().Servers[rec.ID]; ok && cur == rec {
		return &pb.JoinClusterResponse{Meta: s.meta(false)}, nil
	}
	res, err := s.raftApply(structs.UpsertServerRequestType, &structs.UpsertServerRequest{
		WriteRequest: writeRequest(ctx, req.GetWrite(), s.config.NodeID),
		Server:       rec,
	})
	if err != nil {
		return nil, err
	}
	return &pb.JoinClusterResponse{Meta: s.metaAt(res.Index)}, nil
}

// hasVoter reports whether id is a voter at raftAddr already.
func (s *Server) hasVoter(id, raftAddr string) bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == id {
			return string(srv.Address) == raftAddr && srv.Suffrage == raft.Voter
		}
	}
	return false
}

func (s *Server) meta(stale bool) *pb.ResponseMeta {
	_, leader := s.raft.LeaderWithID()
	return &pb.ResponseMeta{ServedBy: s.config.NodeID, Stale: stale, Index: s.raft.AppliedIndex(), KnownLeader: leader != ""}
}

func (s *Server) metaAt(index uint64) *pb.ResponseMeta {
	m := s.meta(false)
	m.Index = index
	return m
}

// ensureRequestID gives a write without a client request id one, before
// any forwarding, so that retries between servers share it.
func ensureRequestID(w *pb.WriteOptions) *pb.WriteOptions {
	if w.GetRequestId() != "" {
		return w
	}
	return &pb.WriteOptions{RequestId: uuid.NewString()}
}

func writeRequest(ctx context.Context, w *pb.WriteOptions, self string) structs.WriteRequest {
	return structs.WriteRequest{RequestID: w.GetRequestId(), Actor: actorFromContext(ctx, self)}
}

func agentFromProto(a *pb.Agent) structs.Agent {
	out := structs.Agent{HostID: a.GetHostId(), Site: a.GetSite(), Address: a.GetAddress(),
		Syncs: a.GetSyncs(), Snapshots: a.GetSnapshots(), Hooks: a.GetHooks()}
	for _, svc := range a.GetServices() {
		out.Services = append(out.Services, structs.Service{Name: svc.GetName(), Driver: svc.GetDriver(), DependsOn: svc.GetDependsOn(), Port: int(svc.GetPort()), Promotable: svc.GetPromotable(), Drillable: svc.GetDrillable()})
	}
	return out
}

func agentToProto(a structs.Agent) *pb.Agent {
	out := &pb.Agent{HostId: a.HostID, Site: a.Site, Address: a.Address, RegisteredAt: timestamppb.New(a.RegisteredAt),
		Syncs: a.Syncs, Snapshots: a.Snapshots, Hooks: a.Hooks}
	for _, svc := range a.Services {
		out.Services = append(out.Services, &pb.Service{Name: svc.Name, Driver: svc.Driver, DependsOn: svc.DependsOn, Port: int32(svc.Port), Promotable: svc.Promotable, Drillable: svc.Drillable})
	}
	return out
}
