package controlplane

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// probeResult is the leader's latest observation of one agent.
type probeResult struct {
	sentAt     time.Time
	answeredAt time.Time // zero when the last probe failed
	resp       *pb.ProbeResponse
	err        error
	// renewedUntil is the latest instant until which a lease this leader
	// granted the agent may still run (DESIGN.md section 5): response
	// time + lease_ttl + clock_skew_margin for an answered renewal, or send
	// time + probe timeout + lease_ttl + clock_skew_margin for one whose
	// answer never came back.
	renewedUntil time.Time
	// lastResp and lastAnsweredAt are the newest answer, kept across
	// failed probes: the RPO of a failover is judged from what the lost
	// site last reported.
	lastResp       *pb.ProbeResponse
	lastAnsweredAt time.Time
	// firstMissAt is the send time of the first failed probe since the
	// last answer: when the host went silent, the trigger time of an
	// automatic failover.
	firstMissAt time.Time
}

// probeTable holds the prober's results, in the leader's memory only.
type probeTable struct {
	mu      sync.Mutex
	results map[string]probeResult
}

func newProbeTable() *probeTable { return &probeTable{results: map[string]probeResult{}} }

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
	if ok && prev.renewedUntil.After(r.renewedUntil) {
		r.renewedUntil = prev.renewedUntil
	}
	if r.resp != nil {
		r.lastResp, r.lastAnsweredAt = r.resp, r.answeredAt
	} else {
		r.firstMissAt = r.sentAt
		if ok {
			r.lastResp, r.lastAnsweredAt = prev.lastResp, prev.lastAnsweredAt
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
}

// runProber probes every registered agent every probe_interval while this
// server leads, renewing the leases of the active site's agents.
func (s *Server) runProber(ctx context.Context) {
	t := time.NewTicker(s.config.Failover.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Renew only while still leader: a deposed leader that kept
		// renewing would keep a fenced site's lease alive (invariant 4).
		if err := s.raft.VerifyLeader().Error(); err != nil {
			s.logger.Warn("not renewing leases: leadership not confirmed", "error", err)
			continue
		}
		s.probeRound(ctx)
		s.detect(ctx)
	}
}

// probeRound probes all agents concurrently and waits for the round.
func (s *Server) probeRound(ctx context.Context) {
	v := s.fsm.view()
	var wg sync.WaitGroup
	for _, a := range v.Agents {
		wg.Add(1)
		go func(a structs.Agent) {
			defer wg.Done()
			s.probeAgent(ctx, a, v.Agents, v.Epoch, v.ActiveSite)
		}(a)
	}
	wg.Wait()
}

// probeAgent sends one probe and records what came back.
func (s *Server) probeAgent(ctx context.Context, a structs.Agent, agents []structs.Agent, epoch uint64, activeSite string) {
	f := s.config.Failover
	req := &pb.ProbeRequest{Epoch: epoch, LeaderId: s.config.NodeID, ActiveSite: activeSite, LeaseTtlMs: uint64(f.LeaseTTL.Milliseconds()),
		SyncSources: syncSources(a, agents, activeSite)}
	res := probeResult{sentAt: time.Now()}
	renews := a.Site == activeSite
	if renews {
		// Until the answer arrives, assume the renewal landed at the
		// latest instant it could have.
		res.renewedUntil = res.sentAt.Add(f.ProbeTimeout + f.LeaseTTL + f.ClockSkewMargin)
	}
	conn, err := s.agentConns.get(a.Address)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, f.ProbeTimeout)
		res.resp, err = pb.NewHostAgentClient(conn).Probe(pctx, req)
		cancel()
	}
	res.err = err
	if err == nil {
		res.answeredAt = time.Now()
		// The probe was answered between sentAt and answeredAt; the
		// primary's position was read in between, so sentAt is when it
		// had written at least that much.
		s.primaries.record(res.resp, res.sentAt)
		if renews {
			res.renewedUntil = res.answeredAt.Add(f.LeaseTTL + f.ClockSkewMargin)
		}
	} else {
		s.logger.Debug("probe failed", "host_id", a.HostID, "error", err)
	}
	s.probes.put(a.HostID, res)
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
		out.LeaseValid, out.LeaseRemainingMs = resp.GetLease().GetValid(), resp.GetLease().GetRemainingMs()
		out.Services, out.Syncs, out.LastSeen = resp.GetServices(), resp.GetSyncs(), resp.GetNow()
	}
	return out
}
