package controlplane

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
)

// restartInPlaceTimeout bounds one restart in place: a start and, when the
// service declares one, its health check.
const restartInPlaceTimeout = 2 * time.Minute

// restarter rate-limits restarts in place during one leader term: one
// attempt at a time per service, and at most one per failover_timeout.
type restarter struct {
	mu      sync.Mutex
	last    map[string]time.Time
	running map[string]bool
}

func newRestarter() *restarter {
	return &restarter{last: map[string]time.Time{}, running: map[string]bool{}}
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
			s.restartInPlace(ctx, a, name, epoch)
		}) {
			rs.end(key)
		}
	}
}

// restartInPlace records the restart in the audit trail and sends the
// agent the start step; the agent checks the same conditions on its own
// state before it starts anything.
func (s *Server) restartInPlace(ctx context.Context, a structs.Agent, service string, epoch uint64) {
	// The state may have moved on since the probe.
	if v := s.fsm.view(); v.Epoch != epoch || v.ActiveSite != a.Site || s.fsm.runningExecutionIDs() != nil {
		return
	}
	id := "restart-" + uuid.NewString()
	log := s.logger.With("host_id", a.HostID, "service", service, "epoch", epoch, "restart_id", id)
	detail := fmt.Sprintf("restart %s on %s in place (%s): fenced when its lease lapsed in epoch %d, renewed since in the same epoch with site %s active",
		service, a.HostID, id, epoch, a.Site)
	if _, err := s.raftApply(structs.AuditRequestType, &structs.AuditRequest{WriteRequest: s.selfWrite(), Action: "restart-in-place", Detail: detail}); err != nil {
		log.Error("failed to record restart in place", "error", err)
		return
	}
	log.Warn("restarting fenced service in place")
	step := &pb.ExecuteRequest{
		ExecutionId: id, StepId: "start-" + service, Epoch: epoch, Action: pb.StepAction_STEP_ACTION_START, Target: service,
		Args: map[string]string{structs.ArgRestartInPlace: "true"}, TimeoutMs: uint64(restartInPlaceTimeout.Milliseconds()),
	}
	ctx, cancel := context.WithTimeout(ctx, restartInPlaceTimeout+10*time.Second)
	defer cancel()
	_, res, err := s.executeOnAgent(ctx, a, step)
	switch {
	case err != nil:
		log.Error("failed to restart fenced service in place", "error", err)
	case !res.GetOk():
		log.Error("failed to restart fenced service in place", "error", res.GetMessage())
	default:
		log.Info("restarted fenced service in place", "message", res.GetMessage())
	}
}
