package controlplane

import (
	"context"
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
	if prev, ok := t.results[hostID]; ok && prev.renewedUntil.After(r.renewedUntil) {
		r.renewedUntil = prev.renewedUntil
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
			s.probeAgent(ctx, a, v.Epoch, v.ActiveSite)
		}(a)
	}
	wg.Wait()
}

// probeAgent sends one probe and records what came back.
func (s *Server) probeAgent(ctx context.Context, a structs.Agent, epoch uint64, activeSite string) {
	f := s.config.Failover
	req := &pb.ProbeRequest{Epoch: epoch, LeaderId: s.config.NodeID, ActiveSite: activeSite, LeaseTtlMs: uint64(f.LeaseTTL.Milliseconds())}
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
		if renews {
			res.renewedUntil = res.answeredAt.Add(f.LeaseTTL + f.ClockSkewMargin)
		}
	} else {
		s.logger.Debug("probe failed", "host_id", a.HostID, "error", err)
	}
	s.probes.put(a.HostID, res)
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
