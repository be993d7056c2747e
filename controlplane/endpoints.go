package controlplane

import (
	"context"

	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/wirecheck"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// setupGRPC creates the gRPC server with mutual TLS, role checks, and the
// bounds on every request's ids and strings (wirecheck), checked after the
// role so that a caller without one learns nothing from them.
func (s *Server) setupGRPC() {
	s.grpcServer = grpc.NewServer(
		grpc.Creds(s.tls.ServerCredentials(s.logger.Named("grpc"))),
		grpc.ChainUnaryInterceptor(authorize(s.logger.Named("grpc")), wirecheck.UnaryServerInterceptor(), s.refuseWhenRemoved),
		grpc.ChainStreamInterceptor(wirecheck.StreamServerInterceptor()),
	)
	pb.RegisterOperatorServer(s.grpcServer, &operatorEndpoint{srv: s})
	pb.RegisterAgentRegistryServer(s.grpcServer, &agentRegistryEndpoint{srv: s})
	pb.RegisterPeerServer(s.grpcServer, &peerEndpoint{srv: s})
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
		Syncs: a.GetSyncs(), Snapshots: a.GetSnapshots(), Hooks: a.GetHooks(), LeaseAnchors: a.GetLeaseAnchors()}
	for _, svc := range a.GetServices() {
		out.Services = append(out.Services, structs.Service{Name: svc.GetName(), Driver: svc.GetDriver(), DependsOn: svc.GetDependsOn(), Port: int(svc.GetPort()), Promotable: svc.GetPromotable(), Drillable: svc.GetDrillable(), Backup: svc.GetBackup(), StateSnapshots: svc.GetStateSnapshots()})
	}
	return out
}

func agentToProto(a structs.Agent) *pb.Agent {
	out := &pb.Agent{HostId: a.HostID, Site: a.Site, Address: a.Address, RegisteredAt: timestamppb.New(a.RegisteredAt),
		Syncs: a.Syncs, Snapshots: a.Snapshots, Hooks: a.Hooks, LeaseAnchors: a.LeaseAnchors}
	for _, svc := range a.Services {
		out.Services = append(out.Services, &pb.Service{Name: svc.Name, Driver: svc.Driver, DependsOn: svc.DependsOn, Port: int32(svc.Port), Promotable: svc.Promotable, Drillable: svc.Drillable, Backup: svc.Backup, StateSnapshots: svc.StateSnapshots})
	}
	return out
}
