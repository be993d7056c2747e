package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testing/netns"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// Benchmarks in the network-namespace topology (netns_test.go). Each
// iteration builds a fresh deployment, runs a command or injects a fault
// under the history checker's write load, judges the history as the
// scenarios do, and tears the deployment down before the next iteration.
// The automatic failovers run once with the leader beside the survivors
// and once with it in the lost site (leaderPlacements). Run one
// iteration per run and take medians over runs:
//
//	go test -run '^$' -bench BenchmarkNetns -benchtime 1x -count 5 -timeout 60m ./e2e/
//
// ns/op is suppressed: an iteration is mostly setup and teardown. The
// figures, means over a run's iterations, are:
//
//	s/rto              the execution's RTO: its trigger (the command, or the
//	                   first missed probe) to the last health gate passing at dr
//	s/switchover       the command's wall time; it returns when the
//	s/failover         execution has ended, after the health gates
//	s/rpo              the execution's RPO: its trigger minus the newest
//	                   write the control plane knew to be at dr
//	rows-lost          acknowledged rows missing at dr (history checker;
//	                   the active writer writes every 10ms)
//	s-data-lost        the acknowledged writes missing at dr as time: from
//	                   the newest surviving acknowledgement before the first
//	                   lost one to the last lost one (0 when none is lost)
//	s/detect           first missed probe to the execution's start
//	s/fault-to-start   the fault to the execution's start
//	s/fault-to-healthy the fault to the last health gate passing at dr
//	s/fault-to-last-old-write
//	                   (partition) the cut to the last write the partitioned
//	                   primary acknowledged, before its agent fenced it
//	s/client-outage    (automatic failovers) what a client of the load
//	                   balancer saw: its last write acknowledged by the old
//	                   primary to its first one acknowledged by the new one.
//	                   The balancer is HAProxy on the ops host, checking
//	                   GET /v1/role/postgres on both database hosts' agents
//	                   every 300ms (fall 2, rise 2, sessions cut when a
//	                   server is marked down); the client writes every 10ms
//	s/fault-to-promoted the fault to the end of the promote step
//
// The instants come from the control plane's record; every process of a
// deployment runs on this machine, on the test's clock.

// BenchmarkNetns_Switchover switches over to dr under load: no
// acknowledged row may be lost.
func BenchmarkNetns_Switchover(b *testing.B) {
	benchmarkNetns(b, func(t testing.TB, m netnsMetrics) {
		d := newNetnsDeployment(t, nil)
		c := d.StartChecker()
		d.WaitForAcks(c, "primary", 100, time.Minute)

		out, took := timed(t, d, "switchover", "--to", "dr", "--yes")
		ex := d.LastExecution()
		require.Equal(t, "succeeded", ex.Result, out)
		require.Equal(t, "switchover", ex.Kind)
		require.NotNil(t, ex.RTOSeconds, "execution %s recorded no RTO", ex.ID)
		require.Equal(t, uint64(2), waitActive(t, d, "dr", 30*time.Second))
		d.WaitForAcks(c, "dr", 100, time.Minute)

		r, h := checkHistory(t, d, c, "db-2", netns.Promise{})
		require.Empty(t, opsString(r.Lost), "a switchover loses no acknowledged row")
		m.add("s/switchover", took.Seconds())
		m.add("s/rto", *ex.RTOSeconds)
		m.addLoss(h, r)
	})
}

// BenchmarkNetns_Failover kills every process of the primary database
// host, then fails over to dr by command, as
// TestNetns_FailoverAfterPrimaryHostLoss_BootFencing_Failback does.
func BenchmarkNetns_Failover(b *testing.B) {
	benchmarkNetns(b, func(t testing.TB, m netnsMetrics) {
		d := newNetnsDeployment(t, nil)
		c := d.StartChecker()
		f := failoverAfterDBLoss(t, d, c)
		d.WaitForAcks(c, "dr", 100, time.Minute)

		r, h := checkHistory(t, d, c, "db-2", lossPromise(d, f.KilledAt, f.KillEnd))
		m.add("s/failover", f.Took.Seconds())
		m.add("s/rto", *f.Ex.RTOSeconds)
		m.add("s/rpo", *f.Ex.RPOSeconds)
		m.addLoss(h, r)
	})
}

// BenchmarkNetns_AutoFailover_SiteLoss kills every process of the
// primary site at once, as TestNetns_AutoFailover_PrimarySiteLoss does,
// with the servers' default timings; the surviving majority fails over
// by itself.
func BenchmarkNetns_AutoFailover_SiteLoss(b *testing.B) {
	benchmarkKill(b, func(d *netns.Deployment) error { return d.KillSite("primary") })
}

