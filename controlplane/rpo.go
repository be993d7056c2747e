package controlplane

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// exposure is the data a failover to a site would lose at one instant,
// judged from the prober's observations (DESIGN.md section 7).
type exposure struct {
	// seconds is the worst item's exposure; known is false when some
	// item could not be judged (never observed, never synced).
	seconds float64
	known   bool
	detail  string
}

// rpoExposure judges, at now, how much data a failover to site would lose:
// for each promotable service there, now minus the newest instant at
// which the leader saw its primary at a position the standby has since
// replayed; without such an observation, when it replayed all it
// received, now minus when it last heard from its primary; otherwise now
// minus the newest write it replayed. For each sync
// block there, now minus its last completed sync.
func (s *Server) rpoExposure(site string, now time.Time) exposure {
	v := s.fsm.view()
	out := exposure{known: true}
	var parts []string
	worst := func(sec float64, what string) {
		parts = append(parts, fmt.Sprintf("%s %.1fs", what, sec))
		out.seconds = max(out.seconds, sec)
	}
	unknown := func(what, why string) {
		parts = append(parts, fmt.Sprintf("%s unknown (%s)", what, why))
		out.known = false
	}
	for _, a := range hostsAt(v.Agents, site) {
		r, _ := s.probes.get(a.HostID)
		for _, svc := range a.Services {
			if !svc.Promotable {
				continue
			}
			what := svc.Name + "@" + a.HostID
			st := serviceStatusOf(r.lastResp, svc.Name)
			if st == nil {
				unknown(what, "never observed by this leader")
				continue
			}
			if st.GetRole() == pb.ServiceRole_SERVICE_ROLE_PRIMARY {
				worst(0, what+" (primary)")
				continue
			}
			rep := st.GetReplication()
			if at, ok := s.primaries.replicatedAsOf(svc.Name, rep.GetPosition()); ok {
				// Everything its primary had written when observed at
				// `at` is replayed here; only later writes are at risk.
				worst(max(0, now.Sub(at).Seconds()), what+" (replayed all its primary had written "+at.UTC().Format("15:04:05.000")+")")
				continue
			}
			if rep.GetLagBytes() == 0 && rep.GetLastReceivedAt() != nil {
				// It replayed all it received, and it last heard from
				// its primary then: only later writes are at risk.
				worst(max(0, now.Sub(rep.GetLastReceivedAt().AsTime()).Seconds()), what+" (replayed all it received)")
				continue
			}
			if rep.GetLastReplayAt() == nil {
				unknown(what, "no replayed transaction yet")
				continue
			}
			worst(max(0, now.Sub(rep.GetLastReplayAt().AsTime()).Seconds()), what)
		}
		for _, sy := range r.lastResp.GetSyncs() {
			what := "sync " + sy.GetName() + "@" + a.HostID
			if sy.GetLastSuccessAt() == nil {
				unknown(what, "never synced")
				continue
			}
			worst(max(0, now.Sub(sy.GetLastSuccessAt().AsTime()).Seconds()), what)
		}
	}
	out.detail = strings.Join(parts, "; ")
	return out
}

// primaryHistory remembers, per service, the WAL positions the leader saw
// its primaries at and when: the RPO of a standby is judged against the
// newest of them it has replayed. It lives in the leader's memory only.
type primaryHistory struct {
	mu  sync.Mutex
	obs map[string][]positionAt
}

type positionAt struct {
	pos uint64
	at  time.Time
}

// primaryHistoryWindow is how far back observations are kept: a standby
// further behind is judged by its own timestamps.
const primaryHistoryWindow = 5 * time.Minute

func newPrimaryHistory() *primaryHistory { return &primaryHistory{obs: map[string][]positionAt{}} }

// record notes the primaries in a probe answer.
func (h *primaryHistory) record(resp *pb.ProbeResponse, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, st := range resp.GetServices() {
		pos, ok := parseLSN(st.GetReplication().GetPosition())
		if st.GetRole() != pb.ServiceRole_SERVICE_ROLE_PRIMARY || !ok {
			continue
		}
		list := append(h.obs[st.GetName()], positionAt{pos: pos, at: at})
		for len(list) > 0 && at.Sub(list[0].at) > primaryHistoryWindow {
			list = list[1:]
		}
		h.obs[st.GetName()] = list
	}
}

