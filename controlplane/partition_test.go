package controlplane

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testing/netsim"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// The tests in this file run the two-site deployment (s1 and agents db-1,
// app-1 in primary; s2, db-2, app-2 in dr; s3 in witness) over a netsim
// network, so that links can be cut with every process alive, and check
// the safety invariants of DESIGN.md section 4 from outside the network
// while the scenario runs.

// partitionTimings are fastFailover's probing with the production
// default lease_ttl, which outlasts a Raft election even on this loaded
// 2-core machine under -race: a change of leader alone must not fence the
// active site before a scenario starts. 3 x probe_interval <= lease_ttl <
// failover_timeout still holds.
func partitionTimings(cfg *config.ServerConfig) {
	fastFailover(true)(cfg)
	cfg.Failover.ProbeTimeout = 500 * time.Millisecond
	cfg.Failover.LeaseTTL = 3 * time.Second
	cfg.Failover.FailoverTimeout = 4 * time.Second
}

// partitionRaftConfig uses Raft's own LAN timings instead of
// testRaftConfig's: with one of three servers cut off the leader keeps its
// quorum through one link only, and a scheduling stall of testRaftConfig's
// 150 ms leader lease on that link would depose it.
func partitionRaftConfig(rc *raft.Config) {
	testRaftConfig(rc)
	rc.HeartbeatTimeout = time.Second
	rc.ElectionTimeout = time.Second
	rc.LeaderLeaseTimeout = 500 * time.Millisecond
}

// partitionedTwoSites starts twoSites on a fresh network, led by the server
// of leaderSite (s1 in primary, s2 in dr, s3 in witness), with
// partitionTimings. The network heals before anything shuts down, so that
// no stalled write holds up a graceful stop.
func partitionedTwoSites(t *testing.T, leaderSite string, configure func(*config.ServerConfig)) (*twoSites, *netsim.Network) {
	t.Helper()
	network := netsim.New()
	c := newTestClusterOn(t, network, partitionRaftConfig, 3, func(cfg *config.ServerConfig) {
		partitionTimings(cfg)
		if configure != nil {
			configure(cfg)
		}
	})
	// Leadership moves before the agents start, so that its gap in lease
	// renewals cannot fence them.
	c.leadFrom(t, leaderSite)
	// A boot window long enough for a slow registration on a loaded
	// machine: the first grant replaces it, so the leader's lease
	// arithmetic still holds (hostagent lease.renew).
	c.agentLeaseTTL = time.Minute
	ts := newTwoSitesIn(t, c)
	t.Cleanup(network.Heal)
	// The scenarios start from a running primary site under leases a
	// leader granted: with only the minute's boot window, a cut would
	// keep the old primary for a minute and the failover would wait it
	// out.
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		st := ts.status(t)
		for _, a := range st.GetAgents() {
			if a.GetSite() == "primary" && !a.GetProbe().GetLeaseGranted() {
				return false, fmt.Errorf("%s: no lease granted yet: %+v", a.GetHostId(), a.GetProbe())
			}
		}
		return true, nil
	})
	require.Equal(t, driver.RolePrimary, ts.db1["postgres"].Role())
	require.Equal(t, driver.RolePrimary, ts.app1["engine"].Role())
	return ts, network
}

// leadFrom moves leadership to the server of site.
func (c *testCluster) leadFrom(t *testing.T, site string) *testServer {
	t.Helper()
	var target *testServer
	for _, s := range c.servers {
		if s.cfg.Site == site {
			target = s
		}
	}
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		leader := c.waitForLeader()
		if leader == target {
			return true, nil
		}
		err := leader.raft.LeadershipTransferToServer(raft.ServerID(target.cfg.NodeID), raft.ServerAddress(target.raftAddr)).Error()
		return false, fmt.Errorf("leader is %s; transfer to %s: %v", leader.cfg.NodeID, target.cfg.NodeID, err)
	})
	return target
}

// observation is one agent's own report, taken from outside the network.
type observation struct {
	at      time.Time // when the report was asked for
	host    string
	site    string
	epoch   uint64
	valid   bool      // the agent's lease runs
	expires time.Time // end of the agent's lease, when valid
	// primaries are the services the agent runs in the primary role.
	primaries []string
}

