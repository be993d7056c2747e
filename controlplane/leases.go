package controlplane

import (
	"context"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/clock"
	"github.com/drplane/drplane/internal/config"
)

// leaseTable is the leader's count of the leases it may have granted, the
// arithmetic that makes invariant 4 of DESIGN.md section 4 true: the DR
// site is promoted only once no agent of the old active site can still
// hold a lease. An agent starts its lease when a renewal arrives, on its
// own clock, and keeps it for lease_ttl (DESIGN.md section 5), so the
// leader counts a host's lease as possibly live until
//
//   - answered renewal:   answer time + lease_ttl + clock_skew_margin
//   - unanswered renewal: send time + probe RPC deadline + lease_ttl +
//     clock_skew_margin (the renewal may have arrived at the last instant
//     the RPC could still be served), and the same for a probe cut short
//     by the end of its loop or of the term
//   - anchored renewal: the anchoring probe's answer time + lease_ttl +
//     clock_skew_margin, counted before the renewal is sent (the agent
//     counts the lease from its receipt of the anchoring probe)
//   - any host, whatever this leader granted: its election + probe RPC
//     deadline + lease_ttl + clock_skew_margin, since it does not know its
//     predecessor's renewals; the predecessor stops renewing within
//     LeaderLeaseTimeout of losing its quorum, before this leader can be
//     elected, and its last renewal lands within the RPC deadline. For a
//     host registered as honouring anchors, to which a leader sends only
//     anchored renewals (see renewalGate), without the RPC deadline:
//     every anchor's answer came back before the predecessor stopped
//   - whatever the agent said it holds: the arrival of its newest answer +
//     the lease remaining it reported + clock_skew_margin. That is how a
//     lease no leader of this term granted counts: the boot window an
//     agent gives itself at start (possibly under a longer lease_ttl of
//     its own), which the first grant replaces
//
// and a lease has lapsed at that instant, not one nanosecond before. A
// renewal counts from the moment it is sent: while its probe is in flight
// it counts as unanswered (the agent may already hold it), and when the
// probe ends the prober records what became of it.
//
// The table lives in the leader's memory only and holds one term: elect
// starts one and forgets the previous term's grants, reset ends it. Times
// come from the clock the table was given, which the prober and the
// lease-wait step share, so tests run the arithmetic in virtual time.
type leaseTable struct {
	clock clock.Clock
	// ttl, skew and rpcDeadline are failover.lease_ttl,
	// failover.clock_skew_margin and failover.probe_timeout (the probe's
	// RPC deadline).
	ttl, skew, rpcDeadline time.Duration

	mu sync.Mutex
	// electedAt is when this server's term of leadership began; zero
	// while it does not lead. anchors are the hosts registered, at the
	// election, as honouring anchored renewals.
	electedAt time.Time
	anchors   map[string]bool
	// until is, per host, the latest instant until which a lease this
	// term granted it may still run.
	until map[string]time.Time
	// inflight are the send times of renewals whose probes have not
	// ended, per host, by a number sending gave them.
	inflight map[string]map[uint64]time.Time
	lastSend uint64
	// reported is, per host, the bound of the lease its agent reported in
	// the answer to the newest probe sent (see report).
	reported map[string]reportedLease
}

// reportedLease is a lease bound an agent's answer gave: sentAt is when
// its probe was sent, until when the lease it reported ends at the latest.
type reportedLease struct {
	sentAt, until time.Time
}

// newLeaseTable returns an empty table counting by the failover timings f
// on clk.
func newLeaseTable(clk clock.Clock, f config.FailoverConfig) *leaseTable {
	return &leaseTable{
		clock: clock.OrReal(clk),
		ttl:   f.LeaseTTL, skew: f.ClockSkewMargin, rpcDeadline: f.ProbeTimeout,
		until: map[string]time.Time{}, inflight: map[string]map[uint64]time.Time{},
		reported: map[string]reportedLease{},
	}
}

// now is the table's clock's current instant.
func (t *leaseTable) now() time.Time { return t.clock.Now() }

// elect starts a term of leadership won at at: every host's lease counts
// from at plus the RPC deadline (without it for the anchoring hosts), and
// the previous term's grants are forgotten.
func (t *leaseTable) elect(at time.Time, anchoring ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.electedAt, t.until, t.inflight = at, map[string]time.Time{}, map[string]map[uint64]time.Time{}
	t.reported = map[string]reportedLease{}
	t.anchors = map[string]bool{}
	for _, h := range anchoring {
		t.anchors[h] = true
	}
}

// reset ends the term: nothing is counted until the next elect.
func (t *leaseTable) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.electedAt, t.until, t.inflight = time.Time{}, map[string]time.Time{}, map[string]map[uint64]time.Time{}
	t.reported = map[string]reportedLease{}
}

