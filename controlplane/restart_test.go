package controlplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// probe asks the agent for its report without renewing anything.
func (w *leaseWatcher) probe(ctx context.Context) (*pb.ProbeResponse, error) {
	return w.client.Probe(ctx, &pb.ProbeRequest{ObserveOnly: true})
}

// restartsInPlace lists the audit trail's restart-in-place entries.
func restartsInPlace(t *testing.T, c *testCluster) []string {
	t.Helper()
	resp, err := c.client(c.waitForLeader()).ListAudit(testCtx(t), &pb.ListAuditRequest{})
	require.NoError(t, err)
	var out []string
	for _, e := range resp.GetEntries() {
		if e.GetAction() == "restart-in-place" {
			out = append(out, e.GetDetail())
		}
	}
	return out
}

// TestRestartInPlace_LeaseLapsedInSameEpoch stops two of three servers
// for longer than lease_ttl: the active site's agent fences its primary,
// though nothing failed over. Once a leader renews the lease again in the
// same epoch, it restarts the primary in place and records it.
func TestRestartInPlace_LeaseLapsedInSameEpoch(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	c := newTestClusterWith(t, 3, func(cfg *config.ServerConfig) {
		cfg.Failover.ProbeInterval, cfg.Failover.ProbeTimeout, cfg.Failover.LeaseTTL = 200*time.Millisecond, 500*time.Millisecond, ttl
	})
	fakes := startTestAgent(t, c, "db-1", "primary", ttl, map[string]driver.Role{"postgres": driver.RolePrimary})
	w := newLeaseWatcher(t, c, "db-1", ttl)
	ctx := testCtx(t)
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		resp, err := w.probe(ctx)
		if err != nil {
			return false, err
		}
		l := resp.GetLease()
		return resp.GetEpoch() == 1 && l.GetValid() && l.GetEpoch() == 1, fmt.Errorf("no lease of epoch 1 yet: epoch %d, lease %+v", resp.GetEpoch(), l)
	})

	// No quorum: nobody renews, and the lease lapses.
	stopped := []*testServer{c.servers[0], c.servers[1]}
	for _, ts := range stopped {
		c.kill(ts)
	}
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		resp, err := w.probe(ctx)
		if err != nil {
			return false, err
		}
		var pg *pb.ServiceStatus // the one service, nil until reported
		if svcs := resp.GetServices(); len(svcs) > 0 {
			pg = svcs[0]
		}
		return fakes["postgres"].Role() == driver.RoleStopped && resp.GetFenced() &&
				pg.GetFenceCause() == pb.FenceCause_FENCE_CAUSE_LEASE_LAPSED && pg.GetFenceEpoch() == 1,
			fmt.Errorf("postgres %s, fenced %t (%s)", fakes["postgres"].Role(), resp.GetFenced(), resp.GetFenceReason())
	})

	for _, ts := range stopped {
		c.restart(ts)
	}
	c.waitForLeader()
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		resp, err := w.probe(ctx)
		if err != nil {
			return false, err
		}
		return fakes["postgres"].Role() == driver.RolePrimary && !resp.GetFenced() && resp.GetEpoch() == 1,
			fmt.Errorf("postgres %s, fenced %t (%s), epoch %d", fakes["postgres"].Role(), resp.GetFenced(), resp.GetFenceReason(), resp.GetEpoch())
	})
	a, epoch, err := agentStatus(t, c, "db-1")
	require.NoError(t, err)
	require.Equal(t, uint64(1), epoch, "nothing failed over")
	require.Equal(t, "primary", a.GetSite())
	restarts := restartsInPlace(t, c)
	require.Len(t, restarts, 1, "one restart, recorded: %v", restarts)
	require.Contains(t, restarts[0], "restart postgres on db-1 in place")
}

