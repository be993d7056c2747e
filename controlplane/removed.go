package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/fsutil"
	"github.com/drplane/drplane/internal/rpcerr"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// A server the recovered cluster no longer counts as a voter is told so by
// the leader (NotifyRemoved, in peer_endpoint.go). A server of the leader's
// site wipes its Raft state and joins again; any other (the lost site's,
// coming back) records a removed mark in its data dir and refuses to
// serve, so that its old state cannot act, until an operator runs
// `drplane server rejoin`.

const (
	// removedFileName marks a server removed from the cluster.
	removedFileName = "removed.json"
	// notifyRemovedInterval is how often a leader tells servers outside
	// its configuration that they were removed.
	notifyRemovedInterval = 2 * time.Second
)

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

// ReadRemovedMark returns why the server with data dir dir was removed,
// or "" when it was not.
func ReadRemovedMark(dir string) (string, error) {
	var m removedMark
	ok, err := fsutil.ReadJSON(filepath.Join(dir, removedFileName), &m)
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
		resp, err := pb.NewPeerClient(conn).NotifyRemoved(cctx, &pb.NotifyRemovedRequest{LeaderId: s.config.NodeID, LeaderSite: s.config.Site, Epoch: st.Epoch, Voters: voters})
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
