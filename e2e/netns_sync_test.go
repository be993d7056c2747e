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
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// Synchronous replication (issue 14) on the namespace topology with real
// PostgreSQL: replication { mode = "sync" }, the servers' default timings
// and automatic failover.

// syncReplication is the replication block of these tests.
func syncReplication(strict bool) *config.ReplicationConfig {
	r := config.DefaultServerConfig().Replication
	r.Mode, r.Strict = config.ReplicationSync, strict
	return &r
}

// newSyncDeployment starts the topology in synchronous mode and waits
// until the leader records db-2 as db-1's synchronous standby.
func newSyncDeployment(t testing.TB, failover *config.FailoverConfig, strict bool) *netns.Deployment {
	t.Helper()
	d := netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Failover: failover, Replication: syncReplication(strict)})
	waitReplication(t, d, "db-2 recorded synchronous", func(r *pb.DataReplication) bool {
		return len(r.GetSynchronous()) == 1 && r.GetSynchronous()[0] == "db-2" && r.GetDegradedSince() == nil
	})
	return d
}

// waitReplication polls the status until postgres's replication
// satisfies cond, and returns it.
func waitReplication(t testing.TB, d *netns.Deployment, what string, cond func(*pb.DataReplication) bool) *pb.DataReplication {
	t.Helper()
	var got *pb.DataReplication
	testutil.WaitForResult(t, 2*time.Minute, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := d.Status(ctx)
		if err != nil {
			return false, err
		}
		for _, r := range st.GetReplication() {
			if r.GetService() == "postgres" {
				got = r
				return cond(r), fmt.Errorf("waiting for %s: %v", what, r)
			}
		}
		return false, fmt.Errorf("waiting for %s: no replication of postgres in the status", what)
	})
	return got
}

// acksAfter returns the writes site acknowledged that were sent after t.
func acksAfter(h *netns.History, site string, t time.Time) []netns.Op {
	var out []netns.Op
	for _, op := range h.Ops {
		if op.Outcome == netns.Acked && op.ServerSite == site && op.Sent.After(t) {
			out = append(out, op)
		}
	}
	return out
}

// TestNetns_Sync_PrimarySitePartitioned cuts the primary site off while
// it runs, its own application writing on: its commits wait for db-2,
// which it cannot reach, so it acknowledges nothing after the cut; dr
// takes over by itself, and not one acknowledged row is lost. The
// recorded RPO is 0.
func TestNetns_Sync_PrimarySitePartitioned(t *testing.T) {
	d := newSyncDeployment(t, automaticFailover(), false)
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 100, time.Minute)

	cutAt := time.Now()
	require.NoError(t, d.Topo.CutSite("primary"))
	cutDone := time.Now()
	ex := automaticExecution(t, d)
	require.Equal(t, uint64(2), waitActive(t, d, "dr", 30*time.Second))
	d.WaitForAcks(c, "dr", 100, time.Minute)
	require.NotNil(t, ex.RPOSeconds)
	require.Zero(t, *ex.RPOSeconds, "promoting the recorded synchronous standby loses nothing: %s", ex.RPODetail)
	require.Contains(t, ex.RPODetail, "synchronous standby of db-1")

	r, h := checkHistory(t, d, c, "db-2", netns.Promise{})
	require.Empty(t, r.Lost, "synchronous mode loses no acknowledged row")
	require.Empty(t, acksAfter(h, "primary", cutDone), "the cut-off primary acknowledged writes after the cut")
	t.Logf("sync, primary site partitioned: failover %s started %s after the cut; %s; %d writes acknowledged at dr; 0 acknowledged rows lost",
		ex.ID, ex.StartedAt.Sub(cutAt).Round(time.Millisecond), ex.Measured(), r.AckedBySite["dr"])
}

