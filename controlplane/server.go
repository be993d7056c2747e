// Package controlplane is the drplane server: a Raft node, the replicated
// FSM, the gRPC services (Operator, AgentRegistry, Peer) and the
// leader-only work.
package controlplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drplane/drplane/internal/clock"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/notify"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
)

// Deps are what a Server needs besides its configuration. Tests hand in
// listeners on kernel-chosen ports and shrink the Raft timeouts.
type Deps struct {
	Logger hclog.Logger
	// TLS is the server's certificate material; it must carry the server
	// role.
	TLS *tlsutil.Material
	// GRPCListener, RaftListener and HTTPListener are opened from the
	// configuration when nil.
	GRPCListener net.Listener
	RaftListener net.Listener
	HTTPListener net.Listener
	// RaftConfig, when set, may adjust the Raft configuration after the
	// defaults and raft_multiplier are applied.
	RaftConfig func(*raft.Config)
	// Dial, when set, makes every outgoing connection to other servers
	// and to agents (Raft and gRPC); tests use it to partition the
	// network. nil means the normal TCP dialer.
	Dial tlsutil.DialFunc
	// Clock, when set, is the leader's source of time for the lease
	// arithmetic (see leaseTable): its election, the probes' send and
	// answer times, the detector's judgements and the lease wait. nil
	// means the real clock.
	Clock clock.Clock
	// Calendar, when set, is the wall clock the DR programme runs by: the
	// schedules' slots and the trading hours. nil means the real clock.
	Calendar clock.Clock
	// QuorumNotifyAfter, when set, replaces how long the server knows no
	// leader before it tells the quorum_lost receivers (15s).
	QuorumNotifyAfter time.Duration
}

// Server is one control-plane node.
type Server struct {
	config *config.ServerConfig
	logger hclog.Logger
	tls    *tlsutil.Material
	// clock is Deps.Clock, the leader's time (see leaseTable).
	clock clock.Clock
	// calendar is Deps.Calendar, the programme's wall clock.
	calendar clock.Clock

	fsm       *FSM
	raft      *raft.Raft
	raftStore raftStores
	// raftNotifyCh receives true on gaining and false on losing leadership.
	raftNotifyCh chan bool
	// hadState is true when Raft state was on disk at start.
	hadState bool

	grpcServer   *grpc.Server
	grpcListener net.Listener
	httpServer   *http.Server
	httpListener net.Listener
	// grpcAddr and raftAddr are the advertised addresses.
	grpcAddr string
	raftAddr string

	// conns reach other servers, agentConns the host agents.
	conns      *connPool
	agentConns *connPool
	// probes is the leader's latest observation of every agent; it lives
	// in memory only and is rebuilt after an election.
	probes *probeTable
	// notifySender posts the notify blocks' notifications.
	notifySender *notify.Sender
	// quorumNotifyAfter: see Deps.QuorumNotifyAfter.
	quorumNotifyAfter time.Duration
	// leases counts the leases this leader may have granted (invariant 4);
	// memory only, one term at a time.
	leases *leaseTable
	// probeIDs numbers this server's probes (ProbeRequest.probe_id),
	// from the wall clock at start.
	probeIDs atomic.Uint64
	// progress is the latest progress line of each running step.
	progress *progressTable
	// detector judges the active site after each probe round.
	detector detector
	// primaries are the primaries' observed positions, for RPO.
	primaries *primaryHistory
	// leaderSince is when this server's current term of leadership was
	// established, zero while it does not lead; leaderCtx ends with the
	// term; executing holds the ids of the executions this term runs;
	// tasks counts the term's goroutines, so a lost leadership ends them
	// all before a new term can start others (see goLeader).
	leaderMu    sync.Mutex
	leaderSince time.Time
	leaderCtx   context.Context
	executing   map[string]bool
	tasks       *termTasks

	// restartCh is closed when the server must be restarted (see
	// RestartRequested).
	restartCh   chan struct{}
	restartOnce sync.Once
	// quorumMsg is the quorum watcher's latest judgement; removed, when
	// set, is why this server refuses to serve.
	quorumMu  sync.Mutex
	quorumMsg string
	removed   string
	// peersSeen is when each server of this server's site last answered
	// since it lost its leader.
	peersSeen map[string]time.Time
	// pendingRecovery is a recovered configuration whose failover this
	// server starts once it leads.
	pendingRecovery *recoveryPlan

	shutdownCtx    context.Context
	shutdownCancel context.CancelFunc
	shutdownOnce   sync.Once
	wg             sync.WaitGroup
}