// TestRestartInPlace_NotAfterAnotherSiteWasActive fences the active
// site's engine by making dr active, then makes primary active again: the
// engine was fenced because another site became active, in an older
// epoch, so the leader renewing the lease again never restarts it.
func TestRestartInPlace_NotAfterAnotherSiteWasActive(t *testing.T) {
	const ttl = 3 * time.Second
	c := newTestCluster(t, 3)
	fakes := startTestAgent(t, c, "app-1", "primary", ttl, map[string]driver.Role{"engine": driver.RolePrimary})
	w := newLeaseWatcher(t, c, "app-1", ttl)
	ctx := testCtx(t)
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		_, err := w.lastRenewal(ctx)
		return err == nil, err
	})

	_, err := c.standIn(c.follower()).SetActiveSite(ctx, &pb.SetActiveSiteRequest{Site: "dr", ExpectedEpoch: 1, Reason: "test"})
	require.NoError(t, err)
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		resp, err := w.probe(ctx)
		if err != nil {
			return false, err
		}
		return fakes["engine"].Role() == driver.RoleStopped && resp.GetFenced() && resp.GetEpoch() == 2,
			fmt.Errorf("engine %s, fenced %t, epoch %d", fakes["engine"].Role(), resp.GetFenced(), resp.GetEpoch())
	})

	_, err = c.standIn(c.follower()).SetActiveSite(ctx, &pb.SetActiveSiteRequest{Site: "primary", ExpectedEpoch: 2, Reason: "test"})
	require.NoError(t, err)
	// The leader renews app-1's lease in epoch 3; a restart in place
	// would follow the first renewal. Wait for several more.
	var first time.Time
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		resp, err := w.probe(ctx)
		if err != nil {
			return false, err
		}
		l := resp.GetLease()
		return l.GetValid() && l.GetEpoch() == 3, fmt.Errorf("lease %+v", l)
	})
	first, err = w.lastRenewal(ctx)
	require.NoError(t, err)
	renewals := 0
	for last := first; renewals < 5; {
		testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
			r, err := w.lastRenewal(ctx)
			return err == nil && r.After(last), fmt.Errorf("no renewal since %s: %v", last, err)
		})
		last, err = w.lastRenewal(ctx)
		require.NoError(t, err)
		renewals++
	}
	resp, err := w.probe(ctx)
	require.NoError(t, err)
	require.Equal(t, driver.RoleStopped, fakes["engine"].Role(), "the engine fenced when dr became active must stay fenced")
	require.True(t, resp.GetFenced())
	require.Empty(t, restartsInPlace(t, c))
}

// TestRestarter_DownPrimaries: a primary seen stopped on the host that
// ran it is overdue after primary_start_timeout, or once two restarts in
// a row failed; seen primary again, it is forgotten; a host that never
// ran it as primary, or a stale probe, records nothing.
func TestRestarter_DownPrimaries(t *testing.T) {
	f := config.FailoverConfig{FailoverTimeout: 3 * time.Second, PrimaryStartTimeout: 30 * time.Second}
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	cases := []struct {
		name    string
		run     func(r *restarter)
		now     time.Duration
		overdue []string
	}{
		{"down, within primary_start_timeout", func(r *restarter) {
			r.sawPrimary("db-1", "postgres", at(0))
			r.sawStopped("db-1", "postgres", at(time.Second))
		}, 30 * time.Second, nil},
		{"down for primary_start_timeout", func(r *restarter) {
			r.sawPrimary("db-1", "postgres", at(0))
			r.sawStopped("db-1", "postgres", at(time.Second))
			r.sawStopped("db-1", "postgres", at(2*time.Second))
		}, 31 * time.Second, []string{"postgres@db-1 since 1s, last primary 0s"}},
		{"two restarts failed", func(r *restarter) {
			r.sawPrimary("db-1", "postgres", at(0))
			r.sawStopped("db-1", "postgres", at(time.Second))
			r.restartFailed("postgres", "shared memory still in use")
			r.restartFailed("postgres", "no data directory")
		}, 5 * time.Second, []string{"postgres@db-1 since 1s, last primary 0s"}},
		{"one restart failed", func(r *restarter) {
			r.sawPrimary("db-1", "postgres", at(0))
			r.sawStopped("db-1", "postgres", at(time.Second))
			r.restartFailed("postgres", "shared memory still in use")
		}, 5 * time.Second, nil},
		{"back as primary", func(r *restarter) {
			r.sawPrimary("db-1", "postgres", at(0))
			r.sawStopped("db-1", "postgres", at(time.Second))
			r.restartFailed("postgres", "no data directory")
			r.sawPrimary("db-1", "postgres", at(2*time.Second))
		}, time.Minute, nil},
		{"stopped on a host that never ran it as primary", func(r *restarter) {
			r.sawPrimary("db-1", "postgres", at(0))
			r.sawStopped("db-3", "postgres", at(time.Second))
		}, time.Minute, nil},
		{"a probe sent before the one that found it primary", func(r *restarter) {
			r.sawPrimary("db-1", "postgres", at(time.Second))
			r.sawStopped("db-1", "postgres", at(500*time.Millisecond))
		}, time.Minute, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRestarter()
			tc.run(r)
			var got []string
			for _, d := range r.overdue(at(tc.now), f) {
				got = append(got, fmt.Sprintf("%s@%s since %s, last primary %s", d.service, d.host, d.since.Sub(t0), d.lastPrimary.Sub(t0)))
			}
			require.Equal(t, tc.overdue, got)
		})
	}
}
