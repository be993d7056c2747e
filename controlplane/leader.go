package controlplane

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/structs"
	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

// barrierTimeout bounds the Barrier a new leader issues before acting.
const barrierTimeout = 30 * time.Second

// monitorLeadership is the only place where leader-only work starts and
// stops: it follows Raft's leadership notifications and runs leaderLoop
// while this server is leader.
func (s *Server) monitorLeadership(ctx context.Context) {
	var leading *leaderRun
	defer func() { leading.stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-s.raftNotifyCh:
			switch {
			case isLeader && leading == nil:
				leading = s.startLeaderRun(ctx)
				s.logger.Info("cluster leadership acquired")
			case !isLeader && leading != nil:
				leading.stop()
				leading = nil
				s.logger.Info("cluster leadership lost")
			}
		}
	}
}

// leaderRun is one term of leadership: leaderLoop running until stopped.
type leaderRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Server) startLeaderRun(ctx context.Context) *leaderRun {
	ctx, cancel := context.WithCancel(ctx)
	run := &leaderRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(run.done)
		s.leaderLoop(ctx)
	}()
	return run
}

// stop ends the term and waits until revokeLeadership has run.
func (r *leaderRun) stop() {
	if r == nil {
		return
	}
	r.cancel()
	<-r.done
}

// leaderLoop establishes leadership, retrying until it succeeds or
// leadership is lost, then waits and revokes.
func (s *Server) leaderLoop(ctx context.Context) {
	for {
		err := s.establishLeadership(ctx)
		if err == nil {
			break
		}
		s.logger.Error("failed to establish leadership", "error", err)
		select {
		case <-ctx.Done():
			s.revokeLeadership()
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	<-ctx.Done()
	s.revokeLeadership()
}

// establishLeadership is the flat list of what a new leader does, in order.
// Everything started here watches ctx and is undone by revokeLeadership.
func (s *Server) establishLeadership(ctx context.Context) error {
	// The term this server leads in, read before the Barrier: once the
	// Barrier succeeds it was leader then, so this is its own term or an
	// earlier one, never a successor's, which a deposed leader's steps
	// must not carry (see syncManager).
	term := s.raft.CurrentTerm()
	// The Barrier makes this leader's FSM reflect every entry committed by
	// its predecessors before it decides anything from the state.
	if err := s.raft.Barrier(barrierTimeout).Error(); err != nil {
		return err
	}
	// The prober renews the active site's leases, whose time has been
	// running out since the old leader's last renewal: it starts right
	// after the Barrier, once this leader is sure it leads and knows the
	// active site, before anything else this leader writes. It starts once
	// per term; a retried establishLeadership finds it running.
	if s.leaderContext() != ctx {
		s.probes.reset()
		// A new leader does not know its predecessor's renewals: the
		// lease table counts every lease from this election on
		// (invariant 4, see leaseTable).
		since := s.clock.Now()
		var anchoring []string
		for _, a := range s.fsm.view().Agents {
			if a.LeaseAnchors {
				anchoring = append(anchoring, a.HostID)
			}
		}
		s.leases.elect(since, anchoring...)
		s.setLeaderTerm(ctx, since)
		// A term goroutine: revokeLeadership waits for it, so no probe of
		// this term lands in the next term's tables.
		s.goLeader(func() { s.runProber(ctx) })
		s.goLeader(func() { s.runNotifier(ctx) })
		s.goLeader(func() { s.runScheduler(ctx) })
		s.goLeader(func() { s.runAvailability(ctx) })
		if s.config.Replication.Sync() {
			s.goLeader(func() { s.runSyncManager(ctx, term) })
		}
	}
	// The first leader seeds the sites from its configuration; later
	// leaders find them initialized and keep what the cluster agreed on.
	if err := s.initSites(); err != nil {
		return err
	}
	// Followers find the leader's gRPC address through this record.
	if err := s.upsertSelf(); err != nil {
		return err
	}
	// Every execution a predecessor left running continues here
	// (invariant 6).
	s.resumeExecutions(ctx)
	// A configuration this server recovered after a quorum loss is
	// followed by its failover; servers left outside are told.
	s.startRecoveredFailover(ctx)
	s.goLeader(func() { s.notifyRemovedLoop(ctx) })
	return nil
}

// revokeLeadership undoes establishLeadership. Every goroutine the term
// started watches the leadership context, which has ended; it waits for
// them all, so a quickly regained leadership never runs two executors of
// the same execution, nor two probe loops of one agent, and no probe of
// this term lands in the next term's tables. The observations and lease
// counts are dropped, as they belong to this term only.
func (s *Server) revokeLeadership() {
	s.termTasks().wait()
	s.endLeaderTerm()
	s.probes.reset()
	s.leases.reset()
	s.primaries.reset()
	s.logger.Debug("leadership revoked")
}

// setLeaderTerm starts a term: its context, when it began, no executions
// claimed, and a new set of term goroutines.
func (s *Server) setLeaderTerm(ctx context.Context, since time.Time) {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	s.leaderCtx, s.leaderSince, s.executing = ctx, since, map[string]bool{}
	s.tasks = &termTasks{}
}

// endLeaderTerm forgets the term: no context, no executions claimed.
func (s *Server) endLeaderTerm() {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	s.leaderCtx, s.leaderSince, s.executing, s.tasks = nil, time.Time{}, nil, nil
}

func (s *Server) leaderSinceTime() time.Time {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	return s.leaderSince
}

// termTasks returns the current term's goroutines, nil while not leading.
func (s *Server) termTasks() *termTasks {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	return s.tasks
}

// goLeader runs f in a goroutine of the current term, which
// revokeLeadership waits for; f must return once the leadership context
// ends. It reports false, and runs nothing, when no term runs or the
// term is ending. Every goroutine leader-only work starts goes through it,
// or is waited for by one that did (a prober's probe loops, an executor's
// steps).
func (s *Server) goLeader(f func()) bool {
	return s.termTasks().goFunc(f)
}

// termTasks counts the goroutines of one term of leadership. Once wait
// has begun it starts nothing more, so none can slip in after the count
// drained (a WaitGroup alone would let an Add race its Wait).
type termTasks struct {
	mu      sync.Mutex
	closed  bool
	running int
	wg      sync.WaitGroup
}

// goFunc runs f in a counted goroutine unless the term is ending; a nil
// termTasks (no term) runs nothing.
func (g *termTasks) goFunc(f func()) bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.running++
	g.wg.Add(1)
	go func() {
		defer g.done()
		f()
	}()
	return true
}

func (g *termTasks) done() {
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	g.wg.Done()
}

// wait refuses new goroutines and returns once every counted one ended.
func (g *termTasks) wait() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// count returns how many counted goroutines run.
func (g *termTasks) count() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}

