package controlplane

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// probeResult is the leader's latest observation of one agent.
type probeResult struct {
	// probeID is the probe's ProbeRequest.probe_id.
	probeID    uint64
	sentAt     time.Time
	answeredAt time.Time // zero when the last probe failed
	resp       *pb.ProbeResponse
	err        error
	// lastResp and lastAnsweredAt are the newest answer, kept across
	// failed probes: the RPO of a failover is judged from what the lost
	// site last reported.
	lastResp       *pb.ProbeResponse
	lastAnsweredAt time.Time
	// lastAnsweredSent is the send time of that answer's probe: the host
	// was surely alive after it, the earliest sure sign of life, which an
	// outage is measured from (see outageEvidence).
	lastAnsweredSent time.Time
	// firstMissAt is the send time of the first failed probe since the
	// last answer: when the host went silent, the trigger time of an
	// automatic failover.
	firstMissAt time.Time
}

// probeTable holds the prober's results, in the leader's memory only.
type probeTable struct {
	mu      sync.Mutex
	results map[string]probeResult
	// failed counts each host's failed probes, for the metrics.
	failed map[string]uint64
}

func newProbeTable() *probeTable {
	return &probeTable{results: map[string]probeResult{}, failed: map[string]uint64{}}
}

// failures is how many probes of hostID failed since this server leads.
func (t *probeTable) failures(hostID string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed[hostID]
}

func (t *probeTable) get(hostID string) (probeResult, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.results[hostID]
	return r, ok
}

func (t *probeTable) put(hostID string, r probeResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	prev, ok := t.results[hostID]
	if r.err != nil {
		t.failed[hostID]++
	}
	if ok && r.sentAt.Before(prev.sentAt) {
		// A probe sent before the latest one ended late, on a connection
		// the prober gave up: its answer counts if newer (its renewal is
		// the lease table's), but it says nothing newer about the host's
		// silence.
		if r.resp != nil && r.answeredAt.After(prev.lastAnsweredAt) {
			prev.lastResp, prev.lastAnsweredAt = r.resp, r.answeredAt
		}
		if r.resp != nil && r.sentAt.After(prev.lastAnsweredSent) {
			prev.lastAnsweredSent = r.sentAt
		}
		t.results[hostID] = prev
		return
	}
	if r.resp != nil {
		r.lastResp, r.lastAnsweredAt, r.lastAnsweredSent = r.resp, r.answeredAt, r.sentAt
	} else {
		r.firstMissAt = r.sentAt
		if ok {
			r.lastResp, r.lastAnsweredAt, r.lastAnsweredSent = prev.lastResp, prev.lastAnsweredAt, prev.lastAnsweredSent
			if !prev.firstMissAt.IsZero() {
				r.firstMissAt = prev.firstMissAt
			}
		}
	}
	t.results[hostID] = r
}

func (t *probeTable) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.results = map[string]probeResult{}
	t.failed = map[string]uint64{}
}

// runProber runs one probe loop per registered agent while this server
// leads, so that an agent slow to answer, or unreachable, delays no other
// agent's renewal, and judges the active site every probe_interval. It
// starts right after the new leader's Barrier: the first renewals go out
// at once, not one probe_interval later, since the active site's leases
// have been running out since the old leader's last renewal.
func (s *Server) runProber(ctx context.Context) {
	loops := map[string]*probeLoopHandle{}
	rs := newRestarter()
	defer func() {
		for _, l := range loops {
			l.stop()
		}
	}()
	t := time.NewTicker(s.config.Failover.ProbeInterval)
	defer t.Stop()
	for {
		s.syncProbeLoops(ctx, loops, rs)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Without confirmed leadership the loops observe nothing, and
		// their silence must not be judged.
		if err := s.verifyLeader(ctx); err != nil {
			s.logger.Warn("not judging the active site: leadership not confirmed", "error", err)
			continue
		}
		s.detect(ctx, rs)
	}
}

// probeLoopHandle is one agent's running probe loop.
type probeLoopHandle struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

func (l *probeLoopHandle) stop() {
	l.cancel()
	<-l.done
}

