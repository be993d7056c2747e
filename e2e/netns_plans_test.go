package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testing/netns"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestNetns_SwitchoverAndBackUnderLoad switches the deployment over to dr
// and back while the checker writes through whichever site the control
// plane calls active (and, adversarially, the other one): every
// acknowledged row survives both switchovers, no two sites ever accept
// writes in one epoch, and each old primary is left following the new one.
func TestNetns_SwitchoverAndBackUnderLoad(t *testing.T) {
	d := newNetnsDeployment(t, nil)
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 100, time.Minute)

	for i, to := range []string{"dr", "primary"} {
		from, newDB, oldDB := "primary", "db-2", "db-1"
		if to == "primary" {
			from, newDB, oldDB = "dr", "db-1", "db-2"
		}
		out, took := timed(t, d, "switchover", "--to", to, "--yes")
		require.Contains(t, out, "succeeded")
		ex := d.LastExecution()
		require.Equal(t, "succeeded", ex.Result, out)
		require.Equal(t, "switchover", ex.Kind)
		require.NotNil(t, ex.RPOSeconds)
		require.Zero(t, *ex.RPOSeconds, "a switchover loses nothing")
		t.Logf("switchover %s -> %s: command %s, %s\n%s", from, to, took.Round(time.Millisecond), ex.Measured(), out)

		require.Equal(t, uint64(i+2), waitActive(t, d, to, 30*time.Second), "one epoch per switchover")
		require.Equal(t, "false", inRecovery(t, d, newDB))
		// The writer follows the control plane to the new primary; the
		// old one was reprotected and follows it.
		d.WaitForAcks(c, to, 100, time.Minute)
		waitStreaming(t, d, oldDB, 0)
		d.WaitForAgent(oldDB, 30*time.Second, netns.HasRole("postgres", "standby"), netns.AtCurrentEpoch)
		d.WaitForAgent(netns.DataSites[to].App, 30*time.Second, netns.HasRole("engine", "primary"))
		d.WaitForAgent(netns.DataSites[from].App, 30*time.Second, netns.HasRole("engine", "stopped"))
	}

	r, _ := checkHistory(t, d, c, "db-1", netns.Promise{})
	require.Empty(t, r.Lost, "a switchover loses no acknowledged row")
	for epoch, site := range map[uint64]string{1: "primary", 2: "dr", 3: "primary"} {
		require.Contains(t, r.Writers[epoch], site, "epoch %d: the writer wrote through %s", epoch, site)
	}
	// The final standby holds every acknowledged row too.
	waitStreaming(t, d, "db-2", r.Acked)
}

