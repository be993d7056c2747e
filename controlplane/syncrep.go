package controlplane

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// setSyncTimeout bounds one set-sync-standbys step: an ALTER SYSTEM and a
// reload.
const setSyncTimeout = 15 * time.Second

// syncManager is the leader's management of synchronous replication
// (replication { mode = "sync" }, Patroni's synchronous_mode), one term
// long. For each data service whose primary runs at the active site it
// keeps PostgreSQL's synchronous_standby_names naming one standby at
// another data site, and the replicated record of which standbys hold
// every acknowledged commit true (invariant 8):
//
//   - a standby enters the record only after its primary reported it sync
//     and it flushed past the primary's position at the moment the setting
//     took effect, so it also holds what was acknowledged before;
//   - it leaves the record (a Raft write) before the primary stops
//     waiting for it;
//   - only this leader degrades to async, and only once the record says
//     so: a primary cut off from the leader keeps waiting, and a leader
//     cut off from the majority cannot record it, so it degrades nothing.
//
// The manager acts on what the prober last heard from the primary; a
// primary it does not hear from is left alone.
type syncManager struct {
	s *Server
	// term is the Raft term this server was elected leader in, sent with
	// every step: an agent refuses a step of an older term than one it
	// took (a deposed leader's, delayed).
	term uint64
	// set is, per service, the setting this term made the primary take
	// and the position at which it took effect.
	set map[string]syncSetting
	// behind is, per service, since when the awaited standby has not
	// confirmed the primary's writes (see confirming).
	behind map[string]lagWatch
	// gaveUp is, per service, when a restore of sync mode was abandoned
	// because the standby did not confirm: the next try waits
	// degrade_after.
	gaveUp map[string]time.Time
	// failed is, per service, when the last set-sync-standbys step
	// failed: the next waits two probe intervals (an agent too old to
	// know the step would otherwise be asked every tick).
	failed map[string]time.Time
	// apps is the name each standby host last said it streams as: a
	// standby whose status could not be read for a moment stays a
	// candidate under it.
	apps map[string]string
}

// syncSetting is a synchronous_standby_names value a primary took, and
// the primary's WAL position once it was in effect.
type syncSetting struct {
	primary  string
	value    string
	position uint64
}

// lagWatch is a standby seen behind its primary: since when, and the
// primary's position then. It ends once the standby flushed past that.
type lagWatch struct {
	since  time.Time
	target uint64
}

// syncCandidate is a standby at another data site that may become
// synchronous: its host, the name it streams as, and the primary's row of
// it (nil when the primary does not list it).
type syncCandidate struct {
	host, app string
	row       *pb.StandbyReplication
}

func newSyncManager(s *Server, term uint64) *syncManager {
	return &syncManager{s: s, term: term, set: map[string]syncSetting{}, behind: map[string]lagWatch{}, gaveUp: map[string]time.Time{}, failed: map[string]time.Time{}, apps: map[string]string{}}
}

// runSyncManager manages synchronous replication until the term (won in
// Raft term term) ends.
func (s *Server) runSyncManager(ctx context.Context, term uint64) {
	m := newSyncManager(s, term)
	t := time.NewTicker(s.config.Failover.ProbeInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.tick(ctx)
	}
}

// tick reconciles every data service once. It leaves the services alone
// while a failover, switchover or failback runs: those move the primary
// and the plan sets up the new one.
func (m *syncManager) tick(ctx context.Context) {
	for _, id := range m.s.fsm.runningExecutionIDs() {
		if ex, ok := m.s.fsm.execution(id); ok && ex.Kind != string(plan.KindDrill) {
			return
		}
	}
	v := m.s.fsm.view()
	for _, svc := range dataServices(v) {
		// A decision may call for the next at once (a degrade recorded,
		// then the setting cleared): a few rounds per tick.
		for range 3 {
			if again := m.reconcile(ctx, v, svc); !again || ctx.Err() != nil {
				break
			}
			v = m.s.fsm.view()
		}
	}
}