// BenchmarkNetns_AutoFailover_DatabaseHostLoss kills every process of
// the primary database host alone (its agent and PostgreSQL), as
// TestNetns_AutoFailover_PrimaryDatabaseHostLost does; the rest of the
// primary site keeps running, and dr takes over by itself.
func BenchmarkNetns_AutoFailover_DatabaseHostLoss(b *testing.B) {
	benchmarkKill(b, func(d *netns.Deployment) error { return d.KillHost("db-1") })
}

// benchmarkKill measures the automatic failover that follows kill.
func benchmarkKill(b *testing.B, kill func(d *netns.Deployment) error) {
	benchmarkAutomatic(b, nil, func(t testing.TB, m netnsMetrics, d *netns.Deployment, c *netns.Checker) {
		faultAt := time.Now()
		require.NoError(t, kill(d))
		faultEnd := time.Now()
		ex := automaticExecution(t, d)
		requirePromotedAfterLease(t, d, ex, faultEnd)
		require.Equal(t, uint64(2), waitActive(t, d, "dr", 30*time.Second))
		d.WaitForAcks(c, "dr", 100, time.Minute)

		r, h := checkHistory(t, d, c, "db-2", lossPromise(d, faultAt, faultEnd))
		m.addAutomatic(t, d, ex, faultAt)
		m.addLoss(h, r)
		m.addClientOutage(t, h)
	})
}

// BenchmarkNetns_AutoFailover_Partition cuts the primary site's link
// while everything in it keeps running, as
// TestNetns_AutoFailover_PrimarySitePartitioned does: the partitioned
// primary fences itself and dr takes over by itself. Rows the partitioned
// primary acknowledged until its fence are lost.
func BenchmarkNetns_AutoFailover_Partition(b *testing.B) {
	benchmarkAutomatic(b, nil, partitionFault(false))
}

// BenchmarkNetns_AutoFailover_Partition_Sync is the partition in
// synchronous mode (replication { mode = "sync" }): the partitioned
// primary's commits wait for dr's standby, so it acknowledges nothing
// after the cut and nothing is lost.
func BenchmarkNetns_AutoFailover_Partition_Sync(b *testing.B) {
	benchmarkAutomatic(b, syncReplication(false), partitionFault(true))
}

// partitionFault cuts the primary site off and measures the failover; in
// synchronous mode no acknowledged row may be lost.
func partitionFault(sync bool) func(t testing.TB, m netnsMetrics, d *netns.Deployment, c *netns.Checker) {
	return func(t testing.TB, m netnsMetrics, d *netns.Deployment, c *netns.Checker) {
		faultAt := time.Now()
		require.NoError(t, d.Topo.CutSite("primary"))
		faultEnd := time.Now()
		// The promise runs until the partitioned database is gone, so
		// watch for that first (the bound as in the scenario: lease,
		// skew, the fence's fast shutdown and pg_ctl's stop timeout).
		bound := d.Failover.LeaseTTL + d.Failover.ClockSkewMargin + 20*time.Second
		testutil.WaitForResult(t, bound, func() (bool, error) {
			pid := d.PG["db-1"].PostmasterPID()
			return pid == 0, fmt.Errorf("db-1 still runs as pid %d %s after the cut", pid, time.Since(faultAt).Round(time.Millisecond))
		})
		pgStoppedAt := time.Now()
		ex := automaticExecution(t, d)
		requirePromotedAfterLease(t, d, ex, faultEnd)
		require.Equal(t, uint64(2), waitActive(t, d, "dr", 30*time.Second))
		d.WaitForAcks(c, "dr", 100, time.Minute)

		promise := netns.Promise{LossSite: "primary", LossFrom: faultAt.Add(-d.Failover.MaxDataLoss), LossUntil: pgStoppedAt}
		if sync {
			promise = netns.Promise{}
		}
		r, h := checkHistory(t, d, c, "db-2", promise)
		m.addAutomatic(t, d, ex, faultAt)
		m.addLoss(h, r)
		// How long the partitioned primary went on acknowledging writes:
		// its fence, bounded by lease_ttl (invariant 4).
		last, ok := h.LastAck("primary")
		require.True(t, ok)
		m.add("s/fault-to-last-old-write", last.Done.Sub(faultAt).Seconds())
		m.addClientOutage(t, h)
	}
}