// history samples every agent (an observe-only probe) and every server's
// epoch while a scenario runs, and records what would break an invariant.
type history struct {
	ts      *twoSites
	clients map[string]pb.HostAgentClient

	mu   sync.Mutex
	obs  []observation
	bad  []string
	both int // rounds with primaries at two sites, leases or not
	// epochs are the last epoch of each agent and server.
	epochs map[string]uint64

	stop chan struct{}
	done chan struct{}
}

// sampleEvery is the history's sampling period: small against the time a
// lease-holding primary of a wrong site would run (lease_ttl).
const sampleEvery = 50 * time.Millisecond

// watch starts a history of ts; it stops in t.Cleanup or at check.
func watch(t *testing.T, ts *twoSites) *history {
	t.Helper()
	h := &history{ts: ts, clients: map[string]pb.HostAgentClient{}, epochs: map[string]uint64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	// The history asks as a server would (only servers may probe), but
	// from outside the simulated network, so it sees partitioned agents.
	creds := ts.c.material("s1").ClientCredentials(tlsutil.RoleAgent)
	for host, a := range ts.agents {
		conn, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(creds))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		h.clients[host] = pb.NewHostAgentClient(conn)
	}
	go h.run()
	t.Cleanup(h.halt)
	return h
}

func (h *history) halt() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

func (h *history) run() {
	defer close(h.done)
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.round()
	}
}

// round asks every agent at once and checks the answers together.
func (h *history) round() {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var round []observation
	for host, client := range h.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			at := time.Now()
			resp, err := client.Probe(ctx, &pb.ProbeRequest{ObserveOnly: true})
			if err != nil {
				return // shutting down; the next round asks again
			}
			o := observation{at: at, host: host, site: resp.GetSite(), epoch: resp.GetEpoch(), valid: resp.GetLease().GetValid()}
			if o.valid {
				o.expires = resp.GetLease().GetExpiresAt().AsTime()
			}
			for _, s := range resp.GetServices() {
				if s.GetRole() == pb.ServiceRole_SERVICE_ROLE_PRIMARY {
					o.primaries = append(o.primaries, s.GetName())
				}
			}
			mu.Lock()
			round = append(round, o)
			mu.Unlock()
		}()
	}
	wg.Wait()
	h.record(round)
}

func (h *history) record(round []observation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.obs = append(h.obs, round...)
	leased, running := map[string]bool{}, map[string]bool{}
	for _, o := range round {
		if len(o.primaries) > 0 {
			running[o.site] = true
			if o.valid {
				leased[o.site] = true
			}
		}
		h.monotonicLocked(o.host, o.epoch, o.at)
	}
	for _, s := range h.ts.c.servers {
		if !s.dead {
			h.monotonicLocked(s.cfg.NodeID, s.fsm.view().Epoch, time.Now())
		}
	}
	if len(running) > 1 {
		h.both++
	}
	// Invariants 1 and 4: one site at most holds primaries under a lease.
	if len(leased) > 1 {
		h.bad = append(h.bad, fmt.Sprintf("%s: primary-role services holding a valid lease at sites %v: %+v",
			time.Now().Format("15:04:05.000"), keys(leased), round))
	}
}

// monotonicLocked records who's epoch and complains when it went down.
func (h *history) monotonicLocked(who string, epoch uint64, at time.Time) {
	if prev := h.epochs[who]; epoch < prev {
		h.bad = append(h.bad, fmt.Sprintf("%s: epoch of %s went from %d down to %d", at.Format("15:04:05.000"), who, prev, epoch))
	}
	h.epochs[who] = epoch
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// check stops the history and fails the test on any recorded violation.
func (h *history) check(t *testing.T) {
	t.Helper()
	h.halt()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Empty(t, h.bad, "invariant violations")
	require.NotEmpty(t, h.obs)
	t.Logf("history: %d observations, %d rounds with primaries running at two sites (leases aside)", len(h.obs), h.both)
}

// of returns host's observations taken at or after from.
func (h *history) of(host string, from time.Time) []observation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []observation
	for _, o := range h.obs {
		if o.host == host && !o.at.Before(from) {
			out = append(out, o)
		}
	}
	return out
}