// dataServices are the promotable services of the active site's agents.
func dataServices(v stateView) []string {
	var out []string
	for _, a := range hostsAt(v.Agents, v.ActiveSite) {
		for _, svc := range a.Services {
			if svc.Promotable && !slices.Contains(out, svc.Name) {
				out = append(out, svc.Name)
			}
		}
	}
	return out
}

// reconcile takes one step towards the wanted state of service and
// reports whether another step may follow at once.
func (m *syncManager) reconcile(ctx context.Context, v stateView, service string) (again bool) {
	cfg := m.s.config.Replication
	now := time.Now()
	primary, st, ok := m.primary(v, service)
	if !ok {
		return false // never degrade a primary we do not reach
	}
	rec, has := m.s.fsm.syncReplication(service)
	if !has || rec.Epoch != v.Epoch || rec.Primary != primary.HostID {
		// A new primary: another primary's record says nothing of it.
		next := structs.SyncReplication{Service: service, Epoch: v.Epoch, Primary: primary.HostID}
		if !cfg.Strict {
			next.DegradedSince, next.DegradedReason = now, "no standby confirmed synchronous since "+primary.HostID+" became primary"
		}
		return m.record(rec, has, next, fmt.Sprintf("%s is primary in epoch %d", primary.HostID, v.Epoch))
	}
	rep := st.GetReplication()
	cands := m.candidates(v, service, rep)
	want := m.choose(rec, cands)

	// A member the manager no longer waits for leaves the record first.
	if len(rec.Synchronous) > 0 && (want == nil || !slices.Equal(rec.Synchronous, []string{want.host})) {
		next := rec
		next.Synchronous = nil
		why := strings.Join(rec.Synchronous, ", ") + " is no longer a standby at another data site"
		if !cfg.Strict {
			next.DegradedSince, next.DegradedReason = now, why
		}
		return m.record(rec, true, next, why)
	}

	// names are the standbys the primary is to wait for.
	var names []string
	switch {
	case rec.Degraded():
		if want != nil && m.mayRestore(service, want, now) {
			names = []string{want.app}
		}
	case want != nil:
		names = []string{want.app}
	case cfg.Strict:
		names = []string{structs.SyncAnyStandby}
	default:
		next := rec
		next.DegradedSince, next.DegradedReason = now, "no standby at another data site streams from "+primary.HostID
		return m.record(rec, true, next, next.DegradedReason)
	}

	// The awaited standby has not confirmed the primary's writes for
	// degrade_after: outside strict mode, record the degrade, then stop
	// waiting for it (the next round clears the setting).
	if want != nil && rep.GetSynchronousStandbyNames() == structs.SyncStandbyNames([]string{want.app}) && !cfg.Strict {
		if since, why := m.confirming(service, want, rep, now); !since.IsZero() && now.Sub(since) >= cfg.DegradeAfter {
			if !rec.Degraded() {
				next := rec
				next.Synchronous = nil
				next.DegradedSince = now
				next.DegradedReason = fmt.Sprintf("standby %s has not confirmed commits since %s (%s)", want.host, since.UTC().Format("15:04:05.000"), why)
				return m.record(rec, true, next, next.DegradedReason)
			}
			// A restore that did not take: wait without it again.
			m.gaveUp[service] = now
			names = nil
		}
	}

	value := structs.SyncStandbyNames(names)
	if rep.GetSynchronousStandbyNames() != value || !m.knowsPosition(service, primary.HostID, value) {
		return m.apply(ctx, v, primary, service, names)
	}
	if want == nil || rec.IsSynchronous(want.host) && !rec.Degraded() {
		return false
	}
	// The primary waits for want: it enters the record once the primary
	// reports it sync and it flushed past where the setting took effect.
	set := m.set[service]
	flushed, ok := parseLSN(want.row.GetFlushPosition())
	if want.row.GetSyncState() != pb.SyncState_SYNC_STATE_SYNC || !ok || flushed < set.position {
		return false
	}
	next := rec
	next.Synchronous = []string{want.host}
	next.DegradedSince, next.DegradedReason = time.Time{}, ""
	return m.record(rec, true, next, fmt.Sprintf("%s (%s) reported sync by %s and flushed %s, past %s where the setting took effect",
		want.host, want.app, primary.HostID, want.row.GetFlushPosition(), formatLSN(set.position)))
}