// BenchmarkNetns_TwoSites_Stonith cuts the primary site of a two-site
// deployment (no witness) off, with automatic failover, the default
// timings (quorum_loss_timeout 10s) and a STONITH hook that powers the
// primary site off, as TestNetns_TwoSites_StonithKillsPrimary_... does:
// after quorum_loss_timeout the dr servers run the hook, form a quorum of
// their own and fail over, without waiting for the fenced site's leases.
func BenchmarkNetns_TwoSites_Stonith(b *testing.B) {
	benchmarkNetns(b, func(t testing.TB, m netnsMetrics) {
		hook := newStonithHook(t)
		f := automaticFailover()
		f.Stonith = []config.StonithConfig{{Site: "primary", Command: []string{hook.Path}, Timeout: 30 * time.Second},
			{Site: "dr", Command: []string{"/bin/false"}, Timeout: 30 * time.Second}}
		d := netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Failover: f, TwoSites: true})
		hook.aim(t, d)
		lb, err := d.StartHAProxy()
		require.NoError(t, err)
		c := d.StartCheckerBehind(lb)
		d.WaitForAcks(c, "primary", 100, time.Minute)

		faultAt := time.Now()
		require.NoError(t, d.Topo.CutSite("primary"))
		ex := d.WaitForExecution(3*time.Minute, func(ex netns.Execution) bool { return ex.Kind == "failover" })
		require.Equal(t, "succeeded", ex.Result, ex.Message)
		require.Equal(t, "automatic", ex.Trigger)
		require.Equal(t, uint64(2), waitActive(t, d, "dr", 30*time.Second))
		d.WaitForAcks(c, "dr", 100, time.Minute)

		r, h := checkHistory(t, d, c, "db-2", netns.Promise{LossSite: "primary", LossFrom: faultAt.Add(-d.Failover.MaxDataLoss), LossUntil: time.Now()})
		m.addAutomatic(t, d, ex, faultAt)
		m.addLoss(h, r)
		m.addClientOutage(t, h)
		m.add("s/client-outage-beyond-quorum-loss-timeout", m.last("s/client-outage")-d.Failover.QuorumLossTimeout.Seconds())
	})
}

// BenchmarkNetns_FlappingLink takes the primary site's link down and up
// every second for 30s under a leader beside the survivors, with
// automatic failover and the default timings: nothing may fail over. It
// reports what the flapping cost the load balancer's client (the longest
// gap between its acknowledged writes, from the first cut to 5s after the
// last heal) and whether the primary database was fenced and restarted
// in place (a lease lapse).
func BenchmarkNetns_FlappingLink(b *testing.B) {
	benchmarkNetns(b, func(t testing.TB, m netnsMetrics) {
		d := netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Failover: automaticFailover(), LeaderIn: []string{"dr", "witness"}})
		lb, err := d.StartHAProxy()
		require.NoError(t, err)
		c := d.StartCheckerBehind(lb)
		d.WaitForAcks(c, "primary", 100, time.Minute)
		pgPID := d.PG["db-1"].PostmasterPID()

		flapStart := time.Now()
		flap(t, d, 30*time.Second)
		flapEnd := time.Now()
		for time.Since(flapEnd) < d.Failover.FailoverTimeout+5*time.Second {
			require.Empty(t, failovers(t, d), "a flapping link must not fail over")
			time.Sleep(200 * time.Millisecond)
		}
		d.WaitForAgent("db-1", time.Minute, netns.AtCurrentEpoch, netns.HasRole("postgres", "primary"))
		e, active, err := d.EpochAndSite(context.Background())
		require.NoError(t, err)
		require.Equal(t, uint64(1), e, "no failover")
		require.Equal(t, "primary", active)
		d.WaitForAcks(c, "primary", 100, time.Minute)

		r, h := checkHistory(t, d, c, "db-1", netns.Promise{})
		require.Empty(t, r.Lost)
		gap := h.LongestProxiedGap(flapStart, flapEnd.Add(5*time.Second))
		restarted := 0.0
		if d.PG["db-1"].PostmasterPID() != pgPID {
			restarted = 1
		}
		t.Logf("flapping for %s: no failover; longest gap between the load balancer client's writes %s; postmaster restarted in place: %v",
			flapEnd.Sub(flapStart).Round(time.Millisecond), gap.Round(time.Millisecond), restarted == 1)
		m.add("s/client-longest-gap", gap.Seconds())
		m.add("primary-restarts", restarted)
		m.add("failovers", 0)
	})
}