// NewServer starts a server: Raft, the gRPC and HTTP listeners, the
// leadership monitor and the join loop. It returns an error, and leaves
// nothing running, when any part fails to start.
func NewServer(cfg *config.ServerConfig, deps Deps) (*Server, error) {
	if deps.TLS == nil {
		return nil, errors.New("start server: no TLS material")
	}
	if deps.Logger == nil {
		deps.Logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		config:            cfg,
		logger:            deps.Logger,
		tls:               deps.TLS,
		clock:             clock.OrReal(deps.Clock),
		calendar:          clock.OrReal(deps.Calendar),
		fsm:               NewFSM(deps.Logger),
		raftNotifyCh:      make(chan bool, 16),
		conns:             newConnPool(deps.TLS, tlsutil.RoleServer),
		agentConns:        newAgentConnPool(deps.TLS),
		probes:            newProbeTable(),
		notifySender:      notify.NewSender(),
		quorumNotifyAfter: cmp.Or(deps.QuorumNotifyAfter, defaultQuorumNotifyAfter),
		leases:            newLeaseTable(deps.Clock, cfg.Failover),
		progress:          newProgressTable(),
		primaries:         newPrimaryHistory(),
		restartCh:         make(chan struct{}),
		shutdownCtx:       ctx,
		shutdownCancel:    cancel,
	}
	s.conns.dial, s.agentConns.dial = deps.Dial, deps.Dial
	// Probe ids go on growing across restarts of this server, so that an
	// agent never takes a new probe for one an earlier process sent.
	s.probeIDs.Store(uint64(time.Now().UnixNano()))
	if err := s.start(&deps); err != nil {
		// s is the half-started server, never nil here: release what
		// start opened (listeners, Raft stores, Raft) before returning.
		s.closeListeners(deps)
		_ = s.Shutdown(context.Background())
		return nil, err
	}
	return s, nil
}

// start opens the listeners and the data dir, then starts Raft and the
// background work; NewServer releases whatever it opened when it fails.
func (s *Server) start(deps *Deps) error {
	if err := s.openListeners(deps); err != nil {
		return err
	}
	if err := checkDataDir(s.config.DataDir); err != nil {
		return err
	}
	if err := s.loadRemovedMark(); err != nil {
		return err
	}
	if reason := s.removedReason(); reason != "" {
		// A removed server opens no Raft state at all: it answers every
		// call with why it refuses, until an operator rejoins it.
		_ = deps.RaftListener.Close()
		_ = deps.HTTPListener.Close()
		s.logger.Error("refusing to serve", "reason", reason)
		s.setupGRPC()
		s.goFunc(s.serveGRPC)
		s.goFunc(s.watchRemovedMark)
		return nil
	}
	if err := s.setupRaft(*deps); err != nil {
		return err
	}
	s.setupGRPC()
	s.setupHTTP()
	s.startBackground()
	s.logger.Info("server started", "node_id", s.config.NodeID, "site", s.config.Site,
		"grpc_addr", s.grpcAddr, "raft_addr", s.raftAddr, "http_addr", s.httpListener.Addr().String())
	return nil
}

// checkDataDir creates the data dir when it does not exist and says which
// path is in the way when it cannot be: a file where a directory must be,
// or a directory the server may not write.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data_dir %s: %w; set data_dir to a directory this server can create and write", dir, err)
	}
	probe, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data_dir %s is not writable: %w; set data_dir to a directory this server can write", dir, err)
	}
	_ = probe.Close()
	return os.Remove(probe.Name())
}