// fenceTiming returns, for host, the first time from `from` on that the
// history saw it without primaries and the latest lease end it reported
// while it still ran them.
func (h *history) fenceTiming(host string, from time.Time) (fencedAt, leaseEnd time.Time, ok bool) {
	for _, o := range h.of(host, from) {
		if len(o.primaries) == 0 {
			return o.at, leaseEnd, true
		}
		if o.expires.After(leaseEnd) {
			leaseEnd = o.expires
		}
	}
	return time.Time{}, leaseEnd, false
}

// waitObserved waits until the history saw cond hold for host, at or after
// from, and returns that observation.
func (h *history) waitObserved(t *testing.T, host string, from time.Time, what string, cond func(observation) bool) observation {
	t.Helper()
	var found observation
	testutil.WaitForResult(t, 60*time.Second, func() (bool, error) {
		for _, o := range h.of(host, from) {
			if cond(o) {
				found = o
				return true, nil
			}
		}
		return false, fmt.Errorf("%s: not yet %s", host, what)
	})
	return found
}

// stayedFenced waits until the history covers span after from and requires
// that host ran no primary and held no lease in epoch < minEpoch in it.
func (h *history) stayedFenced(t *testing.T, host string, from time.Time, span time.Duration) {
	t.Helper()
	h.waitObserved(t, host, from.Add(span), "observed for "+span.String(), func(observation) bool { return true })
	for _, o := range h.of(host, from) {
		require.Empty(t, o.primaries, "%s runs primaries again at %s", host, o.at.Format("15:04:05.000"))
	}
}

// automaticExecutions returns the executions the detector started.
func automaticExecutions(t *testing.T, ts *twoSites) []*pb.Execution {
	t.Helper()
	var out []*pb.Execution
	for _, e := range executions(t, ts) {
		if e.GetTrigger() == pb.ExecutionTrigger_EXECUTION_TRIGGER_AUTOMATIC {
			out = append(out, e)
		}
	}
	return out
}

// waitAutomatic waits until n automatic executions exist and returns the
// newest, ended.
func (ts *twoSites) waitAutomatic(t *testing.T, n int) *pb.Execution {
	t.Helper()
	var ex *pb.Execution
	testutil.WaitForResult(t, 60*time.Second, func() (bool, error) {
		auto := automaticExecutions(t, ts)
		if len(auto) > 0 {
			ex = auto[len(auto)-1]
		}
		return len(auto) >= n, fmt.Errorf("%d of %d automatic executions", len(auto), n)
	})
	return ts.waitEnded(t, ex.GetId())
}

// status returns the leader's status.
func (ts *twoSites) status(t *testing.T) *pb.GetStatusResponse {
	t.Helper()
	var resp *pb.GetStatusResponse
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		var err error
		resp, err = ts.c.client(ts.c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
		return err == nil, err
	})
	return resp
}

// isolatePrimary cuts the primary site off from dr and witness and
// returns when.
func isolatePrimary(network *netsim.Network) time.Time {
	at := time.Now()
	network.Isolate("primary")
	return at
}

// requireFailedOverTo checks an automatic failover that succeeded to site
// and the roles it left.
func (ts *twoSites) requireSucceeded(t *testing.T, ex *pb.Execution, to string) {
	t.Helper()
	require.Equal(t, "failover", ex.GetKind())
	require.Equal(t, to, ex.GetTo())
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	st := ts.status(t)
	require.Equal(t, to, st.GetActiveSite())
}

