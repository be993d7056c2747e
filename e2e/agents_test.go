package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/testing/clustertest"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// Shared helpers of the tests that run `drplane agent` processes next to
// the servers.

// logTailBytes is how much of each log a failed test prints.
const logTailBytes = 16 << 10

// leaseTTL is lease_ttl of the servers and agents these tests start: the
// default of both.
const leaseTTL = 3 * time.Second

// newAgentCluster starts one server per site for tests with agents and
// waits for a leader. The sites block of every server declares primary
// (active), dr and witness whatever sites run servers, so one server is
// enough to drive agents of both data sites. On cleanup every process is
// killed (agents, their process services, servers) and, when the test
// failed, the end of every log is printed.
func newAgentCluster(t testing.TB, sites ...string) *clustertest.Cluster {
	t.Helper()
	return newAgentClusterWith(t, nil, sites...)
}

// newAgentClusterWith is newAgentCluster with the servers' failover block
// set to failover (nil keeps the defaults).
func newAgentClusterWith(t testing.TB, failover *config.FailoverConfig, sites ...string) *clustertest.Cluster {
	t.Helper()
	c, err := clustertest.New(drplaneBin, t.TempDir(), sites)
	require.NoError(t, err)
	c.Failover = failover
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			logTails(t, c)
		}
	})
	require.NoError(t, c.Start())
	ctx := testContext(t, time.Minute)
	_, err = c.WaitForLeader(ctx, 100*time.Millisecond)
	require.NoError(t, err)
	return c
}

// logTails prints the end of every server and agent log.
func logTails(t testing.TB, c *clustertest.Cluster) {
	for _, n := range c.Nodes {
		t.Logf("--- end of server %s log %s ---\n%s", n.ID, n.LogPath, devcluster.Tail(n.LogPath, logTailBytes))
	}
	for _, a := range c.Agents {
		t.Logf("--- end of agent %s log %s ---\n%s", a.HostID, a.LogPath, devcluster.Tail(a.LogPath, logTailBytes))
	}
}

// startAgent adds an agent to c, starts it and waits until the leader
// probes it successfully.
func startAgent(t testing.TB, c *clustertest.Cluster, spec devcluster.AgentSpec) *devcluster.Agent {
	t.Helper()
	a, err := c.AddAgent(spec)
	require.NoError(t, err)
	require.NoError(t, a.Start())
	require.NoError(t, c.WaitForAgents(testContext(t, time.Minute), 100*time.Millisecond, a))
	return a
}

// testContext is a context that ends after d or with the test.
func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitForAgent polls `drplane status --json` until check accepts the
// leader's view of agent hostID, and returns that view.
func waitForAgent(t testing.TB, c *clustertest.Cluster, hostID string, timeout time.Duration, check func(cli.AgentJSON) error) cli.AgentJSON {
	t.Helper()
	var got cli.AgentJSON
	testutil.WaitForResult(t, timeout, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		st, err := c.Status(ctx)
		if err != nil {
			return false, err
		}
		as, ok := st.Agent(hostID)
		if !ok {
			return false, fmt.Errorf("agent %s is not registered", hostID)
		}
		if err := check(as); err != nil {
			return false, fmt.Errorf("agent %s: %w (status: %+v)", hostID, err, as)
		}
		got = as
		return true, nil
	})
	return got
}

// hasRole is a waitForAgent check: service has role and the fenced flag
// is as given.
func hasRole(service, role string, fenced bool) func(cli.AgentJSON) error {
	return func(as cli.AgentJSON) error {
		if as.Reachable == nil || !*as.Reachable {
			return fmt.Errorf("not reachable: %s", as.ProbeError)
		}
		if got := as.Roles[service]; got != role {
			return fmt.Errorf("%s is %q, want %q", service, got, role)
		}
		if as.Fenced != fenced {
			return fmt.Errorf("fenced is %v, want %v", as.Fenced, fenced)
		}
		return nil
	}
}

// probe sends a probe as the leader would, but grants no lease: it only
// reads what the agent reports, and never keeps a primary alive.
func probe(ctx context.Context, c *clustertest.Cluster, a *devcluster.Agent, epoch uint64, activeSite string) (*pb.ProbeResponse, error) {
	client, err := c.AgentClient(a)
	if err != nil {
		return nil, err
	}
	return client.Probe(ctx, &pb.ProbeRequest{Epoch: epoch, LeaderId: devcluster.LeaderStandIn, ActiveSite: activeSite})
}
