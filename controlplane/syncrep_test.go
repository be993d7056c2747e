package controlplane

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// syncSites is newDetectorSites in synchronous mode: db-2's fake standby
// streams as "db-2", and db-1's fake primary lists it as its primary would.
type syncSites struct {
	*twoSites
	primary, standby *driver.Fake
}

func newSyncSites(t *testing.T, strict bool) *syncSites {
	ts := newDetectorSites(t, func(cfg *config.ServerConfig) {
		fastFailover(false)(cfg)
		cfg.Replication = config.ReplicationConfig{Mode: config.ReplicationSync, Strict: strict, DegradeAfter: 500 * time.Millisecond}
	})
	ss := &syncSites{twoSites: ts, primary: ts.db1["postgres"], standby: ts.db2["postgres"]}
	ss.standby.SetReplication(driver.Replication{Position: driver.FakePosition, ApplicationName: "db-2"})
	return ss
}

// stream makes the primary list db-2 with state, sync state and flush
// position.
func (ss *syncSites) stream(state, syncState, flushed string) {
	ss.primary.SetStandbys([]driver.StandbyReplication{{ApplicationName: "db-2", State: state, SyncState: syncState, FlushPosition: flushed}})
}

// record returns the leader's replicated record of postgres.
func (ss *syncSites) record(t *testing.T) structs.SyncReplication {
	t.Helper()
	rec, _ := ss.c.waitForLeader().fsm.syncReplication("postgres")
	return rec
}

// waitRecord waits until the record satisfies cond.
func (ss *syncSites) waitRecord(t *testing.T, what string, cond func(structs.SyncReplication) bool) structs.SyncReplication {
	t.Helper()
	var rec structs.SyncReplication
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		rec = ss.record(t)
		return cond(rec), fmt.Errorf("waiting for %s; record %+v", what, rec)
	})
	return rec
}

// waitSetting waits until the primary runs with setting.
func (ss *syncSites) waitSetting(t *testing.T, setting string) {
	t.Helper()
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		got, _ := ss.primary.SyncStandbyNames()
		return got == setting, fmt.Errorf("synchronous_standby_names %q, want %q", got, setting)
	})
}

const waitsForDB2 = `FIRST 1 ("db-2")`

// TestSyncReplication_StandbyEntersOnlyOnceSyncAndFlushed is the first
// half of invariant 8: a standby enters the recorded set only after its
// primary reports it sync and it flushed past where the setting took
// effect, so it holds what was acknowledged before it too.
func TestSyncReplication_StandbyEntersOnlyOnceSyncAndFlushed(t *testing.T) {
	ss := newSyncSites(t, false)
	ss.stream("streaming", "async", "0/2000000")
	ss.waitSetting(t, waitsForDB2)
	rec := ss.waitRecord(t, "the record of db-1", func(r structs.SyncReplication) bool { return r.Primary == "db-1" })
	require.True(t, rec.Degraded(), "async until a standby confirms: %+v", rec)

	// Sync, but not yet flushed past the setting's position.
	ss.stream("streaming", "sync", "0/3000000")
	time.Sleep(time.Second) // ten probe intervals: enough to be judged
	rec = ss.record(t)
	require.Empty(t, rec.Synchronous, "a standby behind the setting's position may lack acknowledged commits")
	require.True(t, rec.Degraded())

	ss.stream("streaming", "sync", driver.FakePosition)
	rec = ss.waitRecord(t, "db-2 recorded synchronous", func(r structs.SyncReplication) bool { return r.IsSynchronous("db-2") })
	require.False(t, rec.Degraded())

	// A failover to it now loses nothing, and the guard says so.
	exp := ss.c.waitForLeader().rpoExposure("dr", nil)
	require.True(t, exp.known, exp.detail)
	require.Zero(t, exp.seconds, exp.detail)
	require.Contains(t, exp.detail, "synchronous standby of db-1")
}

