package controlplane

import (
	"context"
	"fmt"
	"net"

	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/drplane/drplane/internal/wirecheck"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// agentRegistryEndpoint serves the AgentRegistry gRPC service: host
// agents registering themselves. Writes go to the leader through
// withLeader.
type agentRegistryEndpoint struct {
	pb.UnimplementedAgentRegistryServer
	srv *Server
}

// RegisterAgent records a host agent and its declared services.
func (e *agentRegistryEndpoint) RegisterAgent(ctx context.Context, req *pb.RegisterAgentRequest) (*pb.RegisterAgentResponse, error) {
	if err := validateAgent(ctx, req.GetAgent()); err != nil {
		return nil, toStatus(err)
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewAgentRegistryClient, pb.AgentRegistryClient.RegisterAgent), func(ctx context.Context, req *pb.RegisterAgentRequest) (*pb.RegisterAgentResponse, error) {
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
		return fmt.Errorf("%w: agent %s: address %s is not host:port", errInvalidArgument, a.GetHostId(), wirecheck.Quote(a.GetAddress()))
	}
	if id, err := callerIdentity(ctx); err == nil && id.Role == tlsutil.RoleAgent && id.Name != a.GetHostId() {
		return fmt.Errorf("%w: certificate %s may not register host %s", errPermissionDenied, id.Name, a.GetHostId())
	}
	return nil
}

// DeregisterAgent removes a host agent.
func (e *agentRegistryEndpoint) DeregisterAgent(ctx context.Context, req *pb.DeregisterAgentRequest) (*pb.DeregisterAgentResponse, error) {
	if req.GetHostId() == "" {
		return nil, toStatus(fmt.Errorf("%w: host_id is empty", errInvalidArgument))
	}
	if id, err := callerIdentity(ctx); err == nil && id.Role == tlsutil.RoleAgent && id.Name != req.GetHostId() {
		return nil, toStatus(fmt.Errorf("%w: certificate %s may not deregister host %s", errPermissionDenied, id.Name, req.GetHostId()))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewAgentRegistryClient, pb.AgentRegistryClient.DeregisterAgent), func(ctx context.Context, req *pb.DeregisterAgentRequest) (*pb.DeregisterAgentResponse, error) {
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
