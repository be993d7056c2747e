package controlplane

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/raft"
)

const (
	stateUnreachable = "unreachable"
	// memberProbeTimeout bounds the NodeInfo call that tells whether a
	// member answers.
	memberProbeTimeout = time.Second
)

// members lists the Raft configuration as this server knows it, with each
// member's site and addresses from the FSM and its Raft state as the member
// itself reports it (unreachable when it does not answer in time).
func (s *Server) members(ctx context.Context, _ bool) ([]*pb.Server, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	records := s.fsm.view().Servers
	cfg := f.Configuration().Servers
	out := make([]*pb.Server, len(cfg))
	var wg sync.WaitGroup
	for i, rs := range cfg {
		rec := records[string(rs.ID)]
		out[i] = &pb.Server{
			Id:          string(rs.ID),
			Site:        rec.Site,
			Address:     rec.Address,
			RaftAddress: string(rs.Address),
			Voter:       rs.Suffrage == raft.Voter,
			State:       stateUnreachable,
		}
		wg.Add(1)
		go func(m *pb.Server) {
			defer wg.Done()
			s.fillMemberState(ctx, m)
		}(out[i])
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b *pb.Server) int { return strings.Compare(a.Id, b.Id) })
	return out, nil
}

// fillMemberState asks a member for its state; this server answers for
// itself without a network call.
func (s *Server) fillMemberState(ctx context.Context, m *pb.Server) {
	if m.Id == s.config.NodeID {
		info := s.localNodeInfo()
		m.State, m.LastIndex = info.State, info.LastIndex
		return
	}
	if m.Address == "" {
		return
	}
	info, err := s.nodeInfo(ctx, m.Address, memberProbeTimeout)
	if err != nil || info.GetId() != m.Id {
		return
	}
	m.State, m.LastIndex = info.GetState(), info.GetLastIndex()
}

// localNodeInfo describes this server.
func (s *Server) localNodeInfo() *pb.NodeInfoResponse {
	if reason := s.removedReason(); reason != "" {
		return &pb.NodeInfoResponse{Id: s.config.NodeID, Site: s.config.Site, Address: s.grpcAddr, State: "removed", Removed: reason}
	}
	_, leaderID := s.raft.LeaderWithID()
	return &pb.NodeInfoResponse{
		Id:           s.config.NodeID,
		Site:         s.config.Site,
		Address:      s.grpcAddr,
		RaftAddress:  s.raftAddr,
		State:        strings.ToLower(s.raft.State().String()),
		LeaderId:     string(leaderID),
		Bootstrapped: s.isBootstrapped(),
		LastIndex:    s.raft.LastIndex(),
		AppliedIndex: s.raft.AppliedIndex(),
		Epoch:        s.fsm.view().Epoch,
	}
}

// checkRemovable refuses removals that autopilot would refuse: the last
// server, and any removal that leaves fewer answering voters than the
// smaller configuration's quorum.
func checkRemovable(members []*pb.Server, id string) error {
	idx := slices.IndexFunc(members, func(m *pb.Server) bool { return m.Id == id })
	if idx < 0 {
		ids := make([]string, len(members))
		for i, m := range members {
			ids[i] = m.Id
		}
		return fmt.Errorf("%w: server %q is not a member (members: %s)", errNotFound, id, strings.Join(ids, ", "))
	}
	voters, healthy := 0, 0
	for _, m := range members {
		if !m.Voter || m.Id == id {
			continue
		}
		voters++
		if m.State != stateUnreachable {
			healthy++
		}
	}
	if len(members) == 1 || (members[idx].Voter && voters == 0) {
		return refusal("server %s is the last server; removing it would destroy the cluster", id)
	}
	if quorum := voters/2 + 1; members[idx].Voter && healthy < quorum {
		return refusal("removing server %s would leave %d healthy voters of %d; a quorum needs %d. Bring servers back first", id, healthy, voters, quorum)
	}
	return nil
}
