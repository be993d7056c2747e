package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testing/netns"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestNetns_PrimaryAgentsFrozen freezes (SIGSTOP) the agents of the
// primary site (db-1, app-1) under load, longer than lease_ttl, while
// their PostgreSQL and engine run on. A frozen agent cannot fence, so
// each host's lease guard does: the primary PostgreSQL is stopped
// (immediate shutdown) and the engine killed within lease_ttl of the last
// renewal. The operator fails over to dr; then the agents are continued:
// they report their services fenced and do not act as primary again, and
// the history checker finds no epoch in which two sites accepted writes.
func TestNetns_PrimaryAgentsFrozen(t *testing.T) {
	d := newNetnsDeployment(t, nil)
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 100, time.Minute)
	d.WaitForAgent("db-1", 30*time.Second, netns.AtCurrentEpoch, netns.HasRole("postgres", "primary"))
	d.WaitForAgent("app-1", 30*time.Second, netns.AtCurrentEpoch, netns.HasRole("engine", "primary"))
	enginePID, err := d.Agent("app-1").ServicePID("engine")
	require.NoError(t, err)
	require.NotZero(t, enginePID)

	frozenAt := time.Now()
	for _, h := range []string{"db-1", "app-1"} {
		require.NoError(t, d.FreezeAgent(h))
	}
	// The last renewal reached the agents before the freeze: their leases
	// lapse within lease_ttl of it, and the guards fence then. The bound
	// adds room for a loaded machine.
	bound := d.Failover.LeaseTTL + 5*time.Second
	testutil.WaitForResult(t, bound, func() (bool, error) {
		pid := d.PG["db-1"].PostmasterPID()
		return pid == 0, fmt.Errorf("the primary PostgreSQL still runs as pid %d %s after its agent froze", pid, time.Since(frozenAt).Round(time.Millisecond))
	})
	pgFenced := time.Now()
	testutil.WaitForResult(t, bound, func() (bool, error) {
		pid, err := d.Agent("app-1").ServicePID("engine")
		return err == nil && pid == 0, fmt.Errorf("the engine still runs as pid %d %s after its agent froze (%v)", pid, time.Since(frozenAt).Round(time.Millisecond), err)
	})
	t.Logf("the lease guards fenced db-1's PostgreSQL %s and app-1's engine %s after their agents froze (lease_ttl %s)",
		pgFenced.Sub(frozenAt).Round(time.Millisecond), time.Since(frozenAt).Round(time.Millisecond), d.Failover.LeaseTTL)

	out, took := timed(t, d, "failover", "--to", "dr", "--yes")
	failover := d.LastExecution()
	require.Equal(t, "succeeded", failover.Result, out)
	t.Logf("failover primary -> dr with db-1's and app-1's agents frozen: command %s, %s; promoted %s after the frozen agents' leases could have lapsed\n%s",
		took.Round(time.Millisecond), failover.Measured(), requirePromotedAfterLease(t, d, failover, frozenAt).Round(time.Millisecond), out)
	epoch := waitActive(t, d, "dr", 30*time.Second)
	require.Equal(t, "false", inRecovery(t, d, "db-2"))
	d.WaitForAgent("app-2", 30*time.Second, netns.HasRole("engine", "primary"))
	d.WaitForAcks(c, "dr", 100, time.Minute)

	// The agents come back, still believing their site active until the
	// leader tells them otherwise: they do not act as primary again.
	for _, h := range []string{"db-1", "app-1"} {
		require.NoError(t, d.ThawAgent(h))
	}
	d.WaitForAgent("db-1", 30*time.Second, netns.AtCurrentEpoch, netns.HasRole("postgres", "fenced"))
	d.WaitForAgent("app-1", 30*time.Second, netns.AtCurrentEpoch, netns.HasRole("engine", "fenced"))
	d.WaitForAcks(c, "dr", 50, time.Minute)
	require.Zero(t, d.PG["db-1"].PostmasterPID(), "the fenced old primary must stay down")
	pid, err := d.Agent("app-1").ServicePID("engine")
	require.NoError(t, err)
	require.Zero(t, pid, "the fenced engine must stay down")
	e, _, err := d.EpochAndSite(t.Context())
	require.NoError(t, err)
	require.Equal(t, epoch, e, "nothing failed over again")

	// Rows db-1 acknowledged before the guard stopped it but did not ship
	// to db-2 may be lost; nothing else, and no epoch had two writers.
	r, _ := checkHistory(t, d, c, "db-2", lossPromise(d, frozenAt, pgFenced))
	t.Logf("%d acknowledged rows lost (db-1 fenced %s after its agent froze)", len(r.Lost), pgFenced.Sub(frozenAt).Round(time.Millisecond))
}
