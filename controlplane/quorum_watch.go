package controlplane

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// The quorum watch runs on every server. A server outside the active site
// that has had no leader for quorum_loss_timeout judges whether its site
// may recover (checkQuorumLoss): no server of the active site answers, the
// active site is confirmed fenced, and it holds the longest log of its
// site. The recovery itself is in recovery.go.

// recoveringPeerGrace is how long a server of the surviving site that
// answered during the quorum loss and then went silent is presumed to be
// restarting into its own recovery, rather than dead: long enough for a
// restart and RecoverCluster on a loaded machine, so that two servers
// never recover apart.
const recoveringPeerGrace = time.Minute

// quorumState is what the quorum watcher last concluded, for status and
// the no-leader error.
func (s *Server) quorumNote() string {
	s.quorumMu.Lock()
	defer s.quorumMu.Unlock()
	return s.quorumMsg
}

func (s *Server) setQuorumNote(msg string) {
	s.quorumMu.Lock()
	changed := s.quorumMsg != msg
	s.quorumMsg = msg
	s.quorumMu.Unlock()
	if changed && msg != "" {
		s.logger.Warn("quorum watch", "state", msg)
	}
}

// watchQuorum runs on every server. While there is a leader it does
// nothing; once this server, outside the active site, has had no leader
// for quorum_loss_timeout, it judges whether its site may recover.
func (s *Server) watchQuorum(ctx context.Context) {
	f := s.config.Failover
	t := time.NewTicker(f.ProbeInterval)
	defer t.Stop()
	var leaderlessSince, stonithTried time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if addr, _ := s.raft.LeaderWithID(); addr != "" {
			leaderlessSince, stonithTried = time.Time{}, time.Time{}
			s.setQuorumNote("")
			continue
		}
		now := time.Now()
		if leaderlessSince.IsZero() {
			// Leaderless since the last contact with a leader, not since
			// this tick noticed: raft takes a heartbeat timeout to give
			// its leader up, and that time counts towards
			// quorum_loss_timeout (and the recovery's RTO).
			leaderlessSince = now
			if last := s.raft.LastContact(); !last.IsZero() && last.Before(now) {
				leaderlessSince = last
			}
			s.resetPeersSeen()
		}
		st := s.fsm.view()
		if !st.Initialized || st.ActiveSite == s.config.Site || siteKind(st, s.config.Site) != structs.SiteKindData || hasWitness(st) {
			// With a witness the surviving majority elects a leader;
			// quorum loss is a two-site matter.
			continue
		}
		if now.Sub(leaderlessSince) < f.QuorumLossTimeout {
			// Keep track of which peers of this site answer, so that
			// one that goes quiet later (restarting into its own
			// recovery) is not taken for dead.
			s.pollPeers(ctx, st)
			s.setQuorumNote("")
			continue
		}
		req := &pb.RecoverQuorumRequest{To: s.config.Site}
		why, err := s.checkQuorumLoss(ctx, st, req)
		if err != nil {
			s.setQuorumNote(fmt.Sprintf("no leader for %s; %v", now.Sub(leaderlessSince).Round(time.Second), err))
			continue
		}
		if !stonithTried.IsZero() && now.Sub(stonithTried) < f.FailoverTimeout {
			continue
		}
		stonithTried = now
		fence, err := s.runStonith(ctx, st.ActiveSite)
		if err != nil {
			s.setQuorumNote(fmt.Sprintf("quorum lost; primary state unknown: %v; not failing over", err))
			continue
		}
		p := s.newRecoveryPlan(st, leaderlessSince, true, false, "server:"+s.config.NodeID+" (automatic)",
			fmt.Sprintf("stonith hook for site %s confirmed the fence", st.ActiveSite))
		p.SiteFence = fence
		s.setQuorumNote("quorum lost; " + why + "; recovering: " + p.Reason)
		if err := s.prepareRecovery(p); err != nil {
			s.setQuorumNote(fmt.Sprintf("quorum lost; recovery failed: %v", err))
		}
		return
	}
}

func hasWitness(st stateView) bool {
	return slices.ContainsFunc(st.Sites, func(site structs.Site) bool { return site.Kind == structs.SiteKindWitness })
}

func siteKind(st stateView, name string) string {
	for _, site := range st.Sites {
		if site.Name == name {
			return site.Kind
		}
	}
	return ""
}

