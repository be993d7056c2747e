package netns

import (
	"testing"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/stretchr/testify/require"
)

// TestPlace_ServersAndAgentsOnTheirOwnAddresses checks what a topology
// relies on: a placed server binds and advertises its host's address with
// the default ports and joins the others at theirs, an agent placed on a
// host listens there, and both run through `ip netns exec` in their
// namespace. /bin/true stands in for drplane: StartNode writes the
// server's config, and nothing runs.
func TestPlace_ServersAndAgentsOnTheirOwnAddresses(t *testing.T) {
	c, err := devcluster.NewInProcessTLS("/bin/true", t.TempDir(), []string{"primary", "dr"})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	require.NoError(t, placeServer(c.Nodes[0], "10.77.1.11"))
	require.NoError(t, placeServer(c.Nodes[1], "10.77.2.11"))
	require.Error(t, placeServer(c.Nodes[1], "not-an-ip"))

	require.NoError(t, c.StartNode(c.Nodes[0]))
	cfg, err := config.LoadServerConfig(c.Nodes[0].ConfigPath)
	require.NoError(t, err)
	require.Equal(t, "10.77.1.11", cfg.BindAddr)
	require.Equal(t, placedGRPCPort, cfg.Ports.GRPC)
	require.Equal(t, placedRaftPort, cfg.Ports.Raft)
	require.Equal(t, placedHTTPPort, cfg.Ports.HTTP)
	require.Equal(t, []string{"10.77.2.11:7400"}, cfg.RetryJoin)

	spec := devcluster.AgentSpec{HostID: "db-1", Site: "primary"}
	require.NoError(t, placeAgent(&spec, "10.77.1.13"))
	require.Error(t, placeAgent(&devcluster.AgentSpec{HostID: "db-2"}, "not-an-ip"))
	a, err := c.AddAgent(spec)
	require.NoError(t, err)
	acfg, err := config.LoadAgentConfig(a.ConfigPath)
	require.NoError(t, err)
	require.Equal(t, "10.77.1.13:7500", acfg.Listen)
	require.Equal(t, "10.77.1.13:7501", acfg.HTTP)
	require.Equal(t, []string{"10.77.1.11:7400", "10.77.2.11:7400"}, acfg.Servers)

	name, args := inNetns("ns-s1", "/bin/drplane", []string{"server", "--config", "x.hcl"})
	require.Equal(t, "ip", name)
	require.Equal(t, []string{"netns", "exec", "ns-s1", "/bin/drplane", "server", "--config", "x.hcl"}, args)
	name, args = inNetns("", "/bin/drplane", []string{"agent"})
	require.Equal(t, "/bin/drplane", name)
	require.Equal(t, []string{"agent"}, args)
}