// TestNetns_Sync_PrimarySiteKilled kills every process of the primary
// site: dr takes over with zero acknowledged rows lost and RPO 0.
func TestNetns_Sync_PrimarySiteKilled(t *testing.T) {
	d := newSyncDeployment(t, automaticFailover(), false)
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 100, time.Minute)

	lostAt := time.Now()
	require.NoError(t, d.KillSite("primary"))
	ex := automaticExecution(t, d)
	require.Equal(t, uint64(2), waitActive(t, d, "dr", 30*time.Second))
	d.WaitForAcks(c, "dr", 100, time.Minute)
	require.NotNil(t, ex.RPOSeconds)
	require.Zero(t, *ex.RPOSeconds, ex.RPODetail)

	r, _ := checkHistory(t, d, c, "db-2", netns.Promise{})
	require.Empty(t, r.Lost, "synchronous mode loses no acknowledged row")
	t.Logf("sync, primary site killed: failover %s started %s after the loss; %s; 0 acknowledged rows lost",
		ex.ID, ex.StartedAt.Sub(lostAt).Round(time.Millisecond), ex.Measured())
}

// TestNetns_Sync_StandbyLost_DegradesThenGuardRefuses cuts the DR
// standby's host off. Its commits waiting, the primary writes on
// asynchronously once the leader recorded the degrade (degrade_after);
// the status says degraded. Then the primary site dies while db-2 comes
// back behind: the automatic failover's RPO guard refuses, db-2 lacking
// more than max_data_loss of acknowledged writes, and nothing is promoted.
func TestNetns_Sync_StandbyLost_DegradesThenGuardRefuses(t *testing.T) {
	f := automaticFailover()
	f.MaxDataLoss = time.Second
	d := newSyncDeployment(t, f, false)
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 50, time.Minute)

	cutAt := time.Now()
	require.NoError(t, d.Topo.IsolateHost("db-2"))
	rep := waitReplication(t, d, "degraded", func(r *pb.DataReplication) bool { return r.GetDegradedSince() != nil })
	require.Empty(t, rep.GetSynchronous())
	require.Contains(t, rep.GetDegradedReason(), "standby db-2 has not confirmed commits since")
	d.WaitForAcks(c, "primary", 50, time.Minute)
	stats := c.Stats()
	// How long the primary's writers waited: from the cut to the first
	// write acknowledged after it.
	var resumed time.Duration
	if first, ok := c.Stop().FirstAck("primary", cutAt); ok {
		resumed = first.Done.Sub(cutAt)
	}
	degradeAfter := config.DefaultServerConfig().Replication.DegradeAfter
	t.Logf("sync, dr standby isolated: degraded at %s (%s after the cut, degrade_after %s): %s; first write acknowledged %s after the cut; %d acknowledged at primary",
		rep.GetDegradedSince().AsTime().Format("15:04:05.000"), rep.GetDegradedSince().AsTime().Sub(cutAt).Round(time.Millisecond), degradeAfter,
		rep.GetDegradedReason(), resumed.Round(time.Millisecond), stats.AckedBySite["primary"])
	require.Less(t, resumed, degradeAfter+20*time.Second, "the primary must write on once degraded")
	t.Logf("RPO now: known %v, %.1fs (%s)", rep.GetExposureKnown(), rep.GetExposureSeconds(), rep.GetExposureDetail())

	// db-2 keeps running behind; the primary site dies.
	time.Sleep(2 * f.MaxDataLoss)
	require.NoError(t, d.KillSite("primary"))
	require.NoError(t, d.Topo.HealHost("db-2"))
	ex := d.WaitForExecution(2*time.Minute, func(ex netns.Execution) bool { return ex.Kind == "failover" && ex.Result != "running" })
	require.Equal(t, "failed", ex.Result, ex.Message)
	require.Contains(t, ex.Message, "RPO guard", ex.Message)
	require.Equal(t, "true", inRecovery(t, d, "db-2"), "the guard refused: db-2 stays a standby")
	if ex.RPOSeconds != nil {
		require.Greater(t, *ex.RPOSeconds, f.MaxDataLoss.Seconds(), ex.RPODetail)
	}
	t.Logf("automatic failover %s refused by the guard: %s (RPO %s)", ex.ID, ex.Message, ex.RPODetail)
}

