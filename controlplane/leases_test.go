package controlplane

import (
	"context"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/clock"
	"github.com/drplane/drplane/internal/config"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// leaseTimings are the failover timings of the lease tests: probe RPC
// deadline 1s, lease_ttl 3s, clock_skew_margin 500ms.
func leaseTimings() config.FailoverConfig {
	return config.FailoverConfig{ProbeInterval: 500 * time.Millisecond, ProbeTimeout: time.Second, LeaseTTL: 3 * time.Second, ClockSkewMargin: 500 * time.Millisecond}
}

// leaseEpoch is the virtual time the lease tests start at; the leader is
// elected then.
var leaseEpoch = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// at is an instant of a lease test, d after the election.
func at(d time.Duration) time.Time { return leaseEpoch.Add(d) }

// newTestLeaseTable returns a table on a virtual clock at leaseEpoch, with
// this leader elected then.
func newTestLeaseTable(f config.FailoverConfig) (*leaseTable, *clock.Fake) {
	clk := clock.NewFake(leaseEpoch)
	t := newLeaseTable(clk, f)
	t.elect(clk.Now())
	return t, clk
}

// TestLeaseTable_HostUntil checks the bound of DESIGN.md section 5 for
// each kind of grant, and that a lease lapses exactly at it: not 1ns
// before, and at it.
func TestLeaseTable_HostUntil(t *testing.T) {
	noSkew := leaseTimings()
	noSkew.ClockSkewMargin = 0
	cases := []struct {
		name   string
		timing *config.FailoverConfig // nil: leaseTimings
		record func(*leaseTable)
		want   time.Time
	}{{
		name: "new leader, nothing granted: election + RPC deadline + ttl + skew",
		want: at(time.Second + 3*time.Second + 500*time.Millisecond),
	}, {
		name:   "new leader, a host registered as anchoring: election + ttl + skew",
		record: func(l *leaseTable) { l.elect(l.electedAt, "db-1") },
		want:   at(3*time.Second + 500*time.Millisecond),
	}, {
		name:   "new leader, another host anchoring: the RPC deadline still counts",
		record: func(l *leaseTable) { l.elect(l.electedAt, "db-2") },
		want:   at(time.Second + 3*time.Second + 500*time.Millisecond),
	}, {
		name:   "answered renewal: answer + ttl + skew",
		record: func(l *leaseTable) { l.answered("db-1", at(10*time.Second)) },
		want:   at(10*time.Second + 3*time.Second + 500*time.Millisecond),
	}, {
		name:   "unanswered renewal: send + RPC deadline + ttl + skew",
		record: func(l *leaseTable) { l.unanswered("db-1", at(10*time.Second)) },
		want:   at(10*time.Second + time.Second + 3*time.Second + 500*time.Millisecond),
	}, {
		name:   "an answered renewal soon after the election stays under the new-leader bound",
		record: func(l *leaseTable) { l.answered("db-1", at(200*time.Millisecond)) },
		want:   at(time.Second + 3*time.Second + 500*time.Millisecond),
	}, {
		name: "a later answer never shortens an earlier unanswered renewal",
		record: func(l *leaseTable) {
			l.unanswered("db-1", at(10*time.Second))
			l.answered("db-1", at(10*time.Second+400*time.Millisecond))
		},
		want: at(10*time.Second + time.Second + 3*time.Second + 500*time.Millisecond),
	}, {
		name: "a renewal recorded out of order counts",
		record: func(l *leaseTable) {
			l.answered("db-1", at(20*time.Second))
			l.unanswered("db-1", at(19*time.Second+800*time.Millisecond))
		},
		want: at(19*time.Second + 800*time.Millisecond + time.Second + 3*time.Second + 500*time.Millisecond),
	}, {
		name: "a lease the agent reported (its boot window): answer + remaining + skew",
		record: func(l *leaseTable) {
			l.report("db-1", at(10*time.Second), at(10*time.Second+200*time.Millisecond), 8*time.Second)
		},
		want: at(18*time.Second + 700*time.Millisecond),
	}, {
		name: "the newest probe's report replaces an older one: the grant replaced the boot window",
		record: func(l *leaseTable) {
			l.report("db-1", at(10*time.Second), at(10*time.Second+200*time.Millisecond), 8*time.Second)
			l.report("db-1", at(11*time.Second), at(11*time.Second+100*time.Millisecond), 0)
		},
		want: at(time.Second + 3*time.Second + 500*time.Millisecond),
	}, {
		name: "an older probe's report arriving late changes nothing",
		record: func(l *leaseTable) {
			l.report("db-1", at(11*time.Second), at(11*time.Second+100*time.Millisecond), 0)
			l.report("db-1", at(10*time.Second), at(11*time.Second+500*time.Millisecond), 8*time.Second)
		},
		want: at(time.Second + 3*time.Second + 500*time.Millisecond),
	}, {
		name: "a report never shortens a grant",
		record: func(l *leaseTable) {
			l.answered("db-1", at(10*time.Second))
			l.report("db-1", at(10*time.Second), at(10*time.Second), time.Second)
		},
		want: at(10*time.Second + 3*time.Second + 500*time.Millisecond),
	}, {
		name:   "another host's renewal does not count",
		record: func(l *leaseTable) { l.answered("db-2", at(10*time.Second)) },
		want:   at(time.Second + 3*time.Second + 500*time.Millisecond),
	}, {
		name:   "the skew margin is added: without it, answer + ttl",
		timing: &noSkew,
		record: func(l *leaseTable) { l.answered("db-1", at(10*time.Second)) },
		want:   at(10*time.Second + 3*time.Second),
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			timing := leaseTimings()
			if tc.timing != nil {
				timing = *tc.timing
			}
			l, clk := newTestLeaseTable(timing)
			if tc.record != nil {
				tc.record(l)
			}
			require.Equal(t, tc.want, l.hostUntil("db-1"))

			clk.Advance(tc.want.Sub(clk.Now()) - time.Nanosecond)
			lapsed, until := l.lapsed([]string{"db-1"})
			require.False(t, lapsed, "lapsed 1ns before the bound")
			require.Equal(t, tc.want, until)
			clk.Advance(time.Nanosecond)
			lapsed, _ = l.lapsed([]string{"db-1"})
			require.True(t, lapsed, "not lapsed at the bound")
		})
	}
}