// syncProbeLoops starts a probe loop for every registered agent that has
// none, and stops the loops of agents gone or moved to another address.
func (s *Server) syncProbeLoops(ctx context.Context, loops map[string]*probeLoopHandle, rs *restarter) {
	agents := map[string]string{}
	for _, a := range s.fsm.view().Agents {
		agents[a.HostID] = a.Address
	}
	for id, l := range loops {
		if agents[id] != l.addr {
			l.stop()
			delete(loops, id)
		}
	}
	for id, addr := range agents {
		if _, ok := loops[id]; ok {
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		l := &probeLoopHandle{addr: addr, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(l.done)
			s.probeLoop(lctx, id, addr, rs)
		}()
		loops[id] = l
	}
}

// probeConn is one connection of a probe loop; it carries one probe at a
// time.
type probeConn struct {
	cc   *grpc.ClientConn
	busy bool
}

// probeDone is the end of one probe.
type probeDone struct {
	pc  *probeConn
	res probeResult
	// ready is whether the connection was up when the probe was sent.
	ready bool
}

// probeLoop probes one agent until ctx ends: every probe_interval while it
// answers. A probe left unanswered for probe_interval, or failed, gives up
// its connection and the next probe goes out on a new one: a connection
// whose packets were lost (a flapping link) waits out TCP's retransmission
// backoff, seconds, while a new one reaches the agent as soon as the link
// is back. The probe in flight on the old connection still runs to its
// deadline, so a slow answer is not lost.
func (s *Server) probeLoop(ctx context.Context, hostID, addr string, rs *restarter) {
	f := s.config.Failover
	done := make(chan probeDone)
	var cur *probeConn
	inflight := 0
	defer func() {
		for ; inflight > 0; inflight-- {
			d := <-done
			if d.pc != cur {
				_ = d.pc.cc.Close()
			}
		}
		if cur != nil {
			_ = cur.cc.Close()
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var gate renewalGate
	for _, a := range s.fsm.view().Agents {
		if a.HostID == hostID {
			gate.anchoring = a.LeaseAnchors
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-done:
			inflight--
			d.pc.busy = false
			first := gate.last.resp == nil
			gate.ended(d.res)
			if d.pc != cur {
				_ = d.pc.cc.Close()
				continue
			}
			if first && gate.next().anchor != 0 {
				// The first answer of the term, or the first after a
				// miss: renew on it at once, not one probe_interval
				// later (the connection is free: its probe just ended).
				timer.Reset(0)
				continue
			}
			if d.res.err != nil && d.ready && connBroken(d.res.err) {
				_ = cur.cc.Close()
				cur = nil
				// Try again on a new connection soon, but not in a
				// tight loop against a host that refuses connections.
				timer.Reset(time.Until(d.res.sentAt.Add(f.ProbeInterval / 4)))
			}
			continue
		case <-timer.C:
		}
		if cur != nil && cur.busy {
			if cur.cc.GetState() != connectivity.Ready {
				// Still connecting: gRPC redials by itself and sends the
				// waiting probe once connected; a new connection would
				// only start its handshake over.
				timer.Reset(f.ProbeInterval)
				continue
			}
			// Unanswered for probe_interval on a connection that is up:
			// give it up; it closes when its probe ends. Whether the next
			// probe renews still depends on the last probe that ended: a
			// host that is only slow keeps its lease.
			s.logger.Debug("probe unanswered for probe_interval: probing on a new connection", "host_id", hostID)
			cur = nil
		}
		if cur == nil {
			cc, err := s.agentConns.fresh(addr, probeDialOptions(f.ProbeInterval, f.ProbeTimeout, s.agentConns.dial)...)
			if err != nil {
				s.logger.Error("failed to create probe connection", "host_id", hostID, "error", err)
				timer.Reset(f.ProbeInterval)
				continue
			}
			cur = &probeConn{cc: cc}
		}
		cur.busy = true
		inflight++
		go func(pc *probeConn, r renewal) {
			ready := pc.cc.GetState() == connectivity.Ready
			res := s.probeOnce(ctx, pc.cc, hostID, rs, r)
			done <- probeDone{pc: pc, res: res, ready: ready}
		}(cur, gate.next())
		timer.Reset(f.ProbeInterval)
	}
}

// renewal is what a probe grants: nothing, a lease counted from the
// agent's receipt of the probe itself (unanchored), or one counted from
// its receipt of an earlier probe whose answer came back (anchored).
type renewal struct {
	renew bool
	// anchor is the probe_id of the anchoring probe and anchorAnswered
	// the arrival of its answer; zero for an unanchored renewal.
	anchor         uint64
	anchorAnswered time.Time
}

// renewalGate decides what a probe loop's next probe renews: nothing when
// the newest probe that ended (by send time) went unanswered, so that a
// silent host's lease bound stops growing at its first miss (see
// probeAgent); otherwise a lease anchored on that answered probe when its
// agent said it honours anchors, or else an unanchored one. A probe
// merely slow to answer changes nothing: a host that answers late still
// answers, and keeps its lease. Before any probe ended, an agent
// registered as honouring anchors gets a probe that renews nothing, and
// the renewal anchored on it right after its answer: a leader sends such
// an agent no unanchored renewal, which is what lets the next leader count
// its leases without the RPC deadline (leaseTable).
type renewalGate struct {
	anchoring bool
	last      probeResult
}

// ended records the end of a probe (a zero sentAt: none was sent).
func (g *renewalGate) ended(r probeResult) {
	if r.sentAt.IsZero() || r.sentAt.Before(g.last.sentAt) {
		return
	}
	g.last = r
}

// next returns what the next probe renews.
func (g *renewalGate) next() renewal {
	switch {
	case g.last.sentAt.IsZero() && g.anchoring:
		return renewal{}
	case g.last.sentAt.IsZero():
		return renewal{renew: true}
	case g.last.err != nil:
		return renewal{}
	case g.last.resp.GetLeaseAnchors() && g.last.probeID != 0:
		return renewal{renew: true, anchor: g.last.probeID, anchorAnswered: g.last.answeredAt}
	}
	return renewal{renew: true}
}

// connBroken reports whether a failed probe says its connection is of no
// more use; an answer refusing the probe (a stale epoch, say) does not.
func connBroken(err error) bool {
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.PermissionDenied, codes.InvalidArgument, codes.Unimplemented:
		return false
	}
	return true
}

// probeOnce confirms this server still leads and probes hostID once over
// cc, renewing its lease as r says, then restarts in place what the
// answer shows fenced by a lapsed lease, if anything. It returns the
// probe's result (a zero sentAt when none was sent).
func (s *Server) probeOnce(ctx context.Context, cc *grpc.ClientConn, hostID string, rs *restarter, r renewal) probeResult {
	// Renew only while still leader: a deposed leader that kept renewing
	// would keep a fenced site's lease alive (invariant 4).
	if err := s.verifyLeader(ctx); err != nil {
		s.logger.Warn("not renewing lease: leadership not confirmed", "host_id", hostID, "error", err)
		return probeResult{}
	}
	v := s.fsm.view()
	for _, a := range v.Agents {
		if a.HostID == hostID {
			res := s.probeAgent(ctx, cc, a, v.Agents, v.Epoch, v.ActiveSite, r)
			if res.err == nil {
				s.restartFencedInPlace(ctx, rs, a, res.resp, v.Epoch, v.ActiveSite)
				s.watchPrimaries(ctx, rs, a, res, v.Epoch, v.ActiveSite)
			}
			return res
		}
	}
	return probeResult{}
}

// probeAgent sends one probe and records what came back: the observation
// in the probe table and, for an agent of the active site when r renews,
// the renewal in the lease table (invariant 4).
//
// A probe that follows an unanswered one carries no renewal (lease_ttl_ms
// 0): the agent still learns the epoch and the active site and answers,
// and the probe after an answer renews again. An anchored renewal runs
// from the agent's receipt of the answered probe it names, so the leader
// counts it from that answer's arrival, a bound it knows before sending;
// an unanchored one (an agent that does not anchor, or the first probe of
// a term) may land as late as the RPC deadline. A host that went silent
// thus holds at most the lease of its last answered probe, or of the
// first unanswered one, and its lease lapses while the detector still
// waits out failover_timeout, instead of after.
func (s *Server) probeAgent(ctx context.Context, cc *grpc.ClientConn, a structs.Agent, agents []structs.Agent, epoch uint64, activeSite string, r renewal) probeResult {
	f := s.config.Failover
	renews := a.Site == activeSite && r.renew
	anchored := renews && r.anchor != 0
	ttl := f.LeaseTTL
	if a.Site == activeSite && !r.renew {
		ttl = 0
	}
	req := &pb.ProbeRequest{Epoch: epoch, LeaderId: s.config.NodeID, ActiveSite: activeSite, LeaseTtlMs: uint64(ttl.Milliseconds()),
		SyncSources: syncSources(a, agents, activeSite), ProbeId: s.probeIDs.Add(1)}
	res := probeResult{probeID: req.ProbeId, sentAt: s.clock.Now()}
	switch {
	case anchored:
		// Counted before sending: the agent received the anchoring probe
		// before its answer arrived here.
		req.LeaseAnchor = r.anchor
		s.leases.answered(a.HostID, r.anchorAnswered)
	case renews:
		// Counted from now: the renewal may land before the answer.
		defer s.leases.sending(a.HostID, res.sentAt)()
	}
	pctx, cancel := context.WithTimeout(ctx, f.ProbeTimeout)
	res.resp, res.err = pb.NewHostAgentClient(cc).Probe(pctx, req)
	cancel()
	if res.err != nil && ctx.Err() != nil {
		// The term or the loop ended, not the agent's answer: no
		// observation, but the renewal may still have landed.
		if renews && !anchored {
			s.leases.unanswered(a.HostID, res.sentAt)
		}
		return res
	}
	if res.err == nil {
		res.answeredAt = s.clock.Now()
		// A lease the agent holds that this term did not grant (its
		// boot window) counts too (invariant 4).
		s.leases.report(a.HostID, res.sentAt, res.answeredAt, time.Duration(res.resp.GetLease().GetRemainingMs())*time.Millisecond)
		// The probe was answered between sentAt and answeredAt; the
		// primary's position was read in between, so sentAt is when it
		// had written at least that much.
		s.primaries.record(res.resp, res.sentAt)
	} else {
		s.logger.Debug("probe failed", "host_id", a.HostID, "error", res.err)
	}
	if renews && !anchored {
		s.recordRenewal(a.HostID, res)
	}
	s.probes.put(a.HostID, res)
	return res
}

// recordRenewal counts the renewal res carried in the lease table.
func (s *Server) recordRenewal(hostID string, res probeResult) {
	if res.err == nil {
		s.leases.answered(hostID, res.answeredAt)
		return
	}
	s.leases.unanswered(hostID, res.sentAt)
}

// syncSources maps each sync block of a, when a is outside the active
// site, to the first active-site agent (by host id) declaring the same
// block.
func syncSources(a structs.Agent, agents []structs.Agent, activeSite string) map[string]string {
	if a.Site == activeSite || len(a.Syncs) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, src := range agents { // sorted by host id
		if src.Site != activeSite {
			continue
		}
		for _, name := range src.Syncs {
			if _, ok := out[name]; !ok && slices.Contains(a.Syncs, name) {
				out[name] = src.Address
			}
		}
	}
	return out
}

// agentProbe turns the latest probe of hostID into its API form.
func (s *Server) agentProbe(hostID string) *pb.AgentProbe {
	r, ok := s.probes.get(hostID)
	if !ok {
		return nil
	}
	out := &pb.AgentProbe{Reachable: r.err == nil}
	if r.err != nil {
		out.Error = r.err.Error()
	}
	if resp := r.resp; resp != nil {
		out.Epoch, out.Fenced, out.FenceReason = resp.GetEpoch(), resp.GetFenced(), resp.GetFenceReason()
		out.LeaseValid, out.LeaseRemainingMs, out.LeaseGranted = resp.GetLease().GetValid(), resp.GetLease().GetRemainingMs(), resp.GetLease().GetGranted()
		out.Services, out.Syncs, out.LastSeen = resp.GetServices(), resp.GetSyncs(), resp.GetNow()
		out.Problems, out.Backups = resp.GetProblems(), resp.GetBackups()
	}
	return out
}
