package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

const (
	// raftLogCacheSize is how many recent log entries stay in memory.
	raftLogCacheSize = 512
	// raftSnapshotsRetained is how many FSM snapshots stay on disk.
	raftSnapshotsRetained = 2
	// raftTransportTimeout bounds one Raft RPC on the wire.
	raftTransportTimeout = 10 * time.Second
	// raftApplyTimeout bounds how long a command waits to be enqueued.
	raftApplyTimeout = 10 * time.Second
)

// raftStores are the transport and on-disk stores that must be closed
// after Raft stops, the transport first: NetworkTransport hands
// heartbeats to Raft on its own goroutines, and one arriving after the
// store closed would make Raft panic writing the term.
type raftStores struct {
	trans  *raft.NetworkTransport
	bolt   *raftboltdb.BoltStore
	stable *closingStableStore
}

func (r raftStores) close() error {
	var err error
	if r.trans != nil {
		err = r.trans.Close()
	}
	if r.stable != nil {
		r.stable.markClosed()
	}
	if r.bolt != nil {
		if cerr := r.bolt.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// closingStableStore is the stable store Raft writes its term and vote
// to. Closing the transport does not wait for the heartbeat a transport
// goroutine is handing to Raft at that moment: it can reach Raft's term
// write after Raft shut down and the store closed, and Raft panics on a
// failed term write (seen under load in CI). markClosed waits for the
// writes under way; a write after it is dropped. That is safe: Raft's
// main loop, which alone grants votes and appends entries, has stopped
// by then, and a dropped term only forgets that this stopping node heard
// of a leader, which the next start learns again.
type closingStableStore struct {
	raft.StableStore
	mu     sync.RWMutex
	closed bool
}

func (s *closingStableStore) Set(key, val []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	return s.StableStore.Set(key, val)
}

func (s *closingStableStore) SetUint64(key []byte, val uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	return s.StableStore.SetUint64(key, val)
}

// markClosed waits for the writes under way and drops later ones.
func (s *closingStableStore) markClosed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}

// setupRaft opens the stores under data_dir/raft, the TLS transport, and
// starts the Raft node. Bootstrapping happens later, in the join loop, once
// bootstrap_expect servers have found each other.
func (s *Server) setupRaft(deps Deps) error {
	dir := filepath.Join(s.config.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create raft dir %s: %w", dir, err)
	}
	bolt, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		return fmt.Errorf("open raft store in %s: %w", dir, err)
	}
	s.raftStore.bolt = bolt
	logs, err := raft.NewLogCache(raftLogCacheSize, bolt)
	if err != nil {
		return fmt.Errorf("create raft log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, raftSnapshotsRetained, s.logger.Named("raft"))
	if err != nil {
		return fmt.Errorf("open raft snapshot store in %s: %w", dir, err)
	}
	s.hadState, err = raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		return fmt.Errorf("read raft state in %s: %w", dir, err)
	}
	stream := tlsutil.NewStreamLayerWithDialer(deps.RaftListener, tcpAddr(s.raftAddr), s.tls, s.logger.Named("raft"), deps.Dial)
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		// 1 disables pipelined replication. With the default of 2 the
		// pipeline can deadlock after a follower rejects an append (as
		// after a leadership transfer): replicate() then never returns
		// and Raft.Shutdown waits forever (hashicorp/raft pipelining,
		// seen here and in grafana/pyroscope#5518). HashiCorp measured
		// little benefit from pipelining on a LAN (hashicorp/raft#541).
		MaxRPCsInFlight: 1,
		Timeout:         raftTransportTimeout,
		Logger:          s.logger.Named("raft"),
	})
	s.raftStore.trans = trans
	rc := s.raftConfig()
	if deps.RaftConfig != nil {
		deps.RaftConfig(rc)
	}
	if s.pendingRecovery, err = s.recoverAtStart(rc, logs, bolt, snaps, trans); err != nil {
		return err
	}
	s.raftStore.stable = &closingStableStore{StableStore: bolt}
	if s.raft, err = raft.NewRaft(rc, s.fsm, logs, s.raftStore.stable, snaps, trans); err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	return nil
}

// raftConfig uses the LAN timeouts of config.RaftTimeouts, scaled by
// raft_multiplier: config validation checks that lease_ttl outlasts an
// election with them (config.ServerConfig.ElectionBound).
func (s *Server) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.config.NodeID)
	rc.Logger = s.logger.Named("raft")
	rc.NotifyCh = s.raftNotifyCh
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = s.config.RaftTimeouts()
	return rc
}

// tcpAddr is a net.Addr for an advertised "host:port" string.
type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }

// verifyLeader confirms this server still leads, as raft's VerifyLeader,
// but returns when ctx ends or the server shuts down: hashicorp/raft
// leaves a verification queued just before it shut down unanswered
// forever, and waiting on it hung the prober and with it Shutdown. Such a
// wait is left behind in its own goroutine.
func (s *Server) verifyLeader(ctx context.Context) error {
	f := s.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("verify leadership: %w", ctx.Err())
	case <-s.shutdownCtx.Done():
		return raft.ErrRaftShutdown
	}
}