// primary returns the active-site agent whose answer, fresh from the
// prober, shows service running as primary in the current epoch.
func (m *syncManager) primary(v stateView, service string) (structs.Agent, *pb.ServiceStatus, bool) {
	f := m.s.config.Failover
	for _, a := range hostsAt(v.Agents, v.ActiveSite) {
		if !a.Promotable(service) {
			continue
		}
		r, ok := m.s.probes.get(a.HostID)
		if !ok || r.err != nil || r.resp.GetEpoch() != v.Epoch || time.Since(r.answeredAt) > 2*f.ProbeInterval+f.ProbeTimeout {
			continue
		}
		if st := serviceStatusOf(r.resp, service); st.GetRole() == pb.ServiceRole_SERVICE_ROLE_PRIMARY {
			return a, st, true
		}
	}
	return structs.Agent{}, nil, false
}

// candidates are the standbys of service at other data sites, with the
// names they stream as (last reported) and the primary's rows of them. A
// name two of them share identifies neither.
func (m *syncManager) candidates(v stateView, service string, rep *pb.Replication) []syncCandidate {
	var out []syncCandidate
	seen := map[string]int{}
	for _, a := range v.Agents {
		if a.Site == v.ActiveSite || !a.Promotable(service) || siteKind(v, a.Site) != structs.SiteKindData {
			continue
		}
		r, _ := m.s.probes.get(a.HostID)
		st := serviceStatusOf(r.lastResp, service)
		app := st.GetReplication().GetApplicationName()
		switch st.GetRole() {
		case pb.ServiceRole_SERVICE_ROLE_STANDBY:
			if app != "" {
				m.apps[a.HostID] = app
			}
		case pb.ServiceRole_SERVICE_ROLE_UNKNOWN:
		default:
			delete(m.apps, a.HostID)
			continue
		}
		app = m.apps[a.HostID]
		if app == "" || structs.ValidApplicationName(app) != nil {
			continue
		}
		seen[app]++
		c := syncCandidate{host: a.HostID, app: app}
		for _, row := range rep.GetStandbys() {
			if row.GetApplicationName() == app {
				c.row = row
			}
		}
		out = append(out, c)
	}
	return slices.DeleteFunc(out, func(c syncCandidate) bool { return seen[c.app] > 1 })
}

// choose picks the standby the primary is to wait for: the recorded one
// while it is a candidate (in strict mode, until another streams and it
// does not), otherwise the first that streams, otherwise, in strict mode,
// the first there is.
func (m *syncManager) choose(rec structs.SyncReplication, cands []syncCandidate) *syncCandidate {
	var streaming *syncCandidate
	for i := range cands {
		if streaming == nil && cands[i].row.GetState() == pb.WalSenderState_WAL_SENDER_STATE_STREAMING {
			streaming = &cands[i]
		}
	}
	for i := range cands {
		if rec.IsSynchronous(cands[i].host) {
			if cands[i].row.GetSyncState() == pb.SyncState_SYNC_STATE_SYNC || streaming == nil || !m.s.config.Replication.Strict {
				return &cands[i]
			}
		}
	}
	if streaming != nil || !m.s.config.Replication.Strict || len(cands) == 0 {
		return streaming
	}
	return &cands[0]
}

