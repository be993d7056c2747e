package controlplane

import (
	"fmt"
	"slices"
	"time"

	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// outageEvidence is the latest instant at which a survivor knew site to
// be alive, before at: a lower bound on when its outage began, which the
// RTO of a failover away from it is measured from, so that the recorded
// RTO is never shorter than the outage clients saw. The survivors know:
//
//   - this leader's probes: the send time of the last probe a host of the
//     site answered (the host was alive after it);
//   - the standbys outside the site: the last message each received from
//     its primary, on the standby host's clock, less clock_skew_margin.
//
// A new leader whose predecessor fell with the site saw none of its
// answers; a standby's last receipt is then what bounds the outage. The
// detail says which evidence won; ok is false when there is none.
//
// With hosts, only those hosts of the site count: the loss of a primary
// database host is measured from its own last sign of life, not from the
// answers of the site's hosts that still run.
func (s *Server) outageEvidence(v stateView, site string, at time.Time, hosts []string) (since time.Time, detail string, ok bool) {
	consider := func(t time.Time, what string) {
		if t.IsZero() || t.After(at) || !t.After(since) {
			return
		}
		since, detail, ok = t, what, true
	}
	for _, a := range v.Agents {
		r, found := s.probes.get(a.HostID)
		if !found {
			continue
		}
		if a.Site == site {
			if hosts != nil && !slices.Contains(hosts, a.HostID) {
				continue
			}
			consider(r.lastAnsweredSent, fmt.Sprintf("%s answered the leader's probe sent then", a.HostID))
			continue
		}
		for _, svc := range r.lastResp.GetServices() {
			if svc.GetRole() != pb.ServiceRole_SERVICE_ROLE_STANDBY || svc.GetReplication().GetLastReceivedAt() == nil {
				continue
			}
			heard := svc.GetReplication().GetLastReceivedAt().AsTime().Add(-s.config.Failover.ClockSkewMargin)
			consider(heard, fmt.Sprintf("%s on %s last heard from its primary then (its clock, less clock_skew_margin %s)",
				svc.GetName(), a.HostID, s.config.Failover.ClockSkewMargin))
		}
	}
	return since, detail, ok
}
