package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/testing/clustertest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// newProcessCluster starts one server process per site and waits for a
// leader. Processes are killed and their logs shown on failure in
// t.Cleanup.
func newProcessCluster(t testing.TB, sites ...string) *clustertest.Cluster {
	t.Helper()
	c, err := clustertest.New(drplaneBin, t.TempDir(), sites)
	require.NoError(t, err)
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			dumpLogs(t, c)
		}
	})
	require.NoError(t, c.Start())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err = c.WaitForLeader(ctx, 100*time.Millisecond)
	require.NoError(t, err)
	return c
}

func dumpLogs(t testing.TB, c *clustertest.Cluster) {
	for _, n := range c.Nodes {
		data, err := os.ReadFile(n.LogPath)
		if err == nil {
			t.Logf("--- log of %s ---\n%s", n.ID, data)
		}
	}
}

func TestServers_KillLeader_ReelectAndRejoin(t *testing.T) {
	c := newProcessCluster(t, "primary", "dr", "witness")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Write something so the restarted server has data to keep.
	first := c.Nodes[0]
	_, err := c.CLI(ctx, first, "status")
	require.NoError(t, err)
	oldLeader, _, err := c.Members(ctx, first)
	require.NoError(t, err)
	require.NotEmpty(t, oldLeader)

	killed := c.Node(oldLeader)
	require.NoError(t, c.Kill(killed))
	newLeader, err := c.WaitForLeader(ctx, 50*time.Millisecond, oldLeader)
	require.NoError(t, err)

	var survivor *devcluster.Node
	for _, n := range c.Nodes {
		if n.Running() {
			survivor = n
			break
		}
	}
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		leader, members, err := c.Members(ctx, survivor)
		if err != nil {
			return false, err
		}
		if leader != newLeader {
			return false, fmt.Errorf("members shows leader %q, want %q", leader, newLeader)
		}
		for _, m := range members {
			if m.ID == newLeader && m.State != "leader" {
				return false, fmt.Errorf("%s has state %s", m.ID, m.State)
			}
			if m.ID == oldLeader && m.State != "unreachable" {
				return false, fmt.Errorf("killed %s has state %s", m.ID, m.State)
			}
		}
		return true, nil
	})
	indexBefore := lastIndex(t, c, survivor, newLeader)

	// The killed server restarts from its data dir and rejoins as a
	// follower, catching up to at least the index it missed.
	require.NoError(t, c.StartNode(killed))
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		_, members, err := c.Members(ctx, survivor)
		if err != nil {
			return false, err
		}
		for _, m := range members {
			if m.ID == oldLeader {
				return m.State == "follower" && m.LastIndex >= indexBefore,
					fmt.Errorf("restarted %s: state %s, last index %d (want >= %d)", m.ID, m.State, m.LastIndex, indexBefore)
			}
		}
		return false, fmt.Errorf("%s missing from members", oldLeader)
	})
	out, err := c.CLI(ctx, killed, "status", "--stale")
	require.NoError(t, err)
	require.Contains(t, out, "Active site:  primary")
	require.True(t, strings.Contains(out, "Epoch:        1"), out)

	// SIGTERM on the leader hands leadership over before the process exits.
	require.NoError(t, c.Stop(c.Node(newLeader)))
	logs, err := os.ReadFile(c.Node(newLeader).LogPath)
	require.NoError(t, err)
	require.Contains(t, string(logs), "leadership transferred")
	third, err := c.WaitForLeader(ctx, 50*time.Millisecond, newLeader)
	require.NoError(t, err)

	// One server of three left: no leader. `drplane status` still shows
	// what that server knows, marked stale, and why there is no leader,
	// and fails: no script may take it for a healthy cluster.
	require.NoError(t, c.Kill(c.Node(third)))
	var last *devcluster.Node
	for _, n := range c.Nodes {
		if n.Running() {
			last = n
		}
	}
	require.NotNil(t, last)
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		out, err := c.CLI(ctx, last, "status")
		return err != nil && strings.Contains(out, "Leader:       (none: ") && strings.Contains(out, "(stale: answered by "+last.ID) &&
			strings.Contains(out, "Active site:  primary"), fmt.Errorf("status without a leader: %v\n%s", err, out)
	})
}

func TestServer_BadConfig_ExitsWithPosition(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "server.hcl")
	require.NoError(t, os.WriteFile(cfg, []byte("node_id = \"s1\"\nsite = \"mars\"\n"), 0o600))
	out, err := exec.Command(drplaneBin, "server", "--config", cfg).CombinedOutput()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr, "a bad config must make the server exit non-zero: %s", out)
	require.Contains(t, string(out), cfg+":")
	require.Contains(t, string(out), `missing required key "data_dir"`)
	_, err = os.Stat(filepath.Join(dir, "raft"))
	require.True(t, os.IsNotExist(err), "nothing may be started or created on a bad config")
}

func lastIndex(t *testing.T, c *clustertest.Cluster, via *devcluster.Node, id string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, members, err := c.Members(ctx, via)
	require.NoError(t, err)
	for _, m := range members {
		if m.ID == id {
			return m.LastIndex
		}
	}
	t.Fatalf("%s not in members", id)
	return 0
}
