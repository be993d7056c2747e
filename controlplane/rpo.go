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

// exposure is the data a failover to a site would lose, judged from the
// prober's observations (DESIGN.md section 7): an upper bound
// (invariant 9).
type exposure struct {
	// seconds is the worst item's exposure; known is false when some
	// item could not be bounded (never observed, never synced, or no
	// instant after which the old primary acknowledges nothing): seconds
	// is then what is lost at least.
	seconds float64
	known   bool
	detail  string
}

// ackBound is the latest instant at which a primary of site may still
// acknowledge a write: when a STONITH hook confirmed the site fenced, or
// else when the last lease this leader (or its predecessor) may have
// granted there lapses, as the lease table counts it (invariant 4). False
// when nothing bounds it: this server counts no leases (it does not
// lead), or site has no data-service hosts; the reason says which.
func (s *Server) ackBound(v stateView, site string, ex *structs.Execution) (time.Time, string, bool) {
	if ex != nil && ex.SiteFence != nil && ex.SiteFence.Site == site {
		return ex.SiteFence.At, "its STONITH hook confirmed " + site + " fenced at " + ex.SiteFence.At.UTC().Format("15:04:05.000"), true
	}
	if ex != nil && ex.DownConfirmed != nil && ex.DownConfirmed.Site == site {
		return ex.DownConfirmed.At, ex.DownConfirmed.By + " confirmed " + site + " down at " + ex.DownConfirmed.At.UTC().Format("15:04:05.000") + " (no STONITH hook)", true
	}
	var hosts []string
	for _, a := range hostsAt(v.Agents, site) {
		for _, svc := range a.Services {
			if svc.Promotable {
				hosts = append(hosts, a.HostID)
				break
			}
		}
	}
	until, ok := s.leases.siteBound(hosts)
	if !ok {
		return time.Time{}, "no lease of " + site + " is counted by this server (it does not lead), so nothing bounds when its primary stops acknowledging writes", false
	}
	return until, "its primary may acknowledge writes until its lease lapses at " + until.UTC().Format("15:04:05.000"), true
}

// rpoExposure judges how much data a failover to site would lose, the
// writes acknowledged at the active site up to ackBound that site's
// standbys may lack. A standby the replicated state records as
// synchronous for the current primary (invariant 8) lacks none. For any
// other promotable service there: ackBound minus the newest instant at
// which the leader saw its primary at a position the standby has since
// replayed; without such an observation, when it replayed all it
// received, minus when it last heard from its primary; otherwise minus
// the newest write it replayed. For each sync block there, ackBound minus
// its last completed sync. ex is the execution being judged, nil for the
// live figure; without a bound, the figures count up to now and are
// unknown.
func (s *Server) rpoExposure(site string, ex *structs.Execution) exposure {
	return s.exposureOf(site, ex, "")
}

// exposureOf is rpoExposure of one data service's standbys (and no sync
// blocks), or of everything when service is "".
func (s *Server) exposureOf(site string, ex *structs.Execution, service string) exposure {
	v := s.fsm.view()
	now := time.Now()
	out := exposure{known: true}
	bound, boundWhy, bounded := s.ackBound(v, v.ActiveSite, ex)
	if !bounded || site == v.ActiveSite {
		// Nothing bounds the writes (the figures are then unknown, see
		// below), or the site judged is the one writing: up to now.
		bound = now
	}
	var parts []string
	worst := func(sec float64, what string) {
		parts = append(parts, fmt.Sprintf("%s %.1fs", what, sec))
		out.seconds = max(out.seconds, sec)
	}
	unknown := func(what, why string) {
		parts = append(parts, fmt.Sprintf("%s unknown (%s)", what, why))
		out.known = false
	}
	lossUntilBound := false
	for _, a := range hostsAt(v.Agents, site) {
		r, _ := s.probes.get(a.HostID)
		for _, svc := range a.Services {
			if !svc.Promotable || service != "" && svc.Name != service {
				continue
			}
			what := svc.Name + "@" + a.HostID
			st := serviceStatusOf(r.lastResp, svc.Name)
			if rec, ok := s.fsm.syncReplication(svc.Name); ok && s.synchronousFor(v, rec, a.HostID) {
				worst(0, what+" (synchronous standby of "+rec.Primary+" since "+rec.UpdatedAt.UTC().Format("15:04:05.000")+")")
				continue
			}
			lossUntilBound = true
			if st == nil {
				unknown(what, "never observed by this leader")
				continue
			}
			if st.GetRole() == pb.ServiceRole_SERVICE_ROLE_PRIMARY {
				if site == v.ActiveSite {
					worst(0, what+" (primary)")
				} else {
					// A primary outside the active site is an old one
					// (fenced, or last heard of before its site was
					// lost): it follows nothing written since.
					unknown(what, "last seen as a primary of an earlier epoch, not as a standby of the current one")
				}
				continue
			}
			rep := st.GetReplication()
			if at, ok := s.primaries.replicatedAsOf(svc.Name, rep.GetPosition()); ok {
				// Everything its primary had written when observed at
				// `at` is replayed here; only later writes are at risk.
				worst(max(0, bound.Sub(at).Seconds()), what+" (replayed all its primary had written "+at.UTC().Format("15:04:05.000")+")")
				continue
			}
			if rep.GetLagBytes() == 0 && rep.GetLastReceivedAt() != nil {
				// It replayed all it received, and it last heard from
				// its primary then: only later writes are at risk.
				worst(max(0, bound.Sub(rep.GetLastReceivedAt().AsTime()).Seconds()), what+" (replayed all it received)")
				continue
			}
			if rep.GetLastReplayAt() == nil {
				unknown(what, "no replayed transaction yet")
				continue
			}
			worst(max(0, bound.Sub(rep.GetLastReplayAt().AsTime()).Seconds()), what)
		}
		for _, sy := range r.lastResp.GetSyncs() {
			if service != "" {
				break
			}
			what := "sync " + sy.GetName() + "@" + a.HostID
			if sy.GetExcludeFromRpo() {
				if at := sy.GetLastSuccessAt(); at != nil {
					parts = append(parts, fmt.Sprintf("%s %.1fs old, not counted (exclude_from_rpo)", what, max(0, bound.Sub(at.AsTime()).Seconds())))
				}
				continue
			}
			lossUntilBound = true
			if sy.GetLastSuccessAt() == nil {
				unknown(what, "never synced")
				continue
			}
			worst(max(0, bound.Sub(sy.GetLastSuccessAt().AsTime()).Seconds()), what)
		}
	}
	if lossUntilBound && site != v.ActiveSite {
		if !bounded {
			out.known = false
			parts = append(parts, "counted up to now, and growing: "+boundWhy)
		} else {
			parts = append(parts, "counted up to "+bound.UTC().Format("15:04:05.000")+": "+boundWhy)
		}
	}
	out.detail = strings.Join(parts, "; ")
	return out
}

// synchronousFor reports whether rec records host as holding every commit
// of the current primary: rec is of this epoch, its primary is at the
// active site, and the leader has not degraded it to async.
func (s *Server) synchronousFor(v stateView, rec structs.SyncReplication, host string) bool {
	if rec.Epoch != v.Epoch || rec.Degraded() || !rec.IsSynchronous(host) {
		return false
	}
	for _, a := range hostsAt(v.Agents, v.ActiveSite) {
		if a.HostID == rec.Primary {
			return true
		}
	}
	return false
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
	exp := s.rpoExposure(site, &ex)
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
		return fmt.Sprintf("unknown (at least %.1fs)", e.seconds)
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