// TestLeaseTable_SiteLapsesWithItsLastHost checks that a site lapses when
// the last lease of its hosts does.
func TestLeaseTable_SiteLapsesWithItsLastHost(t *testing.T) {
	l, clk := newTestLeaseTable(leaseTimings())
	l.answered("db-1", at(10*time.Second))
	l.unanswered("app-1", at(10*time.Second))
	want := at(14*time.Second + 500*time.Millisecond)
	require.Equal(t, want, l.siteUntil([]string{"db-1", "app-1"}))

	clk.Advance(want.Sub(clk.Now()) - time.Nanosecond)
	lapsed, _ := l.lapsed([]string{"db-1"})
	require.True(t, lapsed, "db-1's own lease lapsed at 13.5s")
	lapsed, until := l.lapsed([]string{"db-1", "app-1"})
	require.False(t, lapsed)
	require.Equal(t, want, until)
	clk.Advance(time.Nanosecond)
	lapsed, _ = l.lapsed([]string{"db-1", "app-1"})
	require.True(t, lapsed)
	require.True(t, l.siteUntil(nil).IsZero(), "a site without hosts holds no lease")
}

// TestLeaseTable_NewTermForgetsTheOld checks that a term's grants do not
// outlive it: a new election counts only from itself.
func TestLeaseTable_NewTermForgetsTheOld(t *testing.T) {
	l, clk := newTestLeaseTable(leaseTimings())
	l.unanswered("db-1", at(time.Minute))
	l.report("db-1", at(time.Minute), at(time.Minute), time.Hour)
	l.reset()
	clk.Advance(2 * time.Minute)
	l.elect(clk.Now())
	require.Equal(t, at(2*time.Minute+4500*time.Millisecond), l.hostUntil("db-1"))
}