func TestPartition_PrimarySiteIsolated_DRTakesOverAndOldPrimaryStaysFenced(t *testing.T) {
	cases := []struct {
		name   string
		leader string // the site whose server leads when the cut comes
	}{
		{"leader in primary", "primary"},
		{"leader in dr", "dr"},
		{"leader in witness", "witness"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts, network := partitionedTwoSites(t, tc.leader, nil)
			h := watch(t, ts)
			f := ts.server("primary").cfg.Failover
			startsBefore := map[string]int{}
			for host, fakes := range map[string]map[string]*driver.Fake{"db-1": ts.db1, "app-1": ts.app1} {
				for _, fk := range fakes {
					n, _ := fk.Counts()
					startsBefore[host] += n
				}
			}

			cutAt := isolatePrimary(network)
			ex := ts.waitAutomatic(t, 1)
			ts.requireSucceeded(t, ex, "dr")
			require.Equal(t, driver.RolePrimary, ts.db2["postgres"].Role())
			require.Equal(t, driver.RolePrimary, ts.app2["engine"].Role())
			// The trigger is the first missed probe: not before the
			// last probe that could have been answered.
			require.False(t, ex.GetTriggeredAt().AsTime().Before(cutAt.Add(-f.ProbeTimeout)), "trigger %s, cut %s", ex.GetTriggeredAt().AsTime(), cutAt)
			require.True(t, ex.GetTriggeredAt().AsTime().Before(ex.GetStartedAt().AsTime()))

			// The partitioned agents fenced themselves when their lease
			// ran out (invariant 4), with every process alive.
			for _, host := range []string{"db-1", "app-1"} {
				fencedAt, leaseEnd, ok := h.fenceTiming(host, cutAt)
				require.True(t, ok, "%s never fenced", host)
				t.Logf("%s fenced %s after the cut, %s after its lease ended (lease ended %s after the cut)", host,
					fencedAt.Sub(cutAt).Round(time.Millisecond), fencedAt.Sub(leaseEnd).Round(time.Millisecond), leaseEnd.Sub(cutAt).Round(time.Millisecond))
				require.WithinDuration(t, leaseEnd, fencedAt, time.Second, "%s fenced long after its lease ended", host)
			}
			require.Equal(t, driver.RoleStopped, ts.db1["postgres"].Role())
			require.Equal(t, driver.RoleStopped, ts.app1["engine"].Role())

			// Healed, the old site learns the new epoch and stays fenced;
			// its server rejoins as a follower.
			healedAt := time.Now()
			network.Heal()
			for _, host := range []string{"db-1", "app-1"} {
				h.waitObserved(t, host, healedAt, "in epoch 2 without a lease", func(o observation) bool { return o.epoch == 2 && !o.valid })
				h.stayedFenced(t, host, healedAt, 3*f.LeaseTTL)
			}
			s1 := ts.server("primary")
			testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
				addr, _ := s1.leaderAddr()
				return !s1.IsLeader() && addr != "" && s1.fsm.view().Epoch == 2,
					fmt.Errorf("s1: state %s, leader %q, epoch %d", s1.raft.State(), addr, s1.fsm.view().Epoch)
			})
			leader := ts.c.waitForLeader()
			require.Equal(t, 3, leader.votersLen(), "s1 is still a voter")

			// Exactly one automatic execution, and nothing started the old
			// primary's services again.
			require.Len(t, automaticExecutions(t, ts), 1)
			require.Len(t, executions(t, ts), 1)
			for host, fakes := range map[string]map[string]*driver.Fake{"db-1": ts.db1, "app-1": ts.app1} {
				n := 0
				for _, fk := range fakes {
					s, _ := fk.Counts()
					n += s
				}
				require.Equal(t, startsBefore[host], n, "%s's services were started again", host)
			}
			require.Equal(t, uint64(2), ts.status(t).GetEpoch())
			h.check(t)
		})
	}
}

// requireOldPrimaryFenced heals nothing; it waits until the primary site's
// agents report epoch and no lease after from, and requires that they then
// run no primary for a few lease_ttl.
func (ts *twoSites) requireOldPrimaryFenced(t *testing.T, h *history, from time.Time, epoch uint64) {
	t.Helper()
	ttl := ts.server("primary").cfg.Failover.LeaseTTL
	for _, host := range []string{"db-1", "app-1"} {
		h.waitObserved(t, host, from, fmt.Sprintf("in epoch %d without a lease", epoch), func(o observation) bool { return o.epoch == epoch && !o.valid })
		h.stayedFenced(t, host, from, 3*ttl)
	}
}