// mayRestore reports whether a degraded service may wait for want again:
// it streams caught up, and the last restore that did not take is
// degrade_after old.
func (m *syncManager) mayRestore(service string, want *syncCandidate, now time.Time) bool {
	return want.row.GetState() == pb.WalSenderState_WAL_SENDER_STATE_STREAMING &&
		now.Sub(m.gaveUp[service]) >= m.s.config.Replication.DegradeAfter
}

// confirming returns since when want has not confirmed the primary's
// writes (zero while it does), and why: the primary does not report it
// sync, or it has not flushed what the primary had written when it was
// first seen behind. A dead standby's connection may linger on the
// primary as "sync" until wal_sender_timeout; its flush position stops.
func (m *syncManager) confirming(service string, want *syncCandidate, rep *pb.Replication, now time.Time) (time.Time, string) {
	current, okCur := parseLSN(rep.GetPosition())
	flushed, okFlush := parseLSN(want.row.GetFlushPosition())
	lw, watching := m.behind[service]
	sync := want.row.GetSyncState() == pb.SyncState_SYNC_STATE_SYNC
	if watching && sync && okFlush && flushed >= lw.target {
		delete(m.behind, service)
		watching = false
	}
	var why string
	switch {
	case want.row == nil:
		why = "not connected to the primary"
	case !sync:
		why = "reported " + strings.ToLower(strings.TrimPrefix(want.row.GetSyncState().String(), "SYNC_STATE_")) + " by the primary"
	case okCur && okFlush && flushed < current:
		why = "flushed " + want.row.GetFlushPosition() + " of " + rep.GetPosition()
	default:
		return lw.since, "behind"
	}
	if !watching {
		lw = lagWatch{since: now, target: current}
		m.behind[service] = lw
	}
	return lw.since, why
}

// knowsPosition reports whether this term set value on primary itself
// and so knows where it took effect; "" needs no position.
func (m *syncManager) knowsPosition(service, primary, value string) bool {
	set, ok := m.set[service]
	return value == "" || ok && set.primary == primary && set.value == value
}

// apply sends the primary's agent the setting and remembers where it took
// effect.
func (m *syncManager) apply(ctx context.Context, v stateView, primary structs.Agent, service string, names []string) bool {
	value := structs.SyncStandbyNames(names)
	if time.Since(m.failed[service]) < 2*m.s.config.Failover.ProbeInterval {
		return false
	}
	log := m.s.logger.With("service", service, "host_id", primary.HostID, "synchronous_standby_names", value)
	step := &pb.ExecuteRequest{
		ExecutionId: "sync-" + uuid.NewString(), StepId: "set-sync-standbys-" + service, Epoch: v.Epoch,
		Action: pb.StepAction_STEP_ACTION_SET_SYNC_STANDBYS, Target: service,
		Args:      map[string]string{structs.ArgSyncStandbys: strings.Join(names, ","), structs.ArgLeaderTerm: strconv.FormatUint(m.term, 10)},
		TimeoutMs: uint64(setSyncTimeout.Milliseconds()),
	}
	ctx, cancel := context.WithTimeout(ctx, setSyncTimeout+5*time.Second)
	defer cancel()
	_, res, err := m.s.executeOnAgent(ctx, primary, step)
	switch {
	case err != nil:
		m.failed[service] = time.Now()
		log.Warn("failed to set synchronous standbys", "error", err)
		return false
	case !res.GetOk():
		m.failed[service] = time.Now()
		log.Warn("failed to set synchronous standbys", "error", res.GetMessage())
		return false
	}
	delete(m.failed, service)
	pos, ok := parseLSN(res.GetOutputs()[structs.OutputSyncPosition])
	if !ok && value != "" {
		log.Warn("set synchronous standbys, but the agent reported no position", "outputs", res.GetOutputs())
		return false
	}
	m.set[service] = syncSetting{primary: primary.HostID, value: value, position: pos}
	delete(m.behind, service)
	log.Info("set synchronous standbys", "position", formatLSN(pos))
	return false // the next probe shows the primary's view of it
}