// TestNetns_FailoverAfterPrimaryHostLoss_BootFencing_Failback kills every
// process of the primary database host and fails over to dr by command
// under load; rows lost are only those the primary acknowledged just
// before its death, within the RPO guard. Then the old primary host comes
// back as a rebooted machine would, its PostgreSQL started by its init
// system before its agent: the agent fences it within lease_ttl (boot
// fencing, invariant 5) and it stays fenced, until `drplane failback`
// rewinds it into a standby of dr and switches back.
func TestNetns_FailoverAfterPrimaryHostLoss_BootFencing_Failback(t *testing.T) {
	d := newNetnsDeployment(t, nil)
	c := d.StartChecker()
	f := failoverAfterDBLoss(t, d, c)
	failover, killedAt, killEnd := f.Ex, f.KilledAt, f.KillEnd
	t.Logf("failover primary -> dr after db-1 died: command %s, %s; promoted %s after db-1's lease could have lapsed\n%s",
		f.Took.Round(time.Millisecond), failover.Measured(), f.PromotedAfterLease.Round(time.Millisecond), f.Out)
	require.Equal(t, "false", inRecovery(t, d, "db-2"))
	d.WaitForAgent("app-2", 30*time.Second, netns.HasRole("engine", "primary"))
	d.WaitForAcks(c, "dr", 100, time.Minute)

	// The old primary host returns. Its PostgreSQL comes up by itself, a
	// primary of the old timeline, and the agent starts: no leader vouches
	// for that primary, so the agent fences it. The adversarial writer
	// pauses meanwhile: this PostgreSQL was started by the test, not by
	// drplane, and what it accepts before the fence is the boot window
	// drplane bounds, measured here.
	c.PauseAdversarial()
	returnedAt := time.Now()
	require.NoError(t, d.PG["db-1"].Start())
	pgUpAt := time.Now()
	require.NoError(t, d.RestartHost("db-1", false))
	testutil.WaitForResult(t, failoverLeaseBound(d), func() (bool, error) {
		pid := d.PG["db-1"].PostmasterPID()
		return pid == 0, fmt.Errorf("the returned primary still runs as pid %d %s after the host returned", pid, time.Since(returnedAt).Round(time.Millisecond))
	})
	t.Logf("boot fencing: the old primary's PostgreSQL came up %s after the host returned, before its agent; it was fenced %s after the agent was started (the agent's own start included; lease_ttl %s)",
		pgUpAt.Sub(returnedAt).Round(time.Millisecond), time.Since(pgUpAt).Round(time.Millisecond), d.Failover.LeaseTTL)
	d.WaitForAgent("db-1", 30*time.Second, netns.AtCurrentEpoch, netns.HasRole("postgres", "fenced"))
	c.ResumeAdversarial()
	// It stays fenced: the leader keeps probing it, nothing starts it,
	// and the adversarial writer finds nothing to write to.
	d.WaitForAcks(c, "dr", 50, time.Minute)
	require.Zero(t, d.PG["db-1"].PostmasterPID(), "the fenced old primary must stay down")
	d.WaitForAgent("db-1", 30*time.Second, netns.AtCurrentEpoch, netns.HasRole("postgres", "fenced"))

	out, took := timed(t, d, "failback", "--yes")
	failback := d.LastExecution()
	require.Equal(t, "succeeded", failback.Result, out)
	t.Logf("failback dr -> primary: command %s, %s\n%s", took.Round(time.Millisecond), failback.Measured(), out)
	require.Equal(t, uint64(3), waitActive(t, d, "primary", 30*time.Second))
	require.Equal(t, "false", inRecovery(t, d, "db-1"))
	d.WaitForAcks(c, "primary", 100, time.Minute)
	waitStreaming(t, d, "db-2", 0)

	// Only rows the dead primary acknowledged in the last max_data_loss
	// before it died may be missing; what dr acknowledged survived the
	// failback.
	guard := d.Failover.MaxDataLoss
	r, h := checkHistory(t, d, c, "db-1", lossPromise(d, killedAt, killEnd))
	first, ok := h.FirstAck("dr", killedAt)
	require.True(t, ok)
	t.Logf("failover: first write acknowledged by dr %s after db-1 died; %d acknowledged rows lost (RPO guard %s, measured RPO %.2fs)",
		first.Done.Sub(killedAt).Round(time.Millisecond), len(r.Lost), guard, *failover.RPOSeconds)
	if len(r.Lost) > 0 {
		// The measured RPO covers them: trigger - RPO is no later than
		// the newest write that made it to dr (a probe interval of
		// slack for when the leader saw the primary's position).
		trigger := failover.StartedAt
		rpo := time.Duration(*failover.RPOSeconds * float64(time.Second))
		require.False(t, r.LostFirst.Before(trigger.Add(-rpo-d.Failover.ProbeInterval-d.Failover.ProbeTimeout)),
			"rows lost from %s, before trigger %s - RPO %s", r.LostFirst, trigger, rpo)
	}
}

// failoverLeaseBound is how long a primary nobody vouches for may run
// after its agent starts: the boot lease, plus the agent's own start and
// a fast shutdown on a loaded machine.
func failoverLeaseBound(d *netns.Deployment) time.Duration {
	return d.Failover.LeaseTTL + 10*time.Second
}

// TestNetns_LeaderKilledDuringFailover SIGKILLs the control-plane leader
// twice during a failover under load: while the failover waits for the
// old site's leases to lapse, and while dr's engine waits for its health
// gate. Each time the next leader resumes the execution; it completes,
// every step ran once (one attempt, the site activated once, the standby
// promoted once, the engine started once), and the history checker finds
// no epoch with two writers.
func TestNetns_LeaderKilledDuringFailover(t *testing.T) {
	// A longer lease than the default 3s keeps the failover in its
	// lease-wait step for seconds, long enough to be seen there on a busy
	// machine.
	f := config.DefaultServerConfig().Failover
	f.LeaseTTL, f.FailoverTimeout = 6*time.Second, 8*time.Second
	d := newNetnsDeployment(t, &f)
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 50, time.Minute)
	killedAt := time.Now()
	require.NoError(t, d.KillHost("db-1"))
	killEnd := time.Now()
	require.NoError(t, d.HoldEngine())
	out := d.MustCLI("failover", "--to", "dr", "--yes", "--detach")
	id := executionID(t, out)

	for _, step := range []string{"lease-wait:primary", "start:engine@app-2"} {
		waitStep(t, d, id, step, "running")
		leader := d.Leader()
		killed := time.Now()
		require.NoError(t, d.Cluster.Kill(leader))
		if step == "start:engine@app-2" {
			require.NoError(t, d.ReleaseEngine())
		}
		next := d.Leader()
		require.NotEqual(t, leader.ID, next.ID)
		t.Logf("killed leader %s while %s ran; %s leads %s later", leader.ID, step, next.ID, time.Since(killed).Round(time.Millisecond))
		// Back as a follower, so that the next kill leaves a quorum.
		require.NoError(t, d.Cluster.StartNode(leader))
	}

	ex := d.WaitForExecution(2*time.Minute, func(ex netns.Execution) bool { return ex.ID == id })
	require.Equal(t, "succeeded", ex.Result, ex.Message)
	for _, st := range ex.Steps {
		t.Logf("step %-24s %-9s attempt %d on %s: %s", st.ID, st.State, st.Attempt, st.Host, st.Message)
	}
	for _, st := range ex.Steps {
		if st.ID == "fence@db-1" {
			continue // the dead host cannot confirm its fence; the plan goes on without it
		}
		require.Equal(t, "succeeded", st.State, "step %s: %s", st.ID, st.Message)
		require.EqualValues(t, 1, st.Attempt, "step %s ran in one attempt", st.ID)
	}
	t.Logf("failover %s under two leader kills: %s; promoted %s after db-1's lease could have lapsed",
		ex.ID, ex.Measured(), requirePromotedAfterLease(t, d, ex, killEnd).Round(time.Millisecond))
	require.Equal(t, uint64(2), waitActive(t, d, "dr", 30*time.Second), "the site was activated once")
	tl, err := d.PG["db-2"].QueryString(context.Background(), "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
	require.NoError(t, err)
	require.Equal(t, "00000002", tl, "db-2 was promoted once: one timeline switch")
	require.Equal(t, 1, d.EngineStarts("app-2", "live"), "the engine started once (invariant 3)")
	d.WaitForAcks(c, "dr", 50, time.Minute)
	checkHistory(t, d, c, "db-2", lossPromise(d, killedAt, killEnd))
}

