package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testing/netns"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// Two sites without a witness (issue 6): servers s1, s2 at primary and s3,
// s4 at dr, so neither site holds a Raft quorum alone.

// twoSiteFailover is the default failover block with a quorum-loss
// timeout short enough for a test; stonith, when set, is the primary
// site's STONITH hook.
func twoSiteFailover(automatic bool, stonith []string) *config.FailoverConfig {
	f := config.DefaultServerConfig().Failover
	f.Automatic = automatic
	f.QuorumLossTimeout = 5 * time.Second
	if stonith != nil {
		// Validation wants a hook for every data site; dr's is never run
		// here, and refuses.
		f.Stonith = []config.StonithConfig{{Site: "primary", Command: stonith, Timeout: 30 * time.Second},
			{Site: "dr", Command: []string{"/bin/false"}, Timeout: 30 * time.Second}}
	}
	return &f
}

// TestNetns_TwoSites_PartitionWithoutStonith_NoFailover cuts the primary
// site off: no side has a quorum, nothing fails over, the primary fences
// itself (its leases lapse), and status at dr says why it waits.
func TestNetns_TwoSites_PartitionWithoutStonith_NoFailover(t *testing.T) {
	d := netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Failover: twoSiteFailover(false, nil), TwoSites: true})
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 50, time.Minute)

	require.NoError(t, d.Topo.CutSite("primary"))
	cutAt := time.Now()
	var status string
	testutil.WaitForResult(t, 2*time.Minute, func() (bool, error) {
		out, err := d.CLI(context.Background(), "status")
		if err == nil {
			return false, fmt.Errorf("status answered without a quorum: %s", out)
		}
		status = err.Error()
		return strings.Contains(status, "quorum lost; primary state unknown"), err
	})
	t.Logf("status at dr %s after the cut: %s", time.Since(cutAt).Round(time.Millisecond), strings.TrimSpace(status))
	require.Contains(t, status, "drplane failover --to dr --force --confirm-primary-down")
	// Nothing acted: dr's database is still a standby, and the cut-off
	// primary fenced itself when its lease lapsed.
	require.Equal(t, "true", inRecovery(t, d, "db-2"))
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		pid := d.PG["db-1"].PostmasterPID()
		return pid == 0, fmt.Errorf("db-1 still runs as pid %d %s after the cut", pid, time.Since(cutAt).Round(time.Millisecond))
	})
	require.Equal(t, "true", inRecovery(t, d, "db-2"))
	// db-1 is down (fenced); dr's standby has what it streamed before the
	// cut, and nothing was written anywhere else.
	r, _ := checkHistory(t, d, c, "db-2", netns.Promise{LossSite: "primary", LossFrom: cutAt.Add(-d.Failover.MaxDataLoss), LossUntil: time.Now()})
	t.Logf("no failover without stonith; %d acknowledged rows checked, %d written by the cut-off primary before it fenced itself are not at dr", r.Acked, len(r.Lost))
}

