package controlplane

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/drplane/drplane/internal/fsutil"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/raft"
)

// peerEndpoint serves the Peer gRPC service: the calls servers make to
// each other (joining, vantage-point checks, quorum-loss recovery).
type peerEndpoint struct {
	pb.UnimplementedPeerServer
	srv *Server
}

// NodeInfo describes this server; it is never forwarded.
func (e *peerEndpoint) NodeInfo(context.Context, *pb.NodeInfoRequest) (*pb.NodeInfoResponse, error) {
	return e.srv.localNodeInfo(), nil
}

// JoinCluster adds the calling server as a voter and records its
// addresses.
func (e *peerEndpoint) JoinCluster(ctx context.Context, req *pb.JoinClusterRequest) (*pb.JoinClusterResponse, error) {
	if req.GetId() == "" || req.GetRaftAddress() == "" || req.GetAddress() == "" {
		return nil, toStatus(fmt.Errorf("%w: join needs id, address and raft_address", errInvalidArgument))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewPeerClient, pb.PeerClient.JoinCluster), e.joinClusterLocal)
}

func (e *peerEndpoint) joinClusterLocal(ctx context.Context, req *pb.JoinClusterRequest) (*pb.JoinClusterResponse, error) {
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

// ObserveSite checks which servers and agents of a site answer this
// server.
func (e *peerEndpoint) ObserveSite(ctx context.Context, req *pb.ObserveSiteRequest) (*pb.ObserveSiteResponse, error) {
	timeout := time.Duration(req.GetTimeoutMs()) * time.Millisecond
	if timeout <= 0 || timeout > 30*time.Second {
		timeout = e.srv.config.Failover.ProbeTimeout
	}
	st := e.srv.fsm.view()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	servers, agents := e.srv.observeSite(ctx, st, req.GetSite())
	resp := &pb.ObserveSiteResponse{NodeId: e.srv.config.NodeID, ReachableServers: servers, ReachableAgents: agents}
	for _, srv := range st.Servers {
		if srv.Site == req.GetSite() {
			resp.Servers++
		}
	}
	for _, a := range st.Agents {
		if a.Site == req.GetSite() {
			resp.Agents++
		}
	}
	return resp, nil
}

// NotifyRemoved is a leader telling this server it is not a voter.
func (e *peerEndpoint) NotifyRemoved(ctx context.Context, req *pb.NotifyRemovedRequest) (*pb.NotifyRemovedResponse, error) {
	s := e.srv
	if reason := s.removedReason(); reason != "" {
		return &pb.NotifyRemovedResponse{Accepted: true, Reason: "already removed"}, nil
	}
	if !s.isBootstrapped() {
		// Fresh (as after a wipe): it joins through retry_join by itself.
		return &pb.NotifyRemovedResponse{Reason: "refused: this server has no Raft state and joins by itself"}, nil
	}
	// Only a leader of a newer epoch may remove: a stale leader must not
	// stop a server of the cluster that replaced it.
	st := s.fsm.view()
	if req.GetEpoch() <= st.Epoch {
		return &pb.NotifyRemovedResponse{Reason: fmt.Sprintf("refused: leader %s is at epoch %d, this server at %d", req.GetLeaderId(), req.GetEpoch(), st.Epoch)}, nil
	}
	if slices.Contains(req.GetVoters(), s.config.NodeID) {
		return &pb.NotifyRemovedResponse{Reason: "refused: this server is a voter"}, nil
	}
	if leaderSite := notifyingLeaderSite(req, st); leaderSite != "" && leaderSite == s.config.Site {
		// A server of the recovering site: its state is no newer than the
		// leader's (the longest log acted), so it starts afresh and joins.
		moved, err := WipeForRejoin(s.config.DataDir)
		if err != nil {
			return nil, toStatus(err)
		}
		s.logger.Warn("rejoining the recovered cluster with fresh state", "leader", req.GetLeaderId(), "epoch", req.GetEpoch(), "old_state", moved)
		s.requestRestart("rejoin the cluster recovered by " + req.GetLeaderId())
		return &pb.NotifyRemovedResponse{Accepted: true, Reason: "rejoining"}, nil
	}
	m := removedMark{LeaderID: req.GetLeaderId(), Epoch: req.GetEpoch(), Voters: req.GetVoters(), Time: time.Now().UTC()}
	if err := fsutil.WriteJSONDurable(filepath.Join(s.config.DataDir, removedFileName), m); err != nil {
		return nil, toStatus(fmt.Errorf("record removal: %w", err))
	}
	s.logger.Error("removed from the cluster; refusing to serve", "reason", m.reason())
	s.requestRestart("removed by leader " + req.GetLeaderId())
	return &pb.NotifyRemovedResponse{Accepted: true, Reason: "removed"}, nil
}

// notifyingLeaderSite is the site of the leader that sent req: as the
// request says, or, from a leader that does not say (an older version),
// as this server's state records it. A server whose log is behind may not
// know the recovered leader at all.
func notifyingLeaderSite(req *pb.NotifyRemovedRequest, st stateView) string {
	if site := req.GetLeaderSite(); site != "" {
		return site
	}
	return st.Servers[req.GetLeaderId()].Site
}