// TestNetns_DrillBesideProduction runs a drill of dr while the checker
// writes to the primary: production is untouched (same epoch, same
// primary process, every write to it acknowledged, the standby keeps
// streaming), the drill's copies are gone afterwards, and the report has
// its row.
func TestNetns_DrillBesideProduction(t *testing.T) {
	d := newNetnsDeployment(t, nil)
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 50, time.Minute)
	primaryPID, standbyPID := d.PG["db-1"].PostmasterPID(), d.PG["db-2"].PostmasterPID()

	start := time.Now()
	out, took := timed(t, d, "drill", "--yes")
	end := time.Now()
	drill := d.LastExecution()
	require.Equal(t, "succeeded", drill.Result, out)
	require.Equal(t, "drill", drill.Kind)
	t.Logf("drill of dr: command %s, %s\n%s", took.Round(time.Millisecond), drill.Measured(), out)
	require.Equal(t, 1, d.EngineStarts("app-2", "drill"), "the drill started the engine's copy")
	require.Zero(t, d.EngineStarts("app-2", "live"), "the drill never starts the real engine")

	// Production is untouched.
	e, active, err := d.EpochAndSite(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(1), e)
	require.Equal(t, "primary", active)
	require.Equal(t, primaryPID, d.PG["db-1"].PostmasterPID())
	require.Equal(t, standbyPID, d.PG["db-2"].PostmasterPID())
	d.WaitForAcks(c, "primary", 50, time.Minute)
	r, h := checkHistory(t, d, c, "db-1", netns.Promise{})
	require.Empty(t, r.Lost)
	for _, op := range h.Ops {
		if op.Writer == netns.Active && op.Sent.After(start) && op.Done.Before(end) {
			require.Equal(t, netns.Acked, op.Outcome, "a production write during the drill failed: %s", op)
		}
	}
	waitStreaming(t, d, "db-2", r.Acked)
	d.WaitForAgent("app-1", 30*time.Second, netns.HasRole("engine", "primary"))
	d.WaitForAgent("app-2", 30*time.Second, netns.HasRole("engine", "stopped"))

	// The copies are gone: no drill directory holds anything, nothing
	// listens on the drill port.
	for _, host := range []string{"db-2", "app-2"} {
		entries, _ := filepath.Glob(filepath.Join(d.Agent(host).DataDir, "drill", "*", "*"))
		require.Empty(t, entries, "the drill copies on %s were torn down", host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := d.Topo.Host("db-2").DialContext(ctx, "tcp", d.Topo.Host("db-2").IP+":15432")
	if err == nil {
		_ = conn.Close()
	}
	require.Error(t, err, "the drill copy of PostgreSQL still listens")

	report := d.MustCLI("report", "--markdown")
	require.Contains(t, report, "| drill at dr |")
	t.Logf("report:\n%s", report)
}

// executionID reads the id from `started KIND ID (...)`.
func executionID(t *testing.T, out string) string {
	t.Helper()
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "started" {
			return f[2]
		}
	}
	t.Fatalf("no execution id in %q", out)
	return ""
}

// waitStep waits until step of execution id is in state.
func waitStep(t *testing.T, d *netns.Deployment, id, step, state string) {
	t.Helper()
	testutil.WaitForResult(t, 2*time.Minute, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ex, err := d.Execution(ctx, id)
		if err != nil {
			return false, err
		}
		st := ex.Step(step)
		if st == nil {
			return false, fmt.Errorf("execution %s has no step %s", id, step)
		}
		if st.Ended != nil && state == "running" {
			t.Fatalf("step %s ended (%s) before it was seen running: %s", step, st.State, st.Message)
		}
		return st.State == state, fmt.Errorf("step %s is %s, want %s", step, st.State, state)
	})
}
