package hostagent

import (
	"context"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/clock"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// advanceTo moves clk to target one armed timer at a time, waiting before
// each step until the code under test armed its next timer (its pass is
// over), and after the last one until the pass it fired is over too.
func advanceTo(t *testing.T, ctx context.Context, clk *clock.Fake, target time.Time) {
	t.Helper()
	for {
		require.NoError(t, clk.BlockUntil(ctx, 1))
		next, ok := clk.Next()
		if !ok || next.After(target) {
			clk.Advance(target.Sub(clk.Now()))
			require.NoError(t, clk.BlockUntil(ctx, 1))
			return
		}
		clk.Advance(next.Sub(clk.Now()))
	}
}

// TestAgent_Fencer_FencesAtTheGrantedDeadline runs the agent on a virtual
// clock: a renewal granting lease_ttl keeps the primary until exactly
// arrival + lease_ttl, and the fencer fences it at that instant, not 1ns
// before (invariant 4). The renewal arrives on a fencer tick, so the
// deadline is one of the fencer's checks.
func TestAgent_Fencer_FencesAtTheGrantedDeadline(t *testing.T) {
	ctx := ctxT(t)
	// The virtual clock starts at the wall clock's time: the boot window
	// is compared with the (absent) lease file's wall-clock time.
	clk := clock.NewFake(time.Now())
	start := clk.Now()
	ta := newTestAgent(t, 3*time.Second, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RolePrimary}, func(ta *testAgent) {
		ta.clock = clk
	})
	advanceTo(t, ctx, clk, start.Add(time.Second))

	const ttl = 2500 * time.Millisecond
	_, err := ta.client.Probe(ctx, &pb.ProbeRequest{Epoch: 1, LeaderId: "s1", ActiveSite: "primary", LeaseTtlMs: uint64(ttl.Milliseconds())})
	require.NoError(t, err)
	deadline := start.Add(time.Second + ttl)
	require.Equal(t, deadline, ta.agent.lease.deadline(), "the lease runs lease_ttl from the renewal's arrival")

	advanceTo(t, ctx, clk, deadline.Add(-time.Nanosecond))
	require.True(t, ta.agent.lease.valid(clk.Now()))
	require.Equal(t, driver.RolePrimary, ta.fakes["app"].Role(), "fenced before the lease lapsed")

	advanceTo(t, ctx, clk, deadline)
	require.False(t, ta.agent.lease.valid(clk.Now()), "the lease runs past its deadline")
	require.Equal(t, driver.RoleStopped, ta.fakes["app"].Role(), "not fenced at the deadline")
	require.Equal(t, driver.RoleStandby, ta.fakes["pg"].Role(), "a standby is not fenced")
	fenced, f := ta.agent.services["app"].isFenced()
	require.True(t, fenced)
	require.Contains(t, f.reason, "lease expired")
	require.Equal(t, pb.FenceCause_FENCE_CAUSE_LEASE_LAPSED, f.cause)
}

// TestAgent_AnchoredRenewal_RunsFromTheAnchorsArrival: a renewal anchored
// on an earlier probe runs lease_ttl from that probe's arrival, however
// late the renewal itself arrives, since the leader counts it from the
// anchor's answer (invariant 4); one anchored on a probe the agent does
// not remember (of another leader, or before a restart) renews nothing.
func TestAgent_AnchoredRenewal_RunsFromTheAnchorsArrival(t *testing.T) {
	ctx := ctxT(t)
	clk := clock.NewFake(time.Now())
	start := clk.Now()
	ta := newTestAgent(t, 3*time.Second, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RolePrimary}, func(ta *testAgent) {
		ta.clock = clk
	})
	const ttl = 3 * time.Second
	probe := func(id, anchor uint64, leader string) {
		t.Helper()
		resp, err := ta.client.Probe(ctx, &pb.ProbeRequest{Epoch: 1, LeaderId: leader, ActiveSite: "primary",
			LeaseTtlMs: uint64(ttl.Milliseconds()), ProbeId: id, LeaseAnchor: anchor})
		require.NoError(t, err)
		require.True(t, resp.GetLeaseAnchors(), "the agent says it honours anchors")
	}
	advanceTo(t, ctx, clk, start.Add(500*time.Millisecond))
	probe(1, 0, "s1") // unanchored: from its own arrival
	require.Equal(t, start.Add(500*time.Millisecond+ttl), ta.agent.lease.deadline())

	advanceTo(t, ctx, clk, start.Add(time.Second))
	probe(2, 1, "s1")
	require.Equal(t, start.Add(500*time.Millisecond+ttl), ta.agent.lease.deadline(), "anchored on probe 1: from its arrival")

	// Probe 3 arrives at 1.5s; a renewal anchored on it arrives late, at
	// 3s, and still runs from 1.5s.
	advanceTo(t, ctx, clk, start.Add(1500*time.Millisecond))
	probe(3, 2, "s1")
	advanceTo(t, ctx, clk, start.Add(3*time.Second))
	probe(4, 3, "s1")
	require.Equal(t, start.Add(1500*time.Millisecond+ttl), ta.agent.lease.deadline())

	// Probe 4's id from another leader, and an id never seen: nothing.
	advanceTo(t, ctx, clk, start.Add(3500*time.Millisecond))
	probe(5, 4, "s2")
	probe(6, 99, "s1")
	require.Equal(t, start.Add(1500*time.Millisecond+ttl), ta.agent.lease.deadline(), "an unknown anchor renews nothing")
	probe(7, 4, "s1")
	require.Equal(t, start.Add(3*time.Second+ttl), ta.agent.lease.deadline())
}

// TestProbeReceipts_NewestFirst: a leader's probe id seen again (a
// restarted leader) is found at its newest arrival, and the ring keeps
// the last probeReceiptsKept receipts.
func TestProbeReceipts_NewestFirst(t *testing.T) {
	var r probeReceipts
	t0 := time.Now()
	r.record("s1", 1, t0)
	r.record("s1", 1, t0.Add(time.Second))
	at, ok := r.receivedAt("s1", 1)
	require.True(t, ok)
	require.Equal(t, t0.Add(time.Second), at)
	for i := range probeReceiptsKept {
		r.record("s2", uint64(100+i), t0)
	}
	_, ok = r.receivedAt("s1", 1)
	require.False(t, ok, "forgotten after %d newer receipts", probeReceiptsKept)
	_, ok = r.receivedAt("s2", 0)
	require.False(t, ok, "id 0 is no probe")
}