func TestPartition_PrimaryAgentsFrozen_DoNotActAsPrimaryAgain(t *testing.T) {
	ts, network := partitionedTwoSites(t, "dr", nil)
	h := watch(t, ts)
	f := ts.server("primary").cfg.Failover

	// A frozen agent neither answers nor hears anything; its server of the
	// primary site still runs, so this is a host outage, not a site loss.
	frozenAt := time.Now()
	network.Isolate("primary/db-1")
	network.Isolate("primary/app-1")
	for _, host := range []string{"db-1", "app-1"} {
		h.waitObserved(t, host, frozenAt, "fenced", func(o observation) bool { return len(o.primaries) == 0 })
	}
	ts.waitAutomation(t, func(a *pb.Automation) bool { return strings.Contains(a.GetReason(), "not a site loss") })
	require.Empty(t, executions(t, ts))

	// While they stay frozen the operator fails over to dr.
	ex := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failover", To: "dr"})
	ex = ts.waitEnded(t, ex.GetId())
	ts.requireSucceeded(t, ex, "dr")
	require.Equal(t, driver.RolePrimary, ts.db2["postgres"].Role())
	require.Greater(t, time.Since(frozenAt), f.LeaseTTL, "frozen for longer than lease_ttl")

	// Thawed, they get what queued up for them, old-epoch renewals first,
	// and must not act as primary again.
	thawedAt := time.Now()
	network.Heal()
	ts.requireOldPrimaryFenced(t, h, thawedAt, 2)
	require.Equal(t, driver.RoleStopped, ts.db1["postgres"].Role())
	require.Equal(t, driver.RoleStopped, ts.app1["engine"].Role())
	require.Empty(t, automaticExecutions(t, ts))
	h.check(t)
}

func TestPartition_FlappingPrimaryLink_NoFailover(t *testing.T) {
	cases := []struct {
		name   string
		leader string
	}{
		// The leader loses its quorum at every cut: Raft flaps.
		{"leader in primary", "primary"},
		// The leader's probes of the primary site fail at every cut.
		{"leader in dr", "dr"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts, network := partitionedTwoSites(t, tc.leader, nil)
			h := watch(t, ts)
			f := ts.server("primary").cfg.Failover

			// Down and up every lease_ttl/3 for 10 x failover_timeout:
			// the link is never down for failover_timeout in a row.
			flap := f.LeaseTTL / 3
			tick := time.NewTicker(flap)
			defer tick.Stop()
			cuts := 0
			for end := time.Now().Add(10 * f.FailoverTimeout); time.Now().Before(end); {
				if cuts%2 == 0 {
					network.Isolate("primary")
				} else {
					network.Heal()
				}
				cuts++
				<-tick.C
			}
			network.Heal()

			require.Empty(t, executions(t, ts), "a flapping link is not a site loss")
			st := ts.status(t)
			require.Equal(t, "primary", st.GetActiveSite())
			require.Equal(t, uint64(1), st.GetEpoch())
			stopsDB, _ := ts.db1["postgres"].Counts()
			_, stopsApp := ts.app1["engine"].Counts()
			t.Logf("%d link changes; primary services stopped %d (postgres) and %d (engine) times by fencing", cuts, stopsDB, stopsApp)
			h.check(t)
		})
	}
}