// sending records a renewal of host sent at sentAt, counted as unanswered
// until done is called, which the prober does once the probe ended and
// it recorded the outcome with answered or unanswered. Without it a
// lease-wait reading the table while the probe is in flight would miss a
// renewal the agent may already hold (invariant 4).
func (t *leaseTable) sending(host string, sentAt time.Time) (done func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastSend++
	id, term := t.lastSend, t.inflight
	if term[host] == nil {
		term[host] = map[uint64]time.Time{}
	}
	term[host][id] = sentAt
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		// A probe of an ended term leaves the new term's table alone.
		delete(term[host], id)
	}
}

// answered records a renewal of host whose answer came back at
// answeredAt: the agent started its lease before that.
func (t *leaseTable) answered(host string, answeredAt time.Time) {
	t.extend(host, answeredAt.Add(t.ttl+t.skew))
}

// unanswered records a renewal of host sent at sentAt whose answer never
// came back (failed, timed out, or cut short): it may still have arrived
// as late as the RPC deadline allowed.
func (t *leaseTable) unanswered(host string, sentAt time.Time) {
	t.extend(host, sentAt.Add(t.rpcDeadline+t.ttl+t.skew))
}

// report records the lease host's agent said it held, remaining more on
// its own clock, in its answer to a probe sent at sentAt that arrived at
// answeredAt: the agent read its lease before the answer left, so the
// lease ends before answeredAt + remaining. The answer to the newest probe
// replaces older reports, so the boot window's bound goes once the first
// grant replaced it: a report only ever bounds a lease the agent held
// then, and every later extension of it is a renewal this table counts
// among its grants (or, from a predecessor, in the election bound).
func (t *leaseTable) report(host string, sentAt, answeredAt time.Time, remaining time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.reported[host]; ok && sentAt.Before(r.sentAt) {
		return
	}
	r := reportedLease{sentAt: sentAt}
	if remaining > 0 {
		r.until = answeredAt.Add(remaining + t.skew)
	}
	t.reported[host] = r
}

// extend raises host's bound to until; a grant never shortens it, since a
// renewal that ends late (an answer slower than a later probe's) may still
// be the one the agent holds.
func (t *leaseTable) extend(host string, until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if until.After(t.until[host]) {
		t.until[host] = until
	}
}

// hostUntil returns until when host may still hold a lease: the later of
// this term's grants to it and the new-leader bound.
func (t *leaseTable) hostUntil(host string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hostUntilLocked(host)
}

func (t *leaseTable) hostUntilLocked(host string) time.Time {
	until := t.electedAt.Add(t.ttl + t.skew)
	if !t.anchors[host] {
		until = until.Add(t.rpcDeadline)
	}
	if u := t.until[host]; u.After(until) {
		until = u
	}
	if u := t.reported[host].until; u.After(until) {
		until = u
	}
	for _, sentAt := range t.inflight[host] {
		if u := sentAt.Add(t.rpcDeadline + t.ttl + t.skew); u.After(until) {
			until = u
		}
	}
	return until
}

// siteUntil returns until when some host of hosts, the agents of one
// site, may still hold a lease; zero for no hosts.
func (t *leaseTable) siteUntil(hosts []string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var until time.Time
	for _, h := range hosts {
		if u := t.hostUntilLocked(h); u.After(until) {
			until = u
		}
	}
	return until
}

// siteBound is siteUntil during a term; false between terms, when this
// server does not lead and counts nothing.
func (t *leaseTable) siteBound(hosts []string) (time.Time, bool) {
	t.mu.Lock()
	inTerm := !t.electedAt.IsZero()
	t.mu.Unlock()
	if !inTerm || len(hosts) == 0 {
		return time.Time{}, false
	}
	return t.siteUntil(hosts), true
}

// lapsed reports whether every lease of hosts has lapsed now, and when
// the last one does (or did).
func (t *leaseTable) lapsed(hosts []string) (bool, time.Time) {
	until := t.siteUntil(hosts)
	return !t.now().Before(until), until
}

// waitLapsed waits until every lease of hosts has lapsed and returns how
// long it waited. It counts again when the bound it waited for passes, so
// a renewal recorded meanwhile (a probe that was in flight) is waited for
// too. It fails when ctx ends first.
func (t *leaseTable) waitLapsed(ctx context.Context, hosts []string) (time.Duration, error) {
	start := t.now()
	for {
		d := t.siteUntil(hosts).Sub(t.now())
		if d <= 0 {
			return t.now().Sub(start), nil
		}
		if err := t.sleep(ctx, d); err != nil {
			return 0, err
		}
	}
}

// sleep waits d on the table's clock, or until ctx ends.
func (t *leaseTable) sleep(ctx context.Context, d time.Duration) error {
	timer := t.clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C():
		return nil
	}
}
