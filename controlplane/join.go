package controlplane

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// joinRPCTimeout bounds one discovery or join call to a peer.
const joinRPCTimeout = 2 * time.Second

// joinLoop makes this server a registered member of the cluster. A server
// without Raft state bootstraps a new cluster once bootstrap_expect servers
// have found each other through retry_join (as Consul's bootstrap_expect),
// or joins the cluster that one of them already belongs to. Every server,
// also one restarted with its state, then records its addresses with the
// leader, so a changed address is picked up.
func (s *Server) joinLoop(ctx context.Context) {
	requestID := uuid.NewString()
	for {
		err := s.tryJoin(ctx, requestID)
		if err == nil {
			s.logger.Info("joined cluster")
			return
		}
		s.logger.Debug("not joined yet", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.config.RetryInterval):
		}
	}
}

// tryJoin makes one attempt; nil means this server is a member and its
// record is current.
func (s *Server) tryJoin(ctx context.Context, requestID string) error {
	if s.isBootstrapped() {
		return s.registerSelf(ctx, requestID)
	}
	peers := s.discoverPeers(ctx)
	for _, p := range peers {
		if p.GetBootstrapped() {
			return s.joinVia(ctx, p.GetAddress(), requestID)
		}
	}
	if s.config.BootstrapExpect == 0 {
		return fmt.Errorf("no server of an existing cluster answered at %s", strings.Join(s.config.RetryJoin, ", "))
	}
	if len(peers)+1 < s.config.BootstrapExpect {
		return fmt.Errorf("found %d of %d servers to bootstrap with", len(peers)+1, s.config.BootstrapExpect)
	}
	return s.bootstrap(peers)
}

// isBootstrapped reports whether this server's Raft configuration has
// members, which is true once it bootstrapped or a leader replicated to it.
func (s *Server) isBootstrapped() bool {
	f := s.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// discoverPeers asks every retry_join address who is there.
func (s *Server) discoverPeers(ctx context.Context) []*pb.NodeInfoResponse {
	var peers []*pb.NodeInfoResponse
	for _, addr := range s.config.RetryJoin {
		if addr == s.grpcAddr {
			continue
		}
		info, err := s.nodeInfo(ctx, addr, joinRPCTimeout)
		if err != nil {
			s.logger.Debug("peer not reachable", "address", addr, "error", err)
			continue
		}
		if info.GetId() == s.config.NodeID {
			continue
		}
		peers = append(peers, info)
	}
	return peers
}

// bootstrap forms the initial configuration from this server and its
// peers. Every server that found the same peers bootstraps the same
// configuration, which Raft allows.
func (s *Server) bootstrap(peers []*pb.NodeInfoResponse) error {
	servers := []raft.Server{{ID: raft.ServerID(s.config.NodeID), Address: raft.ServerAddress(s.raftAddr), Suffrage: raft.Voter}}
	for _, p := range peers {
		servers = append(servers, raft.Server{ID: raft.ServerID(p.GetId()), Address: raft.ServerAddress(p.GetRaftAddress()), Suffrage: raft.Voter})
	}
	slices.SortFunc(servers, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
	s.logger.Info("bootstrapping cluster", "servers", len(servers))
	if err := s.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && err != raft.ErrCantBootstrap {
		return fmt.Errorf("bootstrap cluster: %w", err)
	}
	return fmt.Errorf("bootstrapped; registering next")
}

// registerSelf records this server's addresses through the leader.
func (s *Server) registerSelf(ctx context.Context, requestID string) error {
	ctx, cancel := context.WithTimeout(ctx, joinRPCTimeout*2)
	defer cancel()
	_, err := (&peerEndpoint{srv: s}).JoinCluster(ctx, s.joinRequest(requestID))
	return err
}

// joinVia asks an existing cluster, through the server at addr, to add
// this server as a voter.
func (s *Server) joinVia(ctx context.Context, addr, requestID string) error {
	ctx, cancel := context.WithTimeout(ctx, joinRPCTimeout*2)
	defer cancel()
	conn, err := s.conns.get(addr)
	if err != nil {
		return err
	}
	if _, err := pb.NewPeerClient(conn).JoinCluster(ctx, s.joinRequest(requestID)); err != nil {
		return fmt.Errorf("join cluster via %s: %w", addr, err)
	}
	return nil
}

func (s *Server) joinRequest(requestID string) *pb.JoinClusterRequest {
	return &pb.JoinClusterRequest{
		Write:       &pb.WriteOptions{RequestId: requestID},
		Id:          s.config.NodeID,
		Site:        s.config.Site,
		Address:     s.grpcAddr,
		RaftAddress: s.raftAddr,
	}
}

// nodeInfo calls NodeInfo on the server at addr.
func (s *Server) nodeInfo(ctx context.Context, addr string, timeout time.Duration) (*pb.NodeInfoResponse, error) {
	conn, err := s.conns.get(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return pb.NewPeerClient(conn).NodeInfo(ctx, &pb.NodeInfoRequest{})
}