// replicatedAsOf returns the newest time a primary of service was seen at
// a position at or before replayed.
func (h *primaryHistory) replicatedAsOf(service, replayed string) (time.Time, bool) {
	r, ok := parseLSN(replayed)
	if !ok {
		return time.Time{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var best time.Time
	for _, o := range h.obs[service] {
		if o.pos <= r && o.at.After(best) {
			best = o.at
		}
	}
	return best, !best.IsZero()
}

func (h *primaryHistory) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.obs = map[string][]positionAt{}
}

func serviceStatusOf(resp *pb.ProbeResponse, name string) *pb.ServiceStatus {
	for _, st := range resp.GetServices() {
		if st.GetName() == name {
			return st
		}
	}
	return nil
}

func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | l, true
}

// rpoGuard is invariant 7: it fails when the target's exposure exceeds
// max_data_loss, or cannot be judged, unless the execution allows data
// loss.
func (s *Server) rpoGuard(ctx context.Context, execID string, step plan.Step) (string, error) {
	ex, _ := s.fsm.execution(execID)
	site := step.Args["site"]
	if site == "" {
		site = ex.To
	}
	s.awaitObservations(ctx, site)
	limit := ex.Plan.MaxDataLoss
	exp := s.rpoExposure(site, ex.TriggeredAt)
	switch {
	case exp.known && exp.seconds <= limit.Seconds():
		return fmt.Sprintf("expected data loss %.1fs within max_data_loss %s (%s)", exp.seconds, limit, exp.detail), nil
	case ex.AllowDataLoss:
		return fmt.Sprintf("expected data loss %s beyond max_data_loss %s, allowed by --allow-data-loss (%s)", exposureText(exp), limit, exp.detail), nil
	}
	return "", fmt.Errorf("RPO guard: expected data loss %s exceeds max_data_loss %s (%s); run again with --allow-data-loss to accept it", exposureText(exp), limit, exp.detail)
}

// awaitObservations gives a new leader time to hear from every agent of
// site once, so it judges an exposure on what it observed rather than
// refusing for lack of observations: it returns once each has answered a
// probe of this term, or at the deadline. A leader that just restarted,
// as after a quorum-loss recovery, dials every agent anew, which on a
// loaded machine takes a few rounds; only a dead host of the target site
// makes it wait until the deadline. An empty site means every agent.
func (s *Server) awaitObservations(ctx context.Context, site string) {
	f := s.config.Failover
	deadline := s.leaderSinceTime().Add(max(2*f.FailoverTimeout, 10*(f.ProbeInterval+f.ProbeTimeout)))
	for time.Now().Before(deadline) {
		missing := false
		for _, a := range s.fsm.view().Agents {
			if r, ok := s.probes.get(a.HostID); (!ok || r.lastResp == nil) && (site == "" || a.Site == site) {
				missing = true
			}
		}
		if !missing {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.ProbeInterval / 4):
		}
	}
}

func exposureText(e exposure) string {
	if !e.known {
		return "unknown"
	}
	return fmt.Sprintf("%.1fs", e.seconds)
}

// waitLeases waits until no agent of the old site can still hold a lease
// (invariant 4), as the lease table counts them: after the last renewal
// this leader could have delivered, and after this leader's election for
// those a predecessor may have delivered. Hosts whose fence step of this
// execution succeeded have stopped their primaries and are not waited for.
func (s *Server) waitLeases(ctx context.Context, execID string, step plan.Step) (string, error) {
	ex, _ := s.fsm.execution(execID)
	site := step.Args["site"]
	if site == "" {
		site = ex.From
	}
	var waited []string
	for _, a := range hostsAt(s.fsm.view().Agents, site) {
		if !fencedIn(&ex, a.HostID) {
			waited = append(waited, a.HostID)
		}
	}
	if len(waited) == 0 {
		return "every host of " + site + " confirmed its fence", nil
	}
	d, err := s.leases.waitLapsed(ctx, waited)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("leases of %s lapsed (waited %s)", strings.Join(waited, ", "), d.Round(time.Millisecond)), nil
}

// fencedIn reports whether a fence step of ex on host succeeded.
func fencedIn(ex *structs.Execution, host string) bool {
	for i, st := range ex.Plan.Steps {
		if st.Action == plan.ActionFence && st.Host == host && st.Target == "" && ex.Steps[i].State == structs.StepSucceeded {
			return true
		}
	}
	return false
}