// TestNetns_SyncStrict_StandbyLost_WritesWait: in strict mode the primary
// acknowledges nothing while its synchronous standby is cut off, and the
// status says sync-strict with db-2 still recorded; once db-2 is back,
// the waiting writes complete.
func TestNetns_SyncStrict_StandbyLost_WritesWait(t *testing.T) {
	d := newSyncDeployment(t, automaticFailover(), true)
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 50, time.Minute)

	require.NoError(t, d.Topo.IsolateHost("db-2"))
	cutDone := time.Now()
	degradeAfter := config.DefaultServerConfig().Replication.DegradeAfter
	time.Sleep(3*degradeAfter + time.Second)
	rep := waitReplication(t, d, "still synchronous", func(r *pb.DataReplication) bool { return true })
	require.Equal(t, pb.ReplicationMode_REPLICATION_MODE_SYNC_STRICT, rep.GetMode())
	require.Nil(t, rep.GetDegradedSince(), "strict mode never degrades")
	require.Equal(t, []string{"db-2"}, rep.GetSynchronous())
	waited := time.Now()

	require.NoError(t, d.Topo.HealHost("db-2"))
	d.WaitForAcks(c, "primary", 50, 2*time.Minute)
	r, h := checkHistory(t, d, c, "db-1", netns.Promise{})
	require.Empty(t, r.Lost)
	var during []string
	for _, op := range acksAfter(h, "primary", cutDone.Add(time.Second)) {
		if op.Done.Before(waited) {
			during = append(during, op.String())
		}
	}
	require.Empty(t, during, "strict mode acknowledged writes while its synchronous standby was cut off:\n%s", strings.Join(during, "\n"))
	t.Logf("sync strict, dr standby isolated for %s: no write acknowledged meanwhile; %s", waited.Sub(cutDone).Round(time.Millisecond), r)
}

// TestNetns_Sync_DrillThenSwitchover: in synchronous mode a drill leaves
// the synchronous standby recorded and its copy never becomes one; a
// switchover to dr loses nothing and re-establishes sync the other way:
// db-2 primary, the demoted db-1 its recorded synchronous standby.
func TestNetns_Sync_DrillThenSwitchover(t *testing.T) {
	d := newSyncDeployment(t, nil, false)
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 50, time.Minute)

	out := d.MustCLI("drill", "--yes")
	drill := d.LastExecution()
	require.Equal(t, "succeeded", drill.Result, out)
	rep := waitReplication(t, d, "db-2 still synchronous", func(r *pb.DataReplication) bool { return true })
	require.Equal(t, []string{"db-2"}, rep.GetSynchronous(), "the drill changed nothing of production's replication")
	require.Nil(t, rep.GetDegradedSince())
	require.Len(t, rep.GetStandbys(), 1, "the drill's copy is no standby: %v", rep.GetStandbys())
	d.WaitForAcks(c, "primary", 50, time.Minute)

	out, took := timed(t, d, "switchover", "--to", "dr", "--yes")
	ex := d.LastExecution()
	require.Equal(t, "succeeded", ex.Result, out)
	require.NotNil(t, ex.RPOSeconds)
	require.Zero(t, *ex.RPOSeconds)
	require.Equal(t, uint64(2), waitActive(t, d, "dr", 30*time.Second))
	d.WaitForAcks(c, "dr", 50, time.Minute)
	rep = waitReplication(t, d, "db-1 synchronous standby of db-2", func(r *pb.DataReplication) bool {
		return r.GetPrimary() == "db-2" && len(r.GetSynchronous()) == 1 && r.GetSynchronous()[0] == "db-1" && r.GetDegradedSince() == nil
	})
	r, _ := checkHistory(t, d, c, "db-2", netns.Promise{})
	require.Empty(t, r.Lost, "a switchover loses nothing")
	t.Logf("sync: drill, then switchover to dr in %s (%s); db-1 then recorded synchronous (%s); %s",
		took.Round(time.Millisecond), ex.Measured(), rep.GetSynchronousStandbyNames(), r)
}
