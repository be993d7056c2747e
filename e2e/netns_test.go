package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testing/netns"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// Helpers of the network-namespace scenarios (netns_*_test.go). Each
// scenario builds its own topology (internal/testing/netns.StandardLayout: sites
// primary, dr, witness and an operator's host, one namespace per host)
// with drplane servers and agents and a PostgreSQL primary and standby in
// it, drives it through the CLI on the operator's host, and judges a
// history checker's record. The scenarios run one after another: each
// runs fourteen processes, and on a busy two-core machine two topologies
// at once would measure the machine rather than drplane.

// newNetnsDeployment builds a deployment for t; a nil failover keeps the
// servers' defaults (manual failover only).
func newNetnsDeployment(t testing.TB, failover *config.FailoverConfig) *netns.Deployment {
	t.Helper()
	return netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Failover: failover})
}

// automaticFailover is the servers' default failover block with automatic
// failover on: probe 500ms, lease 3s, failover_timeout 3.5s, skew 500ms.
func automaticFailover() *config.FailoverConfig {
	f := config.DefaultServerConfig().Failover
	f.Automatic = true
	return &f
}

// timed runs a CLI command and returns its output and wall time.
func timed(t testing.TB, d *netns.Deployment, args ...string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	out := d.MustCLI(args...)
	return out, time.Since(start)
}

// checkHistory stops the checker, reads the rows of the final primary
// (host) and judges the history against promise; it fails the test on
// any violation and logs the verdict.
func checkHistory(t testing.TB, d *netns.Deployment, c *netns.Checker, host string, promise netns.Promise) (netns.Result, *netns.History) {
	t.Helper()
	h := c.Stop()
	rows, err := d.Rows(context.Background(), host)
	require.NoError(t, err)
	r := h.Check(rows, promise)
	t.Logf("history: %s (%d status answers, %d failed)", r, len(h.Polls), h.PollErrors)
	require.Empty(t, r.SplitBrain, "no two sites may accept writes in one epoch (DESIGN.md invariant 1)")
	require.Empty(t, opsString(r.Stray), "no site may accept writes in an epoch in which it is not active (invariant 1)")
	require.Empty(t, opsString(r.Phantoms), "a refused write must not exist")
	require.Empty(t, opsString(r.Unpromised), "acknowledged rows lost beyond what the plan promises")
	return r, h
}

// lossPromise is a failover's promise when the primary's database died
// between killStart and killEnd: only rows it acknowledged within the RPO
// guard before its death may be lost. Killing every process of a host
// takes a moment, during which the doomed server may still acknowledge a
// write, so the death is the interval, not an instant.
func lossPromise(d *netns.Deployment, killStart, killEnd time.Time) netns.Promise {
	return netns.Promise{LossSite: "primary", LossFrom: killStart.Add(-d.Failover.MaxDataLoss), LossUntil: killEnd}
}

// requirePromotedAfterLease checks invariant 4 on a failover's history.
// The old site's agents were reachable until lastContact (their death or
// their cut), so the leader renewed their leases at most one probe round
// (probe_interval + probe_timeout) before it, and those leases lapsed no
// earlier than that plus lease_ttl: no promotion may start before. It
// returns how long after lastContact + lease_ttl the first promotion
// started (negative when within that last probe round).
func requirePromotedAfterLease(t testing.TB, d *netns.Deployment, ex *netns.Execution, lastContact time.Time) time.Duration {
	t.Helper()
	f := d.Failover
	earliest := lastContact.Add(-f.ProbeInterval - f.ProbeTimeout + f.LeaseTTL)
	var first *time.Time
	for _, st := range ex.Steps {
		if st.Action != "promote" {
			continue
		}
		require.NotNil(t, st.Started, "step %s never started", st.ID)
		require.True(t, st.Started.After(earliest), "step %s started %s after the old site's last contact, before its leases (lease_ttl %s) can have lapsed (invariant 4)",
			st.ID, st.Started.Sub(lastContact), f.LeaseTTL)
		if first == nil || st.Started.Before(*first) {
			first = st.Started
		}
	}
	require.NotNil(t, first, "execution %s promoted nothing", ex.ID)
	return first.Sub(lastContact.Add(f.LeaseTTL))
}