// record writes next over prev (compare-and-set on its index) and
// reports whether it did.
func (m *syncManager) record(prev structs.SyncReplication, had bool, next structs.SyncReplication, reason string) bool {
	expect := uint64(0)
	if had {
		expect = prev.Index
	}
	_, err := m.s.raftApply(structs.SyncReplicationRequestType, &structs.SyncReplicationRequest{
		WriteRequest: m.s.selfWrite(), Record: next, ExpectIndex: expect, Reason: reason})
	var rejected *structs.RejectedError
	switch {
	case errors.As(err, &rejected):
		m.s.logger.Debug("sync replication record not written", "service", next.Service, "reason", rejected.Reason)
		return false
	case err != nil:
		m.s.logger.Warn("failed to record sync replication state", "service", next.Service, "error", err)
		return false
	}
	m.s.logger.Info("sync replication", "service", next.Service, "primary", next.Primary, "state", syncStateText(next), "reason", reason)
	return true
}

// formatLSN writes a position as PostgreSQL does.
func formatLSN(pos uint64) string { return fmt.Sprintf("%X/%X", pos>>32, uint32(pos)) }

// replicationStatus is each data service's replication, for `drplane
// status`: the mode, the primary's setting and standbys as last seen, the
// replicated record, and what a failover would lose now.
func (s *Server) replicationStatus(v stateView) []*pb.DataReplication {
	cfg := s.config.Replication
	mode := pb.ReplicationMode_REPLICATION_MODE_ASYNC
	switch {
	case cfg.Sync() && cfg.Strict:
		mode = pb.ReplicationMode_REPLICATION_MODE_SYNC_STRICT
	case cfg.Sync():
		mode = pb.ReplicationMode_REPLICATION_MODE_SYNC
	}
	target, targetErr := failoverTarget(v)
	var out []*pb.DataReplication
	for _, service := range dataServices(v) {
		dr := &pb.DataReplication{Service: service, Mode: mode}
		var rep *pb.Replication
		for _, a := range hostsAt(v.Agents, v.ActiveSite) {
			r, _ := s.probes.get(a.HostID)
			if st := serviceStatusOf(r.lastResp, service); st.GetRole() == pb.ServiceRole_SERVICE_ROLE_PRIMARY {
				dr.Primary, rep = a.HostID, st.GetReplication()
				dr.SynchronousStandbyNames = rep.GetSynchronousStandbyNames()
			}
		}
		rec, has := s.fsm.syncReplication(service)
		current := has && rec.Epoch == v.Epoch && rec.Primary == dr.Primary
		if current && cfg.Sync() {
			dr.Synchronous = rec.Synchronous
			if rec.Degraded() {
				dr.DegradedSince, dr.DegradedReason = timestamppb.New(rec.DegradedSince), rec.DegradedReason
			}
		}
		for _, a := range v.Agents {
			if a.Site == v.ActiveSite || !a.Promotable(service) {
				continue
			}
			r, _ := s.probes.get(a.HostID)
			ss := &pb.StandbyState{HostId: a.HostID, RecordedSynchronous: current && s.synchronousFor(v, rec, a.HostID)}
			ss.ApplicationName = serviceStatusOf(r.lastResp, service).GetReplication().GetApplicationName()
			for _, row := range rep.GetStandbys() {
				if ss.ApplicationName != "" && row.GetApplicationName() == ss.ApplicationName {
					ss.State, ss.SyncState, ss.FlushPosition = row.GetState(), row.GetSyncState(), row.GetFlushPosition()
				}
			}
			dr.Standbys = append(dr.Standbys, ss)
		}
		if targetErr == nil {
			exp := s.exposureOf(target, nil, service)
			dr.ExposureKnown, dr.ExposureSeconds, dr.ExposureDetail = exp.known, exp.seconds, exp.detail
		}
		out = append(out, dr)
	}
	return out
}