// leaderPlacements are where the leader is when the primary site fails
// in the automatic benchmarks. Beside the survivors it judges the loss
// itself; in the lost site an election and the new leader's observation
// (one failover_timeout) come first. Left to chance, the two would mix in
// one median.
var leaderPlacements = []struct {
	name  string
	sites []string
}{
	{"leader=survivor", []string{"dr", "witness"}},
	{"leader=lost", []string{"primary"}},
}

// benchmarkAutomatic runs fault once per leader placement, on a
// deployment with automatic failover and the default timings, under load
// that reached the primary.
func benchmarkAutomatic(b *testing.B, replication *config.ReplicationConfig, fault func(t testing.TB, m netnsMetrics, d *netns.Deployment, c *netns.Checker)) {
	netns.Require(b)
	for _, lp := range leaderPlacements {
		b.Run(lp.name, func(b *testing.B) {
			benchmarkNetns(b, func(t testing.TB, m netnsMetrics) {
				d := netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Failover: automaticFailover(), LeaderIn: lp.sites, Replication: replication})
				if replication != nil && replication.Sync() {
					waitReplication(t, d, "db-2 recorded synchronous", func(r *pb.DataReplication) bool { return len(r.GetSynchronous()) == 1 })
				}
				lb, err := d.StartHAProxy()
				require.NoError(t, err)
				c := d.StartCheckerBehind(lb)
				d.WaitForAcks(c, "primary", 100, time.Minute)
				// Nothing has failed yet: a change of leader now would be
				// a finding of its own, and would mislabel the figures.
				leader := d.Leader()
				require.Contains(t, lp.sites, leader.Site, "leader %s moved out of %v before the fault", leader.ID, lp.sites)
				fault(t, m, d, c)
			})
		})
	}
}

// benchmarkNetns runs iteration b.N times, each with a deployment of its
// own, and reports the figures it added.
func benchmarkNetns(b *testing.B, iteration func(t testing.TB, m netnsMetrics)) {
	netns.Require(b)
	m := netnsMetrics{}
	for b.Loop() {
		runIteration(b, func(t testing.TB) { iteration(t, m) })
	}
	m.report(b)
}

// netnsMetrics sums each figure, by unit, over a benchmark's iterations;
// the key lastPrefix+unit holds the iteration's own figure.
type netnsMetrics map[string]float64

const lastPrefix = "\x00last:"

func (m netnsMetrics) add(unit string, v float64) {
	m[unit] += v
	m[lastPrefix+unit] = v
}

// last is the figure unit of the latest add.
func (m netnsMetrics) last(unit string) float64 { return m[lastPrefix+unit] }

// addAutomatic adds an automatic failover's figures; faultAt is when the
// fault was injected.
func (m netnsMetrics) addAutomatic(t testing.TB, d *netns.Deployment, ex *netns.Execution, faultAt time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tl, err := d.Timeline(ctx, ex.ID)
	require.NoError(t, err)
	require.False(t, tl.Triggered.IsZero() || tl.Started.IsZero() || tl.Healthy.IsZero(), "execution %s: incomplete timeline %+v", ex.ID, tl)
	t.Logf("automatic failover %s: fault %s, first missed probe %s, started %s, healthy %s; %s",
		ex.ID, clockOf(faultAt), clockOf(tl.Triggered), clockOf(tl.Started), clockOf(tl.Healthy), ex.Measured())
	m.add("s/rto", *ex.RTOSeconds)
	// The RPO may be unknown (two sites: no survivor saw the primary's
	// last writes); count those runs rather than fail or average them.
	if ex.RPOSeconds != nil {
		m.add("s/rpo", *ex.RPOSeconds)
	} else {
		m.add("rpo-unknown", 1)
	}
	m.add("s/detect", tl.Started.Sub(tl.Triggered).Seconds())
	m.add("s/fault-to-start", tl.Started.Sub(faultAt).Seconds())
	m.add("s/fault-to-healthy", tl.Healthy.Sub(faultAt).Seconds())
	var promoted *time.Time
	for _, st := range ex.Steps {
		if st.Action == "promote" && st.Ended != nil && (promoted == nil || st.Ended.After(*promoted)) {
			promoted = st.Ended
		}
	}
	require.NotNil(t, promoted, "execution %s: no promote step ended", ex.ID)
	m.add("s/fault-to-promoted", promoted.Sub(faultAt).Seconds())
}