func TestPartition_Cooldown_BlocksSecondAutomaticFailoverUntilAck(t *testing.T) {
	ts, network := partitionedTwoSites(t, "witness", func(cfg *config.ServerConfig) { cfg.Failover.Cooldown = time.Hour })
	h := watch(t, ts)
	noProgress := func(string, ...any) {}

	// The first site loss fails over automatically.
	isolatePrimary(network)
	first := ts.waitAutomatic(t, 1)
	ts.requireSucceeded(t, first, "dr")
	healedAt := time.Now()
	network.Heal()
	ts.requireOldPrimaryFenced(t, h, healedAt, 2)

	// Manual commands are never blocked by the cooldown: the operator
	// re-protects the old primary as a standby and fails back.
	require.NoError(t, ts.db1["postgres"].Demote(context.Background(), driver.Upstream{}, noProgress))
	back := ts.startExecution(t, &pb.StartExecutionRequest{Kind: "failover", To: "primary", AllowDataLoss: true})
	back = ts.waitEnded(t, back.GetId())
	ts.requireSucceeded(t, back, "primary")
	require.Equal(t, driver.RolePrimary, ts.db1["postgres"].Role())
	require.NoError(t, ts.db2["postgres"].Demote(context.Background(), driver.Upstream{}, noProgress))

	// The primary site is lost again within the cooldown: the detector
	// sees it and holds back.
	isolatePrimary(network)
	a := ts.waitAutomation(t, func(a *pb.Automation) bool { return a.GetSiteLost() && strings.Contains(a.GetReason(), "cooldown") })
	require.False(t, a.GetWouldFire())
	require.Len(t, automaticExecutions(t, ts), 1, "the cooldown blocks a second automatic failover")

	// ack lifts it, and the second automatic failover runs.
	_, err := ts.c.client(ts.c.waitForLeader()).SetAutomation(testCtx(t), &pb.SetAutomationRequest{Action: "ack"})
	require.NoError(t, err)
	second := ts.waitAutomatic(t, 2)
	ts.requireSucceeded(t, second, "dr")
	require.NotEqual(t, first.GetId(), second.GetId())
	require.Equal(t, uint64(4), ts.status(t).GetEpoch(), "one epoch per change of active site")
	healedAt = time.Now()
	network.Heal()
	ts.requireOldPrimaryFenced(t, h, healedAt, 4)
	require.Len(t, automaticExecutions(t, ts), 2)
	require.Len(t, executions(t, ts), 3)
	h.check(t)
}

func TestPartition_Paused_ProbesContinueAndResumeFires(t *testing.T) {
	ts, network := partitionedTwoSites(t, "witness", nil)
	h := watch(t, ts)
	f := ts.server("primary").cfg.Failover

	_, err := ts.c.client(ts.c.waitForLeader()).SetAutomation(testCtx(t), &pb.SetAutomationRequest{Action: "pause", Reason: "maintenance"})
	require.NoError(t, err)
	pausedAt := time.Now()
	// Paused, the leader still renews: the primaries run on past several
	// lease_ttl.
	h.waitObserved(t, "db-1", pausedAt.Add(2*f.LeaseTTL), "observed", func(observation) bool { return true })
	for _, host := range []string{"db-1", "app-1"} {
		for _, o := range h.of(host, pausedAt) {
			require.True(t, o.valid && len(o.primaries) > 0, "%s lost its lease while paused: %+v", host, o)
		}
	}

	cutAt := isolatePrimary(network)
	a := ts.waitAutomation(t, func(a *pb.Automation) bool { return a.GetSiteLost() })
	require.False(t, a.GetWouldFire())
	require.Contains(t, a.GetReason(), "paused")
	require.Empty(t, executions(t, ts))
	for _, host := range []string{"db-2", "app-2"} {
		ag, _, err := agentStatus(t, ts.c, host)
		require.NoError(t, err)
		require.True(t, ag.GetProbe().GetReachable(), "%s is still probed while paused", host)
	}

	leader := ts.c.waitForLeader()
	_, err = ts.c.client(leader).SetAutomation(testCtx(t), &pb.SetAutomationRequest{Action: "resume"})
	require.NoError(t, err)
	resumedAt := time.Now()
	ex := ts.waitAutomatic(t, 1)
	ts.requireSucceeded(t, ex, "dr")
	// The trigger is the site's first missed probe, not the resume. A
	// leader elected meanwhile knows only its own probes (they live in
	// memory), so only the leader that saw the cut can date it earlier.
	trigger := ex.GetTriggeredAt().AsTime()
	require.False(t, trigger.Before(cutAt.Add(-f.ProbeTimeout)), "trigger %s, cut %s", trigger, cutAt)
	require.True(t, trigger.Before(ex.GetStartedAt().AsTime()))
	if strings.Contains(ex.GetActor(), leader.cfg.NodeID) {
		require.True(t, trigger.Before(resumedAt), "trigger %s, resumed %s", trigger, resumedAt)
	} else {
		t.Logf("leadership moved from %s to %s (%s) after the resume", leader.cfg.NodeID, ex.GetActor(), "trigger "+trigger.Sub(cutAt).String()+" after the cut")
	}

	healedAt := time.Now()
	network.Heal()
	ts.requireOldPrimaryFenced(t, h, healedAt, 2)
	require.Len(t, executions(t, ts), 1)
	h.check(t)
}