// TestLeaseTable_WaitLapsed waits in virtual time: the wait ends exactly
// at the bound, and early when its context ends.
func TestLeaseTable_WaitLapsed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, clk := newTestLeaseTable(leaseTimings())
	l.answered("db-1", at(time.Second))
	clk.Advance(2 * time.Second)

	type result struct {
		waited time.Duration
		err    error
	}
	done := make(chan result, 1)
	go func() {
		d, err := l.waitLapsed(ctx, []string{"db-1"})
		done <- result{d, err}
	}()
	require.NoError(t, clk.BlockUntil(ctx, 1))
	clk.Advance(2500*time.Millisecond - time.Nanosecond)
	select {
	case r := <-done:
		t.Fatalf("the wait ended 1ns before the bound: %+v", r)
	default:
	}
	clk.Advance(time.Nanosecond)
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, 2500*time.Millisecond, r.waited)
	require.Equal(t, at(4500*time.Millisecond), clk.Now())

	d, err := l.waitLapsed(ctx, []string{"db-1"})
	require.NoError(t, err)
	require.Zero(t, d, "a lapsed lease is not waited for")

	l.unanswered("db-1", clk.Now())
	cctx, ccancel := context.WithCancel(ctx)
	go func() {
		d, err := l.waitLapsed(cctx, []string{"db-1"})
		done <- result{d, err}
	}()
	require.NoError(t, clk.BlockUntil(ctx, 1))
	ccancel()
	require.ErrorIs(t, (<-done).err, context.Canceled)
	require.Zero(t, clk.Armed(), "the abandoned wait stopped its timer")
}

// TestLeaseTable_InFlightRenewalCounts checks that a renewal counts from
// its send: a lease-wait that reads the table while the probe is in
// flight waits for the unanswered bound, and one that started before the
// renewal was recorded counts again when its first bound passes.
func TestLeaseTable_InFlightRenewalCounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, clk := newTestLeaseTable(leaseTimings())
	clk.Advance(5 * time.Second) // past the new-leader bound of 4.5s
	l.answered("db-1", at(5*time.Second))
	require.Equal(t, at(8500*time.Millisecond), l.hostUntil("db-1"))

	done := l.sending("db-1", at(5500*time.Millisecond))
	require.Equal(t, at(10*time.Second), l.hostUntil("db-1"), "in flight: send + deadline + ttl + skew")
	l.answered("db-1", at(5600*time.Millisecond))
	done()
	require.Equal(t, at(9100*time.Millisecond), l.hostUntil("db-1"), "answered: the tighter bound once the probe ended")

	// A wait that began before a renewal was sent ends only once that
	// renewal, too, has lapsed.
	waited := make(chan time.Duration, 1)
	go func() {
		d, err := l.waitLapsed(ctx, []string{"db-1"})
		require.NoError(t, err)
		waited <- d
	}()
	require.NoError(t, clk.BlockUntil(ctx, 1))
	l.answered("db-1", at(6*time.Second))
	clk.Advance(9100*time.Millisecond - 5*time.Second)
	require.NoError(t, clk.BlockUntil(ctx, 1))
	select {
	case d := <-waited:
		t.Fatalf("the wait ended after %s, before the renewal recorded meanwhile lapsed", d)
	default:
	}
	clk.Advance(400 * time.Millisecond)
	require.Equal(t, 4500*time.Millisecond, <-waited)

	// A probe of an ended term leaves the new term's table alone.
	done = l.sending("db-1", clk.Now())
	l.elect(clk.Now())
	done()
	require.Equal(t, clk.Now().Add(4500*time.Millisecond), l.hostUntil("db-1"))
}

// TestRenewalGate: a probe renews unless the newest probe that ended went
// unanswered, anchored on that probe when its agent said it honours
// anchors; a late end of an older probe changes nothing.
func TestRenewalGate(t *testing.T) {
	type end struct {
		id      uint64
		sent    time.Duration
		missed  bool
		anchors bool
	}
	unanchored := renewal{renew: true}
	cases := []struct {
		name      string
		anchoring bool
		ends      []end
		want      renewal
	}{
		{"nothing ended yet", false, nil, unanchored},
		{"nothing ended yet, an agent registered as anchoring: no renewal", true, nil, renewal{}},
		{"an agent registered as anchoring answered", true, []end{{1, 0, false, true}},
			renewal{renew: true, anchor: 1, anchorAnswered: at(10 * time.Millisecond)}},
		{"answered", false, []end{{1, 0, false, false}}, unanchored},
		{"answered by an agent that anchors", false, []end{{1, 0, false, true}},
			renewal{renew: true, anchor: 1, anchorAnswered: at(10 * time.Millisecond)}},
		{"unanswered", false, []end{{1, 0, false, true}, {2, 500 * time.Millisecond, true, false}}, renewal{}},
		{"answered again after a miss", false, []end{{1, 0, true, false}, {2, 500 * time.Millisecond, false, true}},
			renewal{renew: true, anchor: 2, anchorAnswered: at(510 * time.Millisecond)}},
		{"an older probe answering late does not undo a newer miss", false, []end{{2, time.Second, true, false}, {1, 500 * time.Millisecond, false, true}}, renewal{}},
		{"an older probe failing late does not undo a newer answer", false, []end{{2, time.Second, false, true}, {1, 500 * time.Millisecond, true, false}},
			renewal{renew: true, anchor: 2, anchorAnswered: at(time.Second + 10*time.Millisecond)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := renewalGate{anchoring: tc.anchoring}
			for _, e := range tc.ends {
				r := probeResult{probeID: e.id, sentAt: at(e.sent)}
				if e.missed {
					r.err = context.DeadlineExceeded
				} else {
					r.answeredAt, r.resp = at(e.sent+10*time.Millisecond), &pb.ProbeResponse{LeaseAnchors: e.anchors}
				}
				g.ended(r)
			}
			g.ended(probeResult{err: context.Canceled}) // no probe sent: no news
			require.Equal(t, tc.want, g.next())
		})
	}
}

