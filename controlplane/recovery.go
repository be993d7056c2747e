package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/fsutil"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/rpcerr"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// Quorum-loss recovery (DESIGN.md section 5, two sites without a witness).
//
// The servers of the surviving site cannot elect a leader: the lost site
// held part of the quorum. Once they have had no leader for
// quorum_loss_timeout and reach no server of the active site, and the
// active site is confirmed fenced (its STONITH hook exited 0, or an
// operator ran `drplane failover --force --confirm-primary-down`), the
// surviving server with the longest log recovers: it writes a recovery
// plan to its data dir and restarts; on start it rewrites its Raft
// configuration to itself alone (raft.RecoverCluster), elects itself and,
// as leader, starts the failover plan. Its site's other servers are then
// told to wipe their Raft state and join it again; servers of the lost site
// that come back are told they were removed and refuse to serve until an
// operator runs `drplane server rejoin`.

const (
	// recoveryFileName holds a pending recovery plan in data_dir.
	recoveryFileName = "recovery.json"
	// removedFileName marks a server removed from the cluster.
	removedFileName = "removed.json"
	// recoveringPeerGrace is how long a server of the surviving site that
	// answered during the quorum loss and then went silent is presumed to
	// be restarting into its own recovery, rather than dead: long enough
	// for a restart and RecoverCluster on a loaded machine, so that two
	// servers never recover apart.
	recoveringPeerGrace = time.Minute
	// notifyRemovedInterval is how often a leader tells servers outside
	// its configuration that they were removed.
	notifyRemovedInterval = 2 * time.Second
)

// recoveryPlan is one quorum-loss recovery as this server carries it out.
type recoveryPlan struct {
	ID            string    `json:"id"`
	Reason        string    `json:"reason"`
	Actor         string    `json:"actor"`
	FromSite      string    `json:"from_site"`
	ToSite        string    `json:"to_site"`
	TriggerTime   time.Time `json:"trigger_time"`
	Automatic     bool      `json:"automatic"`
	AllowDataLoss bool      `json:"allow_data_loss"`
	// Recovered is set once the Raft configuration was rewritten; the
	// failover is still to be started by this server as leader.
	Recovered bool `json:"recovered"`
}

// removedMark records why this server no longer serves.
type removedMark struct {
	LeaderID string    `json:"leader_id"`
	Epoch    uint64    `json:"epoch"`
	Voters   []string  `json:"voters"`
	Time     time.Time `json:"time"`
}

func (m removedMark) reason() string {
	return fmt.Sprintf("this server was removed from the cluster: at %s leader %s (epoch %d, voters %s) no longer counts it as a voter, "+
		"as after a quorum-loss failover; it refuses to serve so that its old state cannot act; run `drplane server rejoin --config FILE` on this host to wipe its Raft state and join again",
		m.Time.UTC().Format(time.RFC3339), m.LeaderID, m.Epoch, strings.Join(m.Voters, ", "))
}

func readJSONFile(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("parse %s: %w", path, err)
	}
	return true, nil
}

// ReadRemovedMark returns why the server with data dir dir was removed,
// or "" when it was not.
func ReadRemovedMark(dir string) (string, error) {
	var m removedMark
	ok, err := readJSONFile(filepath.Join(dir, removedFileName), &m)
	if err != nil || !ok {
		return "", err
	}
	return m.reason(), nil
}

// WipeForRejoin moves the Raft state of the server with data dir dir aside
// (nothing is deleted) and clears its removed mark, so that it starts
// without state and joins the cluster through retry_join. It returns where
// the old state went.
func WipeForRejoin(dir string) (string, error) {
	raftDir := filepath.Join(dir, "raft")
	var moved string
	if _, err := os.Stat(raftDir); err == nil {
		moved = filepath.Join(dir, fmt.Sprintf("raft.removed-%s", time.Now().UTC().Format("20060102T150405Z")))
		if err := os.Rename(raftDir, moved); err != nil {
			return "", fmt.Errorf("move %s aside: %w", raftDir, err)
		}
	}
	for _, name := range []string{removedFileName, recoveryFileName} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return moved, fmt.Errorf("remove %s: %w", name, err)
		}
	}
	return moved, nil
}

// RestartRequested is closed when the server needs to be stopped and
// started again with the same configuration: after it prepared a
// quorum-loss recovery, was removed, or was told to rejoin.
func (s *Server) RestartRequested() <-chan struct{} { return s.restartCh }

