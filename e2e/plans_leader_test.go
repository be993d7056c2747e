package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/testing/clustertest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestPlans_LeaderKilledMidFailover kills the control-plane leader
// (SIGKILL) while a failover runs, at two different steps: each time the
// next leader resumes the execution, which completes, and every service
// was started exactly once.
func TestPlans_LeaderKilledMidFailover(t *testing.T) {
	// Leases outlive a slow election on a busy machine: this test is about
	// resuming each step once, not about an active site fencing itself
	// while no leader renews its lease (the agents' own tests cover that).
	f := config.DefaultServerConfig().Failover
	f.LeaseTTL, f.FailoverTimeout, f.QuorumLossTimeout = 15*time.Second, 20*time.Second, 20*time.Second
	c := newAgentClusterWith(t, &f, "primary", "dr", "witness")
	dir := t.TempDir()
	// Each service appends a line to its count file when it starts, and
	// passes its health check only once the test creates its ready file:
	// that holds the failover at the service's start step.
	service := func(name string, deps ...string) config.ServiceConfig {
		count, ready := filepath.Join(dir, name+".count"), filepath.Join(dir, name+".ready")
		return config.ServiceConfig{
			Name: name, Driver: config.DriverProcess, DependsOn: deps, StopTimeout: 5 * time.Second,
			Command: []string{"/bin/sh", "-c", "echo started >> " + count + "; exec sleep 86400"},
			Health:  &config.HealthConfig{Exec: []string{"/bin/test", "-f", ready}, Interval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond},
		}
	}
	specs := []config.ServiceConfig{service("engine"), service("gateway", "engine")}
	startAgent(t, c, devcluster.AgentSpec{HostID: "app-1", Site: "primary", Services: specs, LeaseTTL: f.LeaseTTL})
	startAgent(t, c, devcluster.AgentSpec{HostID: "app-2", Site: "dr", Services: specs, LeaseTTL: f.LeaseTTL})

	out, err := cliAny(t, c, "failover", "--to", "dr", "--yes", "--detach")
	require.NoError(t, err, out)

	for _, name := range []string{"engine", "gateway"} {
		// Wait until the service's start runs on app-2 (it started once
		// and waits for its health check), then kill the leader.
		testutil.WaitForResult(t, time.Minute, func() (bool, error) {
			n := startCount(t, dir, name)
			return n == 1, fmt.Errorf("%s started %d times", name, n)
		})
		leader := killLeader(t, c)
		t.Logf("killed leader %s while start:%s@app-2 ran", leader.ID, name)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".ready"), nil, 0o600))
		// The next leader resumes; the killed server comes back as a
		// follower so that a quorum survives the next kill.
		_, err := c.WaitForLeader(testContext(t, time.Minute), 100*time.Millisecond, leader.ID)
		require.NoError(t, err)
		require.NoError(t, c.StartNode(leader))
	}

	var ex cli.ExecutionJSON
	testutil.WaitForResult(t, 2*time.Minute, func() (bool, error) {
		out, err := cliAny(t, c, "history", "--json")
		if err != nil {
			return false, err
		}
		var list []cli.ExecutionJSON
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) == 0 {
			return false, fmt.Errorf("history: %v %s", err, out)
		}
		ex = list[len(list)-1]
		return ex.Result != "running", fmt.Errorf("execution %s is %s", ex.ID, ex.Result)
	})
	require.Equal(t, "succeeded", ex.Result)
	out, err = cliAny(t, c, "history", ex.ID, "--json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(out), &ex))
	for _, st := range ex.Steps {
		require.Equal(t, "succeeded", st.State, "step %s", st.ID)
		require.EqualValues(t, 1, st.Attempt, "step %s ran in one attempt", st.ID)
	}
	for _, name := range []string{"engine", "gateway"} {
		require.Equal(t, 1, startCount(t, dir, name), "%s started exactly once (invariant 3)", name)
	}
	st, err := c.Status(testContext(t, time.Minute))
	require.NoError(t, err)
	require.Equal(t, "dr", st.ActiveSite)
	require.Equal(t, uint64(2), st.Epoch, "the site was activated exactly once")
}

// cliAny runs a drplane command against the first running server.
func cliAny(t testing.TB, c *clustertest.Cluster, args ...string) (string, error) {
	t.Helper()
	for _, n := range c.Nodes {
		if n.Running() {
			return c.CLI(testContext(t, 2*time.Minute), n, args...)
		}
	}
	return "", fmt.Errorf("no server runs")
}

func startCount(t testing.TB, dir, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name+".count"))
	if os.IsNotExist(err) {
		return 0
	}
	require.NoError(t, err)
	return strings.Count(string(b), "started")
}

// killLeader SIGKILLs the current leader and returns it.
func killLeader(t testing.TB, c *clustertest.Cluster) *devcluster.Node {
	t.Helper()
	id, err := c.WaitForLeader(testContext(t, time.Minute), 100*time.Millisecond)
	require.NoError(t, err)
	n := c.Node(id)
	require.NoError(t, c.Kill(n))
	return n
}