// TestLeaseTable_SilentHost_LeaseLapsesBeforeDetection runs a probe loop's
// renewals in virtual time, 10s into a term, against a host that answers
// the probe sent at 0 (10ms later) and then goes silent: probes every 500ms, each failing at
// its 1s deadline. Only probes sent before the first failure came back
// renew. For an agent that honours anchors they are anchored on the probe
// answered at 10ms, so the bound is that answer + 3s ttl + 500ms skew =
// 3.51s, known before they are sent. For one that does not, each may land
// as late as its deadline, so the bound stops at the last of them (sent at
// 1s: 1s + 1s deadline + 3s ttl + 500ms skew = 5.5s). Either way it has
// lapsed by the time the detector gives the host up (first miss at 500ms
// + failover_timeout 5s): the failover's lease-wait is zero. Had every
// probe renewed unanchored, as before, the bound would run 4.5s past the
// last probe sent, whenever that is.
func TestLeaseTable_SilentHost_LeaseLapsesBeforeDetection(t *testing.T) {
	cases := []struct {
		name    string
		anchors bool
		want    time.Duration
	}{
		{"anchored", true, 3510 * time.Millisecond},
		{"unanchored", false, 5500 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := leaseTimings()
			f.FailoverTimeout = 5 * time.Second
			l, clk := newTestLeaseTable(f)
			// Well into the term: the election's own bound is long past.
			clk.Advance(10 * time.Second)
			base := clk.Now()
			at := func(d time.Duration) time.Time { return base.Add(d) }
			var gate renewalGate
			first := probeResult{probeID: 1, sentAt: at(0), answeredAt: at(10 * time.Millisecond), resp: &pb.ProbeResponse{LeaseAnchors: tc.anchors}}
			l.answered("db-1", first.answeredAt)
			gate.ended(first)
			type probe struct {
				id    uint64
				sent  time.Time
				renew renewal
			}
			var inflight []probe
			var firstMiss time.Time
			id := first.probeID
			for now := f.ProbeInterval; now <= 8*time.Second; now += f.ProbeInterval {
				clk.Advance(at(now).Sub(clk.Now()))
				// Probes whose deadline passed end unanswered, oldest first.
				for len(inflight) > 0 && !inflight[0].sent.Add(f.ProbeTimeout).After(clk.Now()) {
					p := inflight[0]
					inflight = inflight[1:]
					if p.renew.renew && p.renew.anchor == 0 {
						l.unanswered("db-1", p.sent)
					}
					gate.ended(probeResult{probeID: p.id, sentAt: p.sent, err: context.DeadlineExceeded})
					if firstMiss.IsZero() {
						firstMiss = p.sent
					}
				}
				id++
				p := probe{id: id, sent: clk.Now(), renew: gate.next()}
				if p.renew.anchor != 0 {
					// What probeAgent counts before sending it.
					require.Equal(t, first.probeID, p.renew.anchor)
					l.answered("db-1", p.renew.anchorAnswered)
				}
				inflight = append(inflight, p)
			}
			require.Equal(t, at(500*time.Millisecond), firstMiss)
			require.Equal(t, at(tc.want), l.hostUntil("db-1"), "the bound stops at the last renewal")
			detected := firstMiss.Add(f.FailoverTimeout)
			require.False(t, l.hostUntil("db-1").After(detected), "the lease lapses no later than the detector gives the host up")
			renewing := 0
			for _, p := range inflight {
				if p.renew.renew {
					renewing++
				}
			}
			require.Zero(t, renewing, "no probe in flight renews")
		})
	}
}