func (s *Server) requestRestart(why string) {
	s.restartOnce.Do(func() {
		s.logger.Warn("server restart requested", "reason", why)
		close(s.restartCh)
	})
}

// removedReason is why this server refuses to serve, "" when it serves.
func (s *Server) removedReason() string {
	s.quorumMu.Lock()
	defer s.quorumMu.Unlock()
	return s.removed
}

// loadRemovedMark puts the server into removed mode when it was removed.
func (s *Server) loadRemovedMark() error {
	reason, err := ReadRemovedMark(s.config.DataDir)
	if err != nil {
		return fmt.Errorf("read removed mark in %s: %w", s.config.DataDir, err)
	}
	s.quorumMu.Lock()
	s.removed = reason
	s.quorumMu.Unlock()
	return nil
}

// watchRemovedMark restarts a removed server once an operator cleared the
// mark with `drplane server rejoin`.
func (s *Server) watchRemovedMark(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if reason, err := ReadRemovedMark(s.config.DataDir); err == nil && reason == "" {
			s.requestRestart("removed mark cleared by `drplane server rejoin`")
			return
		}
	}
}

// recoverAtStart applies a pending recovery plan before Raft starts: the
// configuration becomes this server alone. It returns the plan whose
// failover is still to be started, or nil.
func (s *Server) recoverAtStart(rc *raft.Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, trans raft.Transport) (*recoveryPlan, error) {
	path := filepath.Join(s.config.DataDir, recoveryFileName)
	var p recoveryPlan
	ok, err := readJSONFile(path, &p)
	if err != nil || !ok {
		return nil, err
	}
	if p.Recovered {
		return &p, nil
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(s.config.NodeID), Address: raft.ServerAddress(s.raftAddr)}}}
	// RecoverCluster replays the log into an FSM of its own; Raft restores
	// the server's FSM from the snapshot it leaves.
	if err := raft.RecoverCluster(rc, NewFSM(s.logger.Named("recovery")), logs, stable, snaps, trans, conf); err != nil {
		return nil, fmt.Errorf("recover raft configuration for recovery %s: %w", p.ID, err)
	}
	p.Recovered = true
	if err := fsutil.WriteJSONDurable(path, p); err != nil {
		return nil, fmt.Errorf("record recovery %s: %w", p.ID, err)
	}
	s.logger.Warn("raft configuration recovered after quorum loss: this server is the only voter until its site's servers rejoin",
		"recovery_id", p.ID, "reason", p.Reason, "from_site", p.FromSite, "to_site", p.ToSite)
	return &p, nil
}