func opsString(ops []netns.Op) string {
	var b strings.Builder
	for i, op := range ops {
		if i == 10 {
			fmt.Fprintf(&b, "... and %d more\n", len(ops)-i)
			break
		}
		b.WriteString(op.String() + "\n")
	}
	return b.String()
}

// waitActive waits until the control plane names site active, and
// returns the epoch.
func waitActive(t testing.TB, d *netns.Deployment, site string, timeout time.Duration) uint64 {
	t.Helper()
	var epoch uint64
	testutil.WaitForResult(t, timeout, func() (bool, error) {
		e, active, err := d.EpochAndSite(context.Background())
		epoch = e
		if err != nil {
			return false, err
		}
		return active == site, fmt.Errorf("active site %s at epoch %d, want %s", active, e, site)
	})
	return epoch
}

// inRecovery is whether host's database is a standby ("true") or a
// primary ("false").
func inRecovery(t *testing.T, d *netns.Deployment, host string) string {
	t.Helper()
	s, err := d.PG[host].QueryString(context.Background(), "SELECT pg_is_in_recovery()::text")
	require.NoError(t, err)
	return s
}

// waitStreaming waits until host's database is a standby whose WAL
// receiver streams and that holds every row of rows.
func waitStreaming(t *testing.T, d *netns.Deployment, host string, rows int) {
	t.Helper()
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		s, err := d.PG[host].QueryString(context.Background(), `SELECT (pg_is_in_recovery() AND
			EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'))::text || ' ' || (SELECT count(*) FROM history)`)
		if err != nil {
			return false, err
		}
		want := fmt.Sprintf("true %d", rows)
		var n int
		_, _ = fmt.Sscanf(strings.TrimPrefix(s, "true "), "%d", &n)
		return strings.HasPrefix(s, "true ") && n >= rows, fmt.Errorf("%s: streaming and rows: %q, want %q or more rows", host, s, want)
	})
}

// dbLossFailover is a manual failover to dr after db-1 was killed under
// the checker's load.
type dbLossFailover struct {
	Ex                *netns.Execution
	Out               string
	Took              time.Duration
	KilledAt, KillEnd time.Time
	// PromotedAfterLease is how long after db-1's lease could have lapsed
	// the first promotion started (see requirePromotedAfterLease).
	PromotedAfterLease time.Duration
}

// failoverAfterDBLoss kills db-1 once the checker has 100 acknowledged
// rows there, runs `drplane failover --to dr`, checks that it succeeded
// with an RTO and RPO recorded and promoted only after the lost host's
// lease (invariant 4), and waits until dr is active at epoch 2.
func failoverAfterDBLoss(t testing.TB, d *netns.Deployment, c *netns.Checker) dbLossFailover {
	t.Helper()
	d.WaitForAcks(c, "primary", 100, time.Minute)
	var f dbLossFailover
	f.KilledAt = time.Now()
	require.NoError(t, d.KillHost("db-1"))
	f.KillEnd = time.Now()
	f.Out, f.Took = timed(t, d, "failover", "--to", "dr", "--yes")
	f.Ex = d.LastExecution()
	require.Equal(t, "succeeded", f.Ex.Result, f.Out)
	require.Equal(t, "failover", f.Ex.Kind)
	require.NotNil(t, f.Ex.RTOSeconds, "execution %s recorded no RTO", f.Ex.ID)
	require.NotNil(t, f.Ex.RPOSeconds, "execution %s recorded no RPO", f.Ex.ID)
	f.PromotedAfterLease = requirePromotedAfterLease(t, d, f.Ex, f.KillEnd)
	require.Equal(t, uint64(2), waitActive(t, d, "dr", 30*time.Second))
	return f
}
