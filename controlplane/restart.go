package controlplane

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
)

// restartInPlaceTimeout bounds one restart in place: a start and, when the
// service declares one, its health check.
const restartInPlaceTimeout = 2 * time.Minute

// restarter rate-limits restarts in place during one leader term: one
// attempt at a time per service, and at most one per failover_timeout. It
// also keeps the term's watch on the active site's primaries (see
// watchPrimaries).
type restarter struct {
	mu      sync.Mutex
	last    map[string]time.Time
	running map[string]bool
	// primaryOn is, per data service, the host last seen running it as
	// primary this term, and primarySeen when (the probe's send time).
	primaryOn   map[string]string
	primarySeen map[string]time.Time
	// down are the primaries seen stopped since, by service.
	down map[string]downPrimary
}

// downPrimary is a data service that ran as primary on an active-site host
// this term and is now reported stopped there, its agent answering: a
// crashed database, which the leader restarts in place.
type downPrimary struct {
	host, service string
	// lastPrimary is the send time of the last probe that found it
	// primary: it went down after that. since is the send time of the
	// first probe that found it stopped.
	lastPrimary, since time.Time
	// restartFailed is why the last restart in place failed; "" while
	// none has. failures counts failed restarts in a row.
	restartFailed string
	failures      int
	// hostSilent is set when the host went silent after the probe that
	// last found the service primary: it may have crashed first.
	hostSilent bool
}

func newRestarter() *restarter {
	return &restarter{last: map[string]time.Time{}, running: map[string]bool{},
		primaryOn: map[string]string{}, primarySeen: map[string]time.Time{}, down: map[string]downPrimary{}}
}

// sawPrimary records that host runs service as primary, per the probe
// sent at sentAt.
func (r *restarter) sawPrimary(host, service string, sentAt time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sentAt.Before(r.primarySeen[service]) {
		return
	}
	r.primaryOn[service], r.primarySeen[service] = host, sentAt
	delete(r.down, service)
}

// sawStopped records that host reports service stopped, per the probe
// sent at sentAt, and returns its record when host is where it last ran
// as primary.
func (r *restarter) sawStopped(host, service string, sentAt time.Time) (downPrimary, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.primaryOn[service] != host || !sentAt.After(r.primarySeen[service]) {
		return downPrimary{}, false
	}
	d, ok := r.down[service]
	if !ok {
		d = downPrimary{host: host, service: service, lastPrimary: r.primarySeen[service], since: sentAt}
		r.down[service] = d
	}
	return d, true
}

// primariesLastOn returns the data services host was the last to run as
// primary this term, each with the send time of the last probe that found
// it so (lastPrimary) and, when a later probe found it stopped, that
// probe's (since).
func (r *restarter) primariesLastOn(host string) []downPrimary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []downPrimary
	for service, on := range r.primaryOn {
		if on != host {
			continue
		}
		d := downPrimary{host: host, service: service, lastPrimary: r.primarySeen[service]}
		if down, ok := r.down[service]; ok {
			d = down
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b downPrimary) int { return strings.Compare(a.service, b.service) })
	return out
}

// restartFailed records why a restart in place of service failed.
func (r *restarter) restartFailed(service, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.down[service]; ok {
		d.restartFailed = why
		d.failures++
		r.down[service] = d
	}
}

// restartFailuresToGiveUp is how many restarts in place in a row must
// fail before a down primary is given up on before primary_start_timeout:
// the first may fail for a passing reason (a crashed PostgreSQL's old
// backends still holding its shared memory), the second, one
// failover_timeout later, hardly.
const restartFailuresToGiveUp = 2

// overdue returns the primaries down for primary_start_timeout, or whose
// restarts in place failed restartFailuresToGiveUp times, at now.
func (r *restarter) overdue(now time.Time, f config.FailoverConfig) []downPrimary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []downPrimary
	for _, d := range r.down {
		if now.Sub(d.since) >= f.PrimaryStartTimeout || d.failures >= restartFailuresToGiveUp {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b downPrimary) int { return strings.Compare(a.service, b.service) })
	return out
}

// begin reports whether key may be tried at now, and claims it if so.
func (r *restarter) begin(key string, now time.Time, every time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running[key] || (!r.last[key].IsZero() && now.Sub(r.last[key]) < every) {
		return false
	}
	r.running[key], r.last[key] = true, now
	return true
}

func (r *restarter) end(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, key)
}