// TestSyncReplication_LeavesRecordBeforeRemoval is the second half of
// invariant 8: when the synchronous standby stops confirming, the leader
// records the degrade before it lets the primary stop waiting. The
// primary's agent refuses the new setting here, so the order shows: the
// record is degraded while the primary still waits for db-2.
func TestSyncReplication_LeavesRecordBeforeRemoval(t *testing.T) {
	ss := newSyncSites(t, false)
	ss.stream("streaming", "sync", driver.FakePosition)
	ss.waitRecord(t, "db-2 recorded synchronous", func(r structs.SyncReplication) bool { return r.IsSynchronous("db-2") })

	ss.primary.FailWith("set-sync", errors.New("injected: cannot reload"))
	ss.primary.SetStandbys(nil) // db-2's connection is gone
	lostAt := time.Now()
	rec := ss.waitRecord(t, "degraded", func(r structs.SyncReplication) bool { return r.Degraded() })
	require.Empty(t, rec.Synchronous)
	require.Contains(t, rec.DegradedReason, "standby db-2 has not confirmed commits")
	require.Contains(t, rec.DegradedReason, "not connected to the primary")
	require.GreaterOrEqual(t, rec.DegradedSince.Sub(lostAt), 400*time.Millisecond, "degraded only after degrade_after (500ms, less a probe's age)")
	got, _ := ss.primary.SyncStandbyNames()
	require.Equal(t, waitsForDB2, got, "the record left first; the primary still waits")

	// Once the agent takes it, the primary writes on asynchronously.
	ss.primary.FailWith("set-sync", nil)
	ss.waitSetting(t, "")

	// The standby comes back: sync is restored the same careful way.
	ss.stream("streaming", "async", "0/2000000")
	ss.waitSetting(t, waitsForDB2)
	require.True(t, ss.record(t).Degraded(), "not synchronous before the primary reports it sync")
	ss.stream("streaming", "sync", driver.FakePosition)
	rec = ss.waitRecord(t, "sync restored", func(r structs.SyncReplication) bool { return r.IsSynchronous("db-2") && !r.Degraded() })
	require.Equal(t, "db-1", rec.Primary)
}

// TestSyncReplication_Strict_NeverDegrades: in strict mode a synchronous
// standby that stops confirming stays recorded and waited for.
func TestSyncReplication_Strict_NeverDegrades(t *testing.T) {
	ss := newSyncSites(t, true)
	ss.stream("streaming", "sync", driver.FakePosition)
	ss.waitRecord(t, "db-2 recorded synchronous", func(r structs.SyncReplication) bool { return r.IsSynchronous("db-2") })

	ss.primary.SetStandbys(nil)
	time.Sleep(2 * time.Second) // four times degrade_after
	rec := ss.record(t)
	require.False(t, rec.Degraded(), "strict mode never degrades: %+v", rec)
	require.True(t, rec.IsSynchronous("db-2"))
	got, _ := ss.primary.SyncStandbyNames()
	require.Equal(t, waitsForDB2, got, "writes wait for db-2")
}

// TestSyncReplication_LeaderChangeMidDegrade: a leader recorded the
// degrade and died before the primary stopped waiting; the next leader
// finishes it from the record, and does not call db-2 synchronous again
// before the primary reports it sync.
func TestSyncReplication_LeaderChangeMidDegrade(t *testing.T) {
	ss := newSyncSites(t, false)
	ss.stream("streaming", "sync", driver.FakePosition)
	ss.waitRecord(t, "db-2 recorded synchronous", func(r structs.SyncReplication) bool { return r.IsSynchronous("db-2") })

	ss.primary.FailWith("set-sync", errors.New("injected: cannot reload"))
	ss.primary.SetStandbys(nil)
	before := ss.waitRecord(t, "degraded", func(r structs.SyncReplication) bool { return r.Degraded() })
	old := ss.c.waitForLeader()
	ss.c.kill(old)
	ss.primary.FailWith("set-sync", nil)
	ss.waitSetting(t, "")
	require.NotSame(t, old, ss.c.waitForLeader())
	rec := ss.record(t)
	require.True(t, rec.Degraded())
	require.Equal(t, before.DegradedSince, rec.DegradedSince, "the new leader keeps the record it found")
	require.Empty(t, rec.Synchronous)
}

// TestRPOExposure_CountsUntilTheLeaseEnds is invariant 9 in async mode:
// the old primary may acknowledge writes until its lease lapses, so the
// expected data loss runs from what the standby has to the end of that
// lease as the leader counts it, not to now.
func TestRPOExposure_CountsUntilTheLeaseEnds(t *testing.T) {
	ts := newDetectorSites(t, fastFailover(false))
	leader := ts.c.waitForLeader()
	var exp exposure
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		exp = leader.rpoExposure("dr", nil)
		return exp.known && strings.Contains(exp.detail, "replayed all its primary had written"), fmt.Errorf("exposure %+v", exp)
	})
	// The lease's end only moves later: read before the exposure, it is
	// a bound the exposure must reach. The database's host's lease: the
	// application host's, renewed at other moments, may end later.
	until, ok := leader.leases.siteBound([]string{"db-1"})
	require.True(t, ok)
	exp = leader.rpoExposure("dr", nil)
	require.Contains(t, exp.detail, "until its lease lapses at")
	require.GreaterOrEqual(t, exp.seconds, time.Until(until).Seconds(), "the loss counts to the lease's end: %s", exp.detail)
	f := leader.config.Failover
	require.Less(t, exp.seconds, (f.LeaseTTL + f.ClockSkewMargin + f.ProbeTimeout + 2*time.Second).Seconds(), exp.detail)
}
