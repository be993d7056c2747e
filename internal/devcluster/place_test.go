package devcluster

import (
	"testing"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/stretchr/testify/require"
)

// TestPlace_ServersAndAgentsOnTheirOwnAddresses checks what a
// network-namespace topology relies on: a placed server binds and
// advertises its host's address with the default ports and joins the
// others at theirs, an agent with an IP listens there, and both run
// through `ip netns exec` in their namespace.
func TestPlace_ServersAndAgentsOnTheirOwnAddresses(t *testing.T) {
	c := &Cluster{Dir: t.TempDir(), Multiplier: 1, inProcessTLS: true}
	c, err := newCluster(c, []string{"primary", "dr"})
	require.NoError(t, err)
	require.NoError(t, c.Place(c.Nodes[0], "ns-s1", "10.77.1.11"))
	require.NoError(t, c.Place(c.Nodes[1], "ns-s2", "10.77.2.11"))
	require.Error(t, c.Place(c.Nodes[1], "ns-s2", "not-an-ip"))

	cfg, err := config.LoadServerConfig(c.Nodes[0].ConfigPath)
	require.NoError(t, err)
	require.Equal(t, "10.77.1.11", cfg.BindAddr)
	require.Equal(t, PlacedGRPCPort, cfg.Ports.GRPC)
	require.Equal(t, PlacedRaftPort, cfg.Ports.Raft)
	require.Equal(t, PlacedHTTPPort, cfg.Ports.HTTP)
	require.Equal(t, []string{"10.77.2.11:7400"}, cfg.RetryJoin)

	a, err := c.AddAgent(AgentSpec{HostID: "db-1", Site: "primary", Netns: "ns-db1", IP: "10.77.1.13"})
	require.NoError(t, err)
	acfg, err := config.LoadAgentConfig(a.ConfigPath)
	require.NoError(t, err)
	require.Equal(t, "10.77.1.13:7500", acfg.Listen)
	require.Equal(t, "10.77.1.13:7501", acfg.HTTP)
	require.Equal(t, []string{"10.77.1.11:7400", "10.77.2.11:7400"}, acfg.Servers)

	// The in-process certificates are what `drplane tls` makes.
	for name, role := range map[string]tlsutil.Role{"s1": tlsutil.RoleServer, "operator": tlsutil.RoleCLI} {
		m, err := tlsutil.Load(c.tlsDir()+"/ca.pem", c.tlsDir()+"/"+name+".pem", c.tlsDir()+"/"+name+"-key.pem")
		require.NoError(t, err)
		require.Equal(t, tlsutil.Identity{Name: name, Role: role}, m.Identity())
	}

	name, args := NetnsCommand("ns-s1", "/bin/drplane", []string{"server", "--config", "x.hcl"})
	require.Equal(t, "ip", name)
	require.Equal(t, []string{"netns", "exec", "ns-s1", "/bin/drplane", "server", "--config", "x.hcl"}, args)
	name, args = NetnsCommand("", "/bin/drplane", []string{"agent"})
	require.Equal(t, "/bin/drplane", name)
	require.Equal(t, []string{"agent"}, args)
}