// restartFencedInPlace is called with every answered probe. When the
// agent is at the active site, holds the current epoch and the lease this
// leader just renewed, and reports services fenced because its lease
// lapsed in this same epoch (a long election, a frozen host, a flapping
// link; each service's fence cause and epoch say so), those services were
// this epoch's primaries at the active site: nothing failed over, so
// production is restarted where it was rather than left down ("restarted
// in place where the driver can"). A service fenced because another site
// became active carries another cause, or an older epoch, and is never
// restarted; nor is anything while an execution runs, which owns the
// services it moves. Pause does not stop it: it is a repair of the active
// site's own primary, not a failover.
func (s *Server) restartFencedInPlace(ctx context.Context, rs *restarter, a structs.Agent, resp *pb.ProbeResponse, epoch uint64, activeSite string) {
	lease := resp.GetLease()
	if a.Site != activeSite || resp.GetEpoch() != epoch || !resp.GetFenced() || !lease.GetValid() || lease.GetEpoch() != epoch {
		return
	}
	if s.fsm.runningExecutionIDs() != nil {
		return
	}
	for _, svc := range resp.GetServices() {
		if svc.GetRole() != pb.ServiceRole_SERVICE_ROLE_FENCED || !structs.RestartableInPlace(svc.GetFenceCause()) || svc.GetFenceEpoch() != epoch {
			continue
		}
		key := a.HostID + "/" + svc.GetName()
		if !rs.begin(key, time.Now(), s.config.Failover.FailoverTimeout) {
			continue
		}
		// A term goroutine: revokeLeadership waits for the restart.
		name := svc.GetName()
		if !s.goLeader(func() {
			defer rs.end(key)
			why := fmt.Sprintf("fenced when its lease lapsed in epoch %d, renewed since in the same epoch with site %s active", epoch, a.Site)
			_ = s.restartInPlace(ctx, a, name, epoch, why)
		}) {
			rs.end(key)
		}
	}
}

// watchPrimaries is called with every answered probe of an active-site
// host. It notes which host runs each promotable data service as
// primary, and when the host that ran one reports it stopped while its
// agent answers and holds this epoch's lease (the database crashed), it
// restarts the service in place, at most once per failover_timeout, while
// no execution runs. The detector fails the site over when that does not
// bring it back within primary_start_timeout (judgePrimaryHosts).
func (s *Server) watchPrimaries(ctx context.Context, rs *restarter, a structs.Agent, res probeResult, epoch uint64, activeSite string) {
	resp := res.resp
	if a.Site != activeSite || resp.GetEpoch() != epoch {
		return
	}
	for _, svc := range resp.GetServices() {
		name := svc.GetName()
		if !a.Promotable(name) {
			continue
		}
		switch svc.GetRole() {
		case pb.ServiceRole_SERVICE_ROLE_PRIMARY:
			rs.sawPrimary(a.HostID, name, res.sentAt)
			continue
		case pb.ServiceRole_SERVICE_ROLE_STOPPED:
		default:
			continue
		}
		d, ok := rs.sawStopped(a.HostID, name, res.sentAt)
		lease := resp.GetLease()
		if !ok || !lease.GetValid() || lease.GetEpoch() != epoch || s.fsm.runningExecutionIDs() != nil {
			continue
		}
		key := a.HostID + "/" + name
		if !rs.begin(key, time.Now(), s.config.Failover.FailoverTimeout) {
			continue
		}
		why := fmt.Sprintf("it ran as primary until at least %s and is down since, while %s answers with a lease of epoch %d",
			d.lastPrimary.UTC().Format("15:04:05.000"), a.HostID, epoch)
		if !s.goLeader(func() {
			defer rs.end(key)
			if err := s.restartInPlace(ctx, a, name, epoch, why); err != nil {
				rs.restartFailed(name, err.Error())
			}
		}) {
			rs.end(key)
		}
	}
}

// restartInPlace records the restart in the audit trail, with why it is
// due, and sends the agent the start step; the agent checks the same
// conditions on its own state before it starts anything. It returns why
// the restart failed, if it did.
func (s *Server) restartInPlace(ctx context.Context, a structs.Agent, service string, epoch uint64, why string) error {
	// The state may have moved on since the probe.
	if v := s.fsm.view(); v.Epoch != epoch || v.ActiveSite != a.Site || s.fsm.runningExecutionIDs() != nil {
		return nil
	}
	id := "restart-" + uuid.NewString()
	log := s.logger.With("host_id", a.HostID, "service", service, "epoch", epoch, "restart_id", id)
	detail := fmt.Sprintf("restart %s on %s in place (%s): %s", service, a.HostID, id, why)
	if _, err := s.raftApply(structs.AuditRequestType, &structs.AuditRequest{WriteRequest: s.selfWrite(), Action: "restart-in-place", Detail: detail}); err != nil {
		log.Error("failed to record restart in place", "error", err)
		return nil
	}
	log.Warn("restarting service in place", "why", why)
	step := &pb.ExecuteRequest{
		ExecutionId: id, StepId: "start-" + service, Epoch: epoch, Action: pb.StepAction_STEP_ACTION_START, Target: service,
		Args: map[string]string{structs.ArgRestartInPlace: "true"}, TimeoutMs: uint64(restartInPlaceTimeout.Milliseconds()),
	}
	ctx, cancel := context.WithTimeout(ctx, restartInPlaceTimeout+10*time.Second)
	defer cancel()
	_, res, err := s.executeOnAgent(ctx, a, step)
	switch {
	case err != nil:
		log.Error("failed to restart service in place", "error", err)
		return fmt.Errorf("restart %s on %s in place: %w", service, a.HostID, err)
	case !res.GetOk():
		log.Error("failed to restart service in place", "error", res.GetMessage())
		return fmt.Errorf("restart %s on %s in place: %s", service, a.HostID, res.GetMessage())
	}
	log.Info("restarted service in place", "message", res.GetMessage())
	return nil
}