// leaderContext is the current term's context, nil while not leading.
func (s *Server) leaderContext() context.Context {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	return s.leaderCtx
}

// claimExecution reports whether this term may start an executor for id:
// once per execution per term.
func (s *Server) claimExecution(id string) bool {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	if s.executing == nil || s.executing[id] {
		return false
	}
	s.executing[id] = true
	return true
}

// initSites proposes the configured sites unless the state has them.
func (s *Server) initSites() error {
	if s.fsm.view().Initialized {
		return nil
	}
	req := &structs.InitSitesRequest{WriteRequest: s.selfWrite()}
	for _, site := range s.config.Sites {
		req.Sites = append(req.Sites, structs.Site{Name: site.Name, Kind: site.Kind})
		if site.Active {
			req.ActiveSite = site.Name
		}
	}
	_, err := s.raftApply(structs.InitSitesRequestType, req)
	var rejected *structs.RejectedError
	if errors.As(err, &rejected) {
		// Another leader won the race; its sites stand.
		s.logger.Warn("sites not initialized from this server's config", "reason", rejected.Reason)
		return nil
	}
	return err
}

// upsertSelf records this server's addresses if they changed.
func (s *Server) upsertSelf() error {
	self := s.selfRecord()
	if cur, ok := s.fsm.view().Servers[self.ID]; ok && cur == self {
		return nil
	}
	_, err := s.raftApply(structs.UpsertServerRequestType, &structs.UpsertServerRequest{
		WriteRequest: s.selfWrite(),
		Server:       self,
	})
	return err
}

func (s *Server) selfRecord() structs.Server {
	return structs.Server{ID: s.config.NodeID, Site: s.config.Site, Address: s.grpcAddr, RaftAddress: s.raftAddr}
}

// selfWrite is the WriteRequest for commands the server proposes itself.
func (s *Server) selfWrite() structs.WriteRequest {
	return structs.WriteRequest{RequestID: uuid.NewString(), Actor: "server:" + s.config.NodeID}
}

// raftApply proposes a command and waits for it to be applied. A rejected
// compare-and-set comes back as a *structs.RejectedError.
func (s *Server) raftApply(t structs.MessageType, cmd structs.Command) (*structs.ApplyResult, error) {
	cmd.Write().Time = time.Now().UTC()
	buf, err := structs.Encode(t, cmd)
	if err != nil {
		return nil, err
	}
	f := s.raft.Apply(buf, raftApplyTimeout)
	if err := f.Error(); err != nil {
		return nil, err
	}
	res, ok := f.Response().(*structs.ApplyResult)
	if !ok {
		return nil, errors.New("apply " + t.String() + ": unexpected fsm response")
	}
	return res, res.Err()
}

// isRetryableRaftError reports whether a write may be retried elsewhere or
// later with the same request id.
func isRetryableRaftError(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrRaftShutdown) ||
		errors.Is(err, errNoLeader)
}