// openListeners opens the listeners the caller did not provide and works
// out the advertised addresses.
func (s *Server) openListeners(deps *Deps) error {
	var err error
	listen := func(ln *net.Listener, addr, what string) {
		if *ln != nil || err != nil {
			return
		}
		if *ln, err = net.Listen("tcp", addr); err != nil {
			err = fmt.Errorf("listen for %s on %s: %w; stop what holds the port (another drplane server?) or set ports { %s = ... } to a free one", what, addr, err, what)
		}
	}
	listen(&deps.GRPCListener, s.config.GRPCAddr(), "grpc")
	listen(&deps.RaftListener, s.config.RaftAddr(), "raft")
	listen(&deps.HTTPListener, s.config.HTTPAddr(), "http")
	if err != nil {
		return err
	}
	s.grpcListener, s.httpListener = deps.GRPCListener, deps.HTTPListener
	s.grpcAddr = advertised(s.config.AdvertiseAddr, deps.GRPCListener)
	s.raftAddr = advertised(s.config.AdvertiseAddr, deps.RaftListener)
	return nil
}

func (s *Server) closeListeners(deps Deps) {
	for _, ln := range []net.Listener{deps.GRPCListener, deps.RaftListener, deps.HTTPListener} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// advertised joins the advertise host with the port the listener really
// got, which differs from the configured one when that was 0.
func advertised(host string, ln net.Listener) string {
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return ln.Addr().String()
	}
	return net.JoinHostPort(host, port)
}

// startBackground starts the long-running goroutines.
func (s *Server) startBackground() {
	s.goFunc(s.monitorLeadership)
	s.goFunc(s.joinLoop)
	s.goFunc(s.watchQuorum)
	s.goFunc(s.runQuorumNotifier)
	s.goFunc(s.serveGRPC)
	s.goFunc(func(context.Context) {
		if err := s.httpServer.ServeTLS(s.httpListener, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http server stopped", "error", err)
		}
	})
}

func (s *Server) serveGRPC(context.Context) {
	if err := s.grpcServer.Serve(s.grpcListener); err != nil {
		s.logger.Error("grpc server stopped", "error", err)
	}
}

func (s *Server) goFunc(f func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(s.shutdownCtx)
	}()
}

// NodeID returns the server's node id.
func (s *Server) NodeID() string { return s.config.NodeID }

// GRPCAddr returns the advertised gRPC address.
func (s *Server) GRPCAddr() string { return s.grpcAddr }

// IsLeader reports whether this server is the Raft leader.
func (s *Server) IsLeader() bool { return s.raft != nil && s.raft.State() == raft.Leader }

// Shutdown stops the server. A leader first hands leadership to another
// voter so that the cluster does not wait out an election timeout.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutdownOnce.Do(func() { err = s.shutdown(ctx) })
	return err
}

func (s *Server) shutdown(ctx context.Context) error {
	if s.raft != nil && s.IsLeader() && s.votersLen() > 1 {
		s.logger.Info("transferring leadership before shutdown")
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			s.logger.Warn("failed to transfer leadership", "error", err)
		} else {
			_, to := s.raft.LeaderWithID()
			s.logger.Info("leadership transferred", "to", to)
		}
	}
	s.shutdownCancel()
	if s.grpcServer != nil {
		stopGRPC(ctx, s.grpcServer)
	}
	if s.httpServer != nil {
		_ = s.httpServer.Close()
	}
	if s.grpcServer == nil && s.grpcListener != nil {
		_ = s.grpcListener.Close()
	}
	var err error
	if s.raft != nil {
		err = s.raft.Shutdown().Error()
	}
	s.wg.Wait()
	s.conns.close()
	s.agentConns.close()
	if cerr := s.raftStore.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("shut down server %s: %w", s.config.NodeID, err)
	}
	s.logger.Info("server stopped")
	return nil
}

// stopGRPC lets in-flight calls finish until ctx ends, then cuts them.
func stopGRPC(ctx context.Context, srv *grpc.Server) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		srv.Stop()
	case <-t.C:
		srv.Stop()
	}
}

func (s *Server) votersLen() int {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

var (
	_ pb.OperatorServer      = (*operatorEndpoint)(nil)
	_ pb.AgentRegistryServer = (*agentRegistryEndpoint)(nil)
	_ pb.PeerServer          = (*peerEndpoint)(nil)
)