// TestNetns_TwoSites_StonithKillsPrimary_AutomaticFailover_Rejoin cuts the
// primary site off; after quorum_loss_timeout the dr servers run the
// STONITH hook, which really kills every process of the primary site (as
// a power-off would), recover a quorum of their own and fail over. The
// primary's servers, started again with their old state, refuse to serve
// until `drplane server rejoin`.
func TestNetns_TwoSites_StonithKillsPrimary_AutomaticFailover_Rejoin(t *testing.T) {
	hook := newStonithHook(t)
	d := netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Failover: twoSiteFailover(true, []string{hook.Path}), TwoSites: true})
	hook.aim(t, d)
	c := d.StartChecker()
	d.WaitForAcks(c, "primary", 100, time.Minute)

	require.NoError(t, d.Topo.CutSite("primary"))
	cutAt := time.Now()
	ex := d.WaitForExecution(3*time.Minute, func(ex netns.Execution) bool { return ex.Kind == "failover" })
	require.Equal(t, "succeeded", ex.Result, ex.Message)
	require.Equal(t, "automatic", ex.Trigger)
	require.Equal(t, "dr", ex.To)
	require.Equal(t, uint64(2), waitActive(t, d, "dr", 30*time.Second))
	require.Equal(t, "false", inRecovery(t, d, "db-2"))
	calls, err := os.ReadFile(hook.calls)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(calls), "primary by "), "the hook runs once, on the server that acts: %s", calls)
	require.Zero(t, d.PG["db-1"].PostmasterPID(), "the hook killed the primary site")
	d.WaitForAcks(c, "dr", 100, time.Minute)
	r, _ := checkHistory(t, d, c, "db-2", netns.Promise{LossSite: "primary", LossFrom: cutAt.Add(-d.Failover.MaxDataLoss), LossUntil: time.Now()})
	t.Logf("two sites, primary cut off: failover %s started %s after the cut (quorum_loss_timeout %s); %s; %d acknowledged rows lost",
		ex.ID, ex.StartedAt.Sub(cutAt).Round(time.Millisecond), d.Failover.QuorumLossTimeout, ex.Measured(), len(r.Lost))
	for _, st := range ex.Steps {
		if st.Started != nil && st.Ended != nil {
			t.Logf("  step %-24s %-8s %-6s +%s for %s: %s", st.ID, st.Action, st.Host, st.Started.Sub(cutAt).Round(time.Millisecond), st.Ended.Sub(*st.Started).Round(time.Millisecond), st.Message)
		}
	}

	// The dr servers are the configuration now.
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		out, err := d.CLI(context.Background(), "members")
		return err == nil && !strings.Contains(out, "s1") && strings.Contains(out, "s3") && strings.Contains(out, "s4"), fmt.Errorf("members: %v: %s", err, out)
	})

	// The primary site powers on with the link healed: its servers start
	// with their old state and are told they were removed.
	require.NoError(t, d.Topo.HealSite("primary"))
	s1 := d.Server("s1")
	require.NoError(t, d.Cluster.StartNode(s1))
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		out, err := d.CLI(context.Background(), "status", "--addr", s1.GRPCAddr)
		return err != nil && strings.Contains(err.Error(), "drplane server rejoin"), fmt.Errorf("status at s1: %v: %s", err, out)
	})
	out := d.MustCLI("members")
	require.NotContains(t, out, "s1 ", "a removed server must not rejoin by itself")

	// `drplane server rejoin` moves its state aside; it restarts by itself
	// and joins as a voter.
	out = d.MustCLI("server", "rejoin", "--config", s1.ConfigPath)
	require.Contains(t, out, "moved the old Raft state")
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		out, err := d.CLI(context.Background(), "members")
		return err == nil && strings.Contains(out, "s1"), fmt.Errorf("members: %v: %s", err, out)
	})
}

// stonithHook is a STONITH hook for the primary site of a two-site
// deployment. It runs in a dr server's namespace and powers the primary
// site off by killing everything in its hosts' namespaces, logging each
// call.
type stonithHook struct {
	Path string
	// calls logs one line per run; namespaces lists the namespaces to
	// power off, written by aim once the topology exists.
	calls, namespaces string
}

func newStonithHook(t testing.TB) stonithHook {
	t.Helper()
	dir, err := os.MkdirTemp("", "dpstonith-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	h := stonithHook{Path: filepath.Join(dir, "fence-primary.sh"), calls: filepath.Join(dir, "calls"), namespaces: filepath.Join(dir, "namespaces")}
	require.NoError(t, os.WriteFile(h.Path, []byte(`#!/bin/sh
echo "$DRPLANE_STONITH_SITE by $DRPLANE_NODE_ID" >> `+h.calls+`
# A process may exit between listing and signalling: that is fine.
for ns in $(cat `+h.namespaces+`); do ip netns pids "$ns" | xargs -r kill -STOP 2>/dev/null; done
for ns in $(cat `+h.namespaces+`); do ip netns pids "$ns" | xargs -r kill -KILL 2>/dev/null; done
for i in $(seq 100); do
  left=""
  for ns in $(cat `+h.namespaces+`); do left="$left$(ip netns pids "$ns")"; done
  [ -z "$left" ] && break
  sleep 0.1
done
[ -z "$left" ] || { echo "processes still run: $left"; exit 1; }
echo "site $DRPLANE_STONITH_SITE powered off"
`), 0o755))
	return h
}

// aim points the hook at d's primary site.
func (h stonithHook) aim(t testing.TB, d *netns.Deployment) {
	t.Helper()
	var nss []string
	for _, host := range d.Topo.Site("primary").Hosts {
		nss = append(nss, host.NS)
	}
	require.NoError(t, os.WriteFile(h.namespaces, []byte(strings.Join(nss, "\n")+"\n"), 0o644))
}