// startRecoveredFailover runs, as leader, the failover of a recovery this
// server carried out, once: the request id is the recovery's, so a retry
// after a crash is applied once.
func (s *Server) startRecoveredFailover(ctx context.Context) {
	p := s.pendingRecovery
	if p == nil {
		return
	}
	path := filepath.Join(s.config.DataDir, recoveryFileName)
	done := func(msg string, args ...any) {
		s.logger.Warn(msg, args...)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.logger.Error("failed to remove recovery file", "path", path, "error", err)
		}
		s.pendingRecovery = nil
	}
	st := s.fsm.view()
	if st.ActiveSite == p.ToSite {
		done("recovered failover not needed: the target site is active already", "recovery_id", p.ID, "site", p.ToSite)
		return
	}
	ex, err := s.newExecution(&pb.StartExecutionRequest{Kind: string(plan.KindFailover), To: p.ToSite, AllowDataLoss: p.AllowDataLoss}, p.Actor, p.TriggerTime)
	if err != nil {
		s.logger.Error("failed to derive the failover of a quorum-loss recovery", "recovery_id", p.ID, "error", err)
		return
	}
	if p.Automatic {
		ex.Trigger = structs.TriggerAutomatic
	}
	ex.RPODetail = "quorum lost; " + p.Reason + "; " + ex.RPODetail
	var cooldown time.Duration
	if p.Automatic {
		cooldown = s.config.Failover.Cooldown
	}
	_, err = s.raftApply(structs.StartExecutionRequestType, &structs.StartExecutionRequest{
		WriteRequest: structs.WriteRequest{RequestID: "recovery-" + p.ID, Actor: p.Actor},
		Execution:    *ex, Cooldown: cooldown,
	})
	var rejected *structs.RejectedError
	switch {
	case errors.As(err, &rejected):
		done("recovered failover not started", "recovery_id", p.ID, "reason", rejected.Reason)
		return
	case err != nil:
		s.logger.Error("failed to start the failover of a quorum-loss recovery; retrying on the next leadership", "recovery_id", p.ID, "error", err)
		return
	}
	done("quorum-loss recovery: failover started", "recovery_id", p.ID, "execution_id", ex.ID, "to", p.ToSite, "reason", p.Reason)
	s.startExecutor(ctx, ex.ID)
}

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
			leaderlessSince = now
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
		if err := s.runStonith(ctx, st.ActiveSite); err != nil {
			s.setQuorumNote(fmt.Sprintf("quorum lost; primary state unknown: %v; not failing over", err))
			continue
		}
		p := s.newRecoveryPlan(st, leaderlessSince, true, false, "server:"+s.config.NodeID+" (automatic)",
			fmt.Sprintf("stonith hook for site %s confirmed the fence", st.ActiveSite))
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
	// loss: acting would make two clusters.
	for _, id := range sortedServerIDs(st, st.ActiveSite) {
		srv := st.Servers[id]
		if info, err := s.nodeInfo(ctx, srv.Address, f.ProbeTimeout); err == nil && info.GetRemoved() == "" {
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

func (s *Server) newRecoveryPlan(st stateView, trigger time.Time, automatic, allowDataLoss bool, actor, reason string) recoveryPlan {
	return recoveryPlan{
		ID: fmt.Sprintf("%s-%d", s.config.NodeID, time.Now().UnixNano()), Reason: reason, Actor: actor,
		FromSite: st.ActiveSite, ToSite: s.config.Site, TriggerTime: trigger.UTC(), Automatic: automatic, AllowDataLoss: allowDataLoss,
	}
}

// prepareRecovery records the plan and restarts the server, which applies
// it before Raft starts.
func (s *Server) prepareRecovery(p recoveryPlan) error {
	if err := fsutil.WriteJSONDurable(filepath.Join(s.config.DataDir, recoveryFileName), p); err != nil {
		return fmt.Errorf("record recovery plan: %w", err)
	}
	s.logger.Warn("quorum-loss recovery prepared; restarting to apply it", "recovery_id", p.ID, "reason", p.Reason, "from_site", p.FromSite, "to_site", p.ToSite)
	s.requestRestart("quorum-loss recovery " + p.ID)
	return nil
}

// notifyRemovedLoop runs while this server leads: every server recorded
// in the state but absent from the Raft configuration is told so. Servers
// of this leader's site wipe their state and rejoin by themselves; others
// (the lost site's) refuse to serve until an operator rejoins them.
func (s *Server) notifyRemovedLoop(ctx context.Context) {
	t := time.NewTicker(notifyRemovedInterval)
	defer t.Stop()
	for {
		s.notifyRemoved(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) notifyRemoved(ctx context.Context) {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	var voters []string
	for _, srv := range f.Configuration().Servers {
		voters = append(voters, string(srv.ID))
	}
	st := s.fsm.view()
	for id, srv := range st.Servers {
		if slices.Contains(voters, id) || srv.Address == "" {
			continue
		}
		conn, err := s.conns.get(srv.Address)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, s.config.Failover.ProbeTimeout)
		resp, err := pb.NewPeerClient(conn).NotifyRemoved(cctx, &pb.NotifyRemovedRequest{LeaderId: s.config.NodeID, Epoch: st.Epoch, Voters: voters})
		cancel()
		if err == nil {
			s.logger.Info("told a server outside the configuration", "server", id, "accepted", resp.GetAccepted(), "reason", resp.GetReason())
		}
	}
}

// refuseWhenRemoved is a unary interceptor: a removed server answers only
// NodeInfo (which says why) and refuses everything else as unavailable, so
// clients with several addresses go on to the next server.
func (s *Server) refuseWhenRemoved(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	reason := s.removedReason()
	if reason == "" || info.FullMethod == pb.Peer_NodeInfo_FullMethodName || info.FullMethod == pb.Peer_NotifyRemoved_FullMethodName {
		return handler(ctx, req)
	}
	return nil, rpcerr.New(codes.Unavailable, "server "+s.config.NodeID+": "+reason,
		&pb.ErrorInfo{Reason: pb.ErrorReason_ERROR_REASON_SERVER_REMOVED, ServerId: s.config.NodeID, Address: s.grpcAddr})
}