// checkQuorumLoss decides whether this server may recover its site now.
// For the automatic path (req.ConfirmPrimaryDown unset) it also needs
// automatic failover, no pause or cooldown, and a STONITH hook. It returns
// a description of the situation.
func (s *Server) checkQuorumLoss(ctx context.Context, st stateView, req *pb.RecoverQuorumRequest) (string, error) {
	f := s.config.Failover
	if addr, id := s.raft.LeaderWithID(); addr != "" {
		return "", fmt.Errorf("%w: server %s leads; use `drplane failover --to %s` without --force", errFailedPrecondition, id, req.GetTo())
	}
	if req.GetTo() != s.config.Site {
		return "", fmt.Errorf("%w: this server is in site %s, not %s; send the command to a server of site %s", errInvalidArgument, s.config.Site, req.GetTo(), req.GetTo())
	}
	if st.ActiveSite == s.config.Site {
		return "", fmt.Errorf("%w: site %s is active already", errFailedPrecondition, s.config.Site)
	}
	if hasWitness(st) {
		return "", fmt.Errorf("%w: the deployment has a witness site: the surviving majority elects a leader that fails over; quorum-loss recovery is for two sites without one", errFailedPrecondition)
	}
	// A server of the active site that answers means a partition, not a
	// loss: acting would make two clusters. They are asked at once: a lost
	// site's servers each wait out probe_timeout.
	ids := sortedServerIDs(st, st.ActiveSite)
	answers := make([]*pb.NodeInfoResponse, len(ids)) // nil: no answer
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if info, err := s.nodeInfo(ctx, st.Servers[id].Address, f.ProbeTimeout); err == nil && info.GetRemoved() == "" {
				answers[i] = info
			}
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if info := answers[i]; info != nil {
			return "", fmt.Errorf("%w: server %s of the active site %s answers (%s): its site is not down", errFailedPrecondition, id, st.ActiveSite, info.GetState())
		}
	}
	why := fmt.Sprintf("no server of the active site %s answers", st.ActiveSite)
	if !req.GetConfirmPrimaryDown() {
		_, hasHook := f.StonithFor(st.ActiveSite)
		switch {
		case !f.Automatic:
			return "", fmt.Errorf("quorum lost; primary state unknown: automatic failover is off; once site %s is confirmed down: drplane failover --to %s --force --confirm-primary-down", st.ActiveSite, s.config.Site)
		case !hasHook:
			return "", fmt.Errorf("quorum lost; primary state unknown: no stonith hook for site %s, so this site cannot tell its death from a partition; once it is confirmed down: drplane failover --to %s --force --confirm-primary-down", st.ActiveSite, s.config.Site)
		}
		if blocked := s.fsm.automation().Blocked(time.Now(), f.Cooldown); blocked != "" {
			return "", fmt.Errorf("quorum lost; automatic failover blocked: %s", blocked)
		}
	}
	// The server of this site with the longest log acts (ties: lowest id),
	// so the recovered state loses nothing the site holds.
	// A peer that answered lately but not now may be restarting to apply
	// its own recovery: only one silent for quorum_loss_timeout is
	// counted out, so that two servers never recover apart.
	mine := s.raft.LastIndex()
	now := time.Now()
	for _, id := range sortedServerIDs(st, s.config.Site) {
		if id == s.config.NodeID {
			continue
		}
		info, err := s.nodeInfo(ctx, st.Servers[id].Address, f.ProbeTimeout)
		if err != nil {
			if seen, ok := s.peerLastSeen(id); ok && now.Sub(seen) < recoveringPeerGrace {
				return "", deferTo(id, st.Servers[id].Address, "quorum lost; server %s of this site answered %s ago and may be restarting into its own recovery; waiting until it has been silent for %s", id, now.Sub(seen).Round(time.Second), recoveringPeerGrace)
			}
			continue
		}
		s.peerSeen(id, now)
		switch {
		case info.GetRemoved() != "":
			continue
		case info.GetState() == "leader":
			return "", deferTo(id, st.Servers[id].Address, "server %s of this site leads a recovered cluster; this server rejoins it when told", id)
		case info.GetLastIndex() > mine || (info.GetLastIndex() == mine && id < s.config.NodeID):
			return "", deferTo(id, st.Servers[id].Address, "quorum lost; server %s of this site has the longest log (index %d, here %d) and acts", id, info.GetLastIndex(), mine)
		}
	}
	return why, nil
}

// pollPeers records which servers of this site answer now.
func (s *Server) pollPeers(ctx context.Context, st stateView) {
	for _, id := range sortedServerIDs(st, s.config.Site) {
		if id == s.config.NodeID {
			continue
		}
		if _, err := s.nodeInfo(ctx, st.Servers[id].Address, s.config.Failover.ProbeTimeout); err == nil {
			s.peerSeen(id, time.Now())
		}
	}
}

// resetPeersSeen forgets which peers answered: it starts over whenever
// this server loses its leader.
func (s *Server) resetPeersSeen() {
	s.quorumMu.Lock()
	defer s.quorumMu.Unlock()
	s.peersSeen = map[string]time.Time{}
}

func (s *Server) peerSeen(id string, t time.Time) {
	s.quorumMu.Lock()
	defer s.quorumMu.Unlock()
	if s.peersSeen == nil {
		s.peersSeen = map[string]time.Time{}
	}
	s.peersSeen[id] = t
}

// peerLastSeen is when the peer last answered since this server lost its
// leader; ok is false when it has not answered since, so it is counted out.
func (s *Server) peerLastSeen(id string) (time.Time, bool) {
	s.quorumMu.Lock()
	defer s.quorumMu.Unlock()
	t, ok := s.peersSeen[id]
	return t, ok
}

func sortedServerIDs(st stateView, site string) []string {
	var ids []string
	for id, srv := range st.Servers {
		if srv.Site == site {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
