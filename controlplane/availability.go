package controlplane

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/drplane/drplane/internal/kpi"
	"github.com/drplane/drplane/internal/structs"
)

// maxPendingMinutes bounds the minutes kept while Raft refuses them; a
// leader that cannot write for longer loses its leadership anyway.
const maxPendingMinutes = 60

// runAvailability records, minute by minute while this server leads,
// whether the active site's services ran whole by its probes: the data
// the availability KPIs come from, kept in the replicated state so that
// it outlives this leader. A minute is up only when every sample of it
// found production whole and the samples cover it from start to end; one
// sample that found something down makes it down; a minute this leader
// did not watch throughout, and found nothing down in, is left
// unobserved, which the KPIs count as down (invariant 9: never better
// than what clients saw).
func (s *Server) runAvailability(ctx context.Context) {
	every := s.config.Failover.ProbeInterval
	// One timer re-armed after each sample, on the programme's clock, so
	// that a test in virtual time samples in step with it.
	t := s.calendar.NewTimer(every)
	defer t.Stop()
	var cur minuteSamples
	var pending []structs.MinuteObservation
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		now := s.calendar.Now()
		if minute := now.Truncate(time.Minute); !minute.Equal(cur.minute) {
			if obs, ok := cur.result(every); ok {
				pending = append(pending, obs)
			}
			cur = minuteSamples{minute: minute}
			pending = s.recordMinutes(pending)
		}
		state, ok := s.sampleProduction(ctx)
		cur.add(now, state, ok)
		t.Reset(every)
	}
}

// sampleProduction is one look at the active site: up or down, and false
// when this server cannot tell (it is not sure it leads, or some host of
// the active site has no probe yet in this term).
func (s *Server) sampleProduction(ctx context.Context) (kpi.MinuteState, bool) {
	if err := s.verifyLeader(ctx); err != nil {
		return kpi.MinuteUnobserved, false
	}
	v := s.fsm.view()
	hosts := hostsAt(v.Agents, v.ActiveSite)
	if len(hosts) == 0 {
		return kpi.MinuteUnobserved, false
	}
	for _, a := range hosts {
		if _, ok := s.probes.get(a.HostID); !ok {
			return kpi.MinuteUnobserved, false
		}
	}
	if len(s.productionProblems(v)) > 0 {
		return kpi.MinuteDown, true
	}
	return kpi.MinuteUp, true
}

// recordMinutes writes pending minutes to the replicated state and returns
// what is left to write.
func (s *Server) recordMinutes(pending []structs.MinuteObservation) []structs.MinuteObservation {
	if len(pending) == 0 {
		return nil
	}
	res, err := s.raftApply(structs.AvailabilityRequestType, &structs.AvailabilityRequest{
		WriteRequest: structs.WriteRequest{RequestID: uuid.NewString(), Actor: "server:" + s.config.NodeID},
		Minutes:      pending,
	})
	switch {
	case err != nil:
		s.logger.Warn("failed to record availability minutes; will retry", "minutes", len(pending), "error", err)
		if over := len(pending) - maxPendingMinutes; over > 0 {
			pending = pending[over:]
		}
		return pending
	case res.Rejection != "":
		s.logger.Error("availability minutes refused", "reason", res.Rejection)
	}
	return nil
}

// minuteSamples are one minute's samples of production.
type minuteSamples struct {
	minute      time.Time
	first, last time.Time // of the samples that could tell
	down, up    bool
}

func (m *minuteSamples) add(at time.Time, state kpi.MinuteState, known bool) {
	if !known {
		return
	}
	if m.first.IsZero() {
		m.first = at
	}
	m.last = at
	m.down = m.down || state == kpi.MinuteDown
	m.up = m.up || state == kpi.MinuteUp
}

// result is the minute's observation: down when any sample found
// production down, up when the samples (every interval apart) cover the
// minute and all found it up; nothing otherwise.
func (m *minuteSamples) result(interval time.Duration) (structs.MinuteObservation, bool) {
	obs := structs.MinuteObservation{Minute: m.minute}
	switch {
	case m.minute.IsZero() || m.first.IsZero():
		return obs, false
	case m.down:
		obs.State = kpi.MinuteDown
		return obs, true
	}
	slack := 2 * interval
	covered := m.first.Sub(m.minute) <= slack && m.minute.Add(time.Minute).Sub(m.last) <= slack
	if !covered {
		return obs, false
	}
	obs.State = kpi.MinuteUp
	return obs, true
}