// addClientOutage adds the write outage the load balancer's client saw
// across the failover from primary to dr.
func (m netnsMetrics) addClientOutage(t testing.TB, h *netns.History) {
	t.Helper()
	lastOld, firstNew, err := h.ClientOutage("primary", "dr")
	require.NoError(t, err)
	t.Logf("client of the load balancer: last write acknowledged by the old primary %s, first by the new one %s: %s",
		clockOf(lastOld.Done), clockOf(firstNew.Done), firstNew.Done.Sub(lastOld.Done).Round(time.Millisecond))
	m.add("s/client-outage", firstNew.Done.Sub(lastOld.Done).Seconds())
}

// addLoss adds the acknowledged rows missing at the end and the span of
// time they cover.
func (m netnsMetrics) addLoss(h *netns.History, r netns.Result) {
	m.add("rows-lost", float64(len(r.Lost)))
	m.add("s-data-lost", dataLost(h, r).Seconds())
}

// report reports every figure as its mean over the iterations, and
// suppresses ns/op.
func (m netnsMetrics) report(b *testing.B) {
	for unit, sum := range m {
		if !strings.HasPrefix(unit, lastPrefix) {
			b.ReportMetric(sum/float64(b.N), unit)
		}
	}
	b.ReportMetric(0, "ns/op")
}

// dataLost is how much time of acknowledged writes is missing: from the
// newest acknowledgement by the same site that survived, before the first
// lost one, to the last lost one. A single lost row thus counts one write
// interval, not nothing.
func dataLost(h *netns.History, r netns.Result) time.Duration {
	if len(r.Lost) == 0 {
		return 0
	}
	lost := map[int64]bool{}
	for _, op := range r.Lost {
		lost[op.ID] = true
	}
	site := r.Lost[0].ServerSite
	from := r.LostFirst
	var newest time.Time
	for _, op := range h.Ops {
		if op.Outcome == netns.Acked && op.ServerSite == site && !lost[op.ID] && op.Done.Before(from) && op.Done.After(newest) {
			newest = op.Done
		}
	}
	if !newest.IsZero() {
		from = newest
	}
	return r.LostLast.Sub(from)
}

func clockOf(t time.Time) string { return t.Format("15:04:05.000") }

// iterationTB scopes the cleanups one benchmark iteration registers to
// that iteration, so that its deployment is torn down before the next
// one is built: two topologies at once would measure the machine.
type iterationTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func (s *iterationTB) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// runIteration runs f, then the cleanups it registered, last first; also
// when f fails the benchmark, since FailNow ends the goroutine through
// its deferred calls.
func runIteration(b *testing.B, f func(t testing.TB)) {
	s := &iterationTB{TB: b}
	defer s.runCleanups()
	f(s)
}

// runCleanups runs the newest cleanup and defers the rest, so that one
// that fails (and ends the goroutine) does not skip the others.
func (s *iterationTB) runCleanups() {
	s.mu.Lock()
	if len(s.cleanups) == 0 {
		s.mu.Unlock()
		return
	}
	f := s.cleanups[len(s.cleanups)-1]
	s.cleanups = s.cleanups[:len(s.cleanups)-1]
	s.mu.Unlock()
	defer s.runCleanups()
	f()
}

// BenchmarkNetns_CommitLatency times single-row INSERT commits on the
// primary (db-1) from its site's application host (app-1), in async mode
// and in sync mode with db-2 at dr recorded synchronous: the cost of
// zero data loss is a round trip to dr and its flush per commit. It
// reports the median and p99 in milliseconds over commitSamples commits.
func BenchmarkNetns_CommitLatency(b *testing.B) {
	netns.Require(b)
	for _, mode := range []string{"async", "sync"} {
		b.Run(mode, func(b *testing.B) {
			var replication *config.ReplicationConfig
			if mode == "sync" {
				replication = syncReplication(false)
			}
			benchmarkNetns(b, func(t testing.TB, m netnsMetrics) {
				d := netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Replication: replication})
				if replication != nil {
					waitReplication(t, d, "db-2 recorded synchronous", func(r *pb.DataReplication) bool { return len(r.GetSynchronous()) == 1 })
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				conn, err := d.PG["db-1"].Connect(ctx, d.Topo.Host("app-1"))
				require.NoError(t, err)
				defer conn.Close(context.Background())
				median, p99 := commitLatencies(ctx, t, conn)
				t.Logf("%s: commit latency median %s, p99 %s", mode, median, p99)
				m.add("ms/commit-median", median.Seconds()*1000)
				m.add("ms/commit-p99", p99.Seconds()*1000)
			})
		})
	}
}
