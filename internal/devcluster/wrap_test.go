package devcluster

import (
	"path/filepath"
	"testing"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/stretchr/testify/require"
)

// TestNewInProcessTLS_CertificatesAsDrplaneTLS checks that the
// certificates NewInProcessTLS makes are what `drplane tls` makes.
func TestNewInProcessTLS_CertificatesAsDrplaneTLS(t *testing.T) {
	c, err := NewInProcessTLS("/bin/true", t.TempDir(), []string{"primary", "dr"})
	require.NoError(t, err)
	for name, role := range map[string]tlsutil.Role{"s1": tlsutil.RoleServer, "s2": tlsutil.RoleServer, "operator": tlsutil.RoleCLI} {
		m, err := tlsutil.Load(filepath.Join(c.tlsDir(), "ca.pem"), filepath.Join(c.tlsDir(), name+".pem"), filepath.Join(c.tlsDir(), name+"-key.pem"))
		require.NoError(t, err)
		require.Equal(t, tlsutil.Identity{Name: name, Role: role}, m.Identity())
	}
}

// TestAddAgent_OwnAddresses checks that an agent whose spec declares its
// addresses listens there, and that one without gets loopback ports.
func TestAddAgent_OwnAddresses(t *testing.T) {
	c := newTestCluster(t)
	a, err := c.AddAgent(AgentSpec{HostID: "db-1", Site: "primary", Listen: "10.77.1.13:7500", HTTP: "10.77.1.13:7501"})
	require.NoError(t, err)
	cfg, err := config.LoadAgentConfig(a.ConfigPath)
	require.NoError(t, err)
	require.Equal(t, "10.77.1.13:7500", cfg.Listen)
	require.Equal(t, "10.77.1.13:7501", cfg.HTTP)

	b, err := c.AddAgent(AgentSpec{HostID: "db-2", Site: "dr"})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host(b.GRPCAddr))
	require.Equal(t, "127.0.0.1", host(b.HTTPAddr))
}

// TestWrap_EveryServerAndAgentCommand checks that Wrap sees the command
// line of every server and agent start, with the node's or host's id, and
// that what it returns is what runs.
func TestWrap_EveryServerAndAgentCommand(t *testing.T) {
	c := newTestCluster(t)
	c.Bin = "/bin/drplane-not-run"
	c.Nodes[0].LogPath = filepath.Join(c.Dir, "s1.log")
	// Wrap runs in StartNode and Agent.Start, on this goroutine.
	seen := map[string][]string{}
	c.Wrap = func(host, name string, args []string) (string, []string) {
		seen[host] = append([]string{name}, args...)
		return "true", nil
	}
	t.Cleanup(c.Close)
	a, err := c.AddAgent(AgentSpec{HostID: "db-1", Site: "primary"})
	require.NoError(t, err)
	require.NoError(t, c.StartNode(c.Nodes[0]))
	require.NoError(t, a.Start())

	require.Equal(t, []string{"/bin/drplane-not-run", "server", "--config", c.Nodes[0].ConfigPath}, seen["s1"])
	require.Equal(t, []string{"/bin/drplane-not-run", "agent", "--config", a.ConfigPath}, seen["db-1"])
}
