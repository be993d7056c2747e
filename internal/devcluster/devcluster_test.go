package devcluster

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/stretchr/testify/require"
)

// newTestCluster lays out a one-server cluster without the drplane binary:
// certificates come from tlsutil directly.
func newTestCluster(t *testing.T) *Cluster {
	t.Helper()
	c := &Cluster{Dir: t.TempDir(), Multiplier: 1}
	require.NoError(t, tlsutil.CreateCA(c.tlsDir()))
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.tlsDir(), Name: "s1", Role: tlsutil.RoleServer})
	require.NoError(t, err)
	n := &Node{ID: "s1", Site: "primary", GRPCAddr: "127.0.0.1:7400", RaftAddr: "127.0.0.1:7401", HTTPAddr: "127.0.0.1:7402",
		ConfigPath: filepath.Join(c.Dir, "s1", "server.hcl"), DataDir: filepath.Join(c.Dir, "s1", "data")}
	c.Nodes = append(c.Nodes, n)
	return c
}

// TestServerConfig_Failover checks that the failover settings a test
// chooses reach the server as written.
func TestServerConfig_Failover(t *testing.T) {
	c := newTestCluster(t)
	f := config.DefaultServerConfig().Failover
	f.Automatic, f.ProbeInterval, f.ProbeTimeout, f.LeaseTTL = true, 200*time.Millisecond, 400*time.Millisecond, 2*time.Second
	f.FailoverTimeout, f.ClockSkewMargin = 3*time.Second, 100*time.Millisecond
	// Zero is a value here (no data loss allowed, no cooldown), not "unset".
	f.MaxDataLoss, f.Cooldown = 0, 0
	f.QuorumLossTimeout = 7 * time.Second
	f.Stonith = []config.StonithConfig{{Site: "primary", Command: []string{"/bin/fence", "--site", "primary"}, Timeout: 5 * time.Second},
		{Site: "dr", Command: []string{"/bin/fence", "--site", "dr"}, Timeout: 5 * time.Second}}
	c.Failover = &f
	c.Replication = &config.ReplicationConfig{Mode: config.ReplicationSync, Strict: true, DegradeAfter: 1500 * time.Millisecond}
	require.NoError(t, c.writeConfig(c.Nodes[0]))
	cfg, err := config.LoadServerConfig(c.Nodes[0].ConfigPath)
	require.NoError(t, err)
	require.Equal(t, *c.Failover, cfg.Failover)
	require.Equal(t, *c.Replication, cfg.Replication)
	require.Equal(t, 7400, cfg.Ports.GRPC)
}

// TestAddAgent_ConfigRoundTrip checks that every block an AgentSpec can
// declare is written as HCL the agent's own loader reads back unchanged,
// including values that need quoting.
func TestAddAgent_ConfigRoundTrip(t *testing.T) {
	c := newTestCluster(t)
	health := &config.HealthConfig{TCP: "127.0.0.1:8004", Interval: time.Second, Timeout: 500 * time.Millisecond}
	spec := AgentSpec{
		HostID: "db-1", Site: "dr", LeaseTTL: 4 * time.Second, LogLevel: "debug",
		Services: []config.ServiceConfig{
			{Name: "postgres", Driver: config.DriverPostgres, DataDir: "/var/lib/postgresql/15/main", Port: 5432,
				BinDir: "/usr/lib/postgresql/15/bin", RunAs: "postgres", Restart: "no", StopTimeout: 10 * time.Second,
				Drill: &config.DrillConfig{Port: 5433}},
			{Name: "engine", Driver: config.DriverProcess, DependsOn: []string{"postgres"},
				Command: []string{"/bin/sh", "-c", `echo "quoted ${HOME}" >> /tmp/x`}, Env: map[string]string{"MODE": "live"},
				Restart: "on-failure", StopTimeout: 30 * time.Second, Health: health,
				Drill: &config.DrillConfig{Env: map[string]string{"MODE": "drill"}, Health: health}},
		},
		Check:     &config.CheckEndpointConfig{Listen: "127.0.0.1:7502", TLS: config.CheckTLSServer},
		Syncs:     []config.SyncConfig{{Name: "state", Paths: []string{"/opt/app/state"}, Interval: 10 * time.Second, Source: "127.0.0.1:7500"}},
		Snapshots: []config.SnapshotConfig{{Name: "state", Paths: []string{"/opt/app/state"}, Every: 6 * time.Hour, KeepWithin: 720 * time.Hour, KeepLast: 10, Engine: "builtin", Service: "engine"}},
		Backups: []config.BackupConfig{{Name: "pg", Engine: "pgbackrest", Service: "postgres", Repository: "/var/lib/pgbackrest",
			FullEvery: 24 * time.Hour, IncrEvery: 15 * time.Minute, KeepFull: 7, VerifyEvery: 24 * time.Hour, VerifyPort: 15433, ProcessMax: 2,
			ConfigDir: "/etc/drplane/pgbackrest"}},
		Hooks: []config.HookConfig{{Name: "trip", Command: []string{"/opt/app/bin/halt", "--reason", "dr"}, Timeout: 30 * time.Second}},
	}
	a, err := c.AddAgent(spec)
	require.NoError(t, err)
	cfg, err := config.LoadAgentConfig(a.ConfigPath)
	require.NoError(t, err)

	require.Equal(t, "db-1", cfg.HostID)
	require.Equal(t, a.DataDir, cfg.DataDir)
	require.Equal(t, a.GRPCAddr, cfg.Listen)
	require.Equal(t, []string{"127.0.0.1:7400"}, cfg.Servers)
	require.Equal(t, spec.LeaseTTL, cfg.LeaseTTL)
	require.Equal(t, config.TLSConfig{CAFile: a.CAFile, CertFile: a.CertFile, KeyFile: a.KeyFile}, cfg.TLS)
	require.Equal(t, spec.Services, cfg.Services)
	require.Equal(t, spec.Syncs, cfg.Syncs)
	require.Equal(t, spec.Snapshots, cfg.Snapshots)
	require.Equal(t, spec.Backups, cfg.Backups)
	require.Equal(t, spec.Hooks, cfg.Hooks)
	require.Equal(t, spec.Check, cfg.CheckEndpoint)
	require.Equal(t, "127.0.0.1:7502", a.CheckAddr)

	m, err := tlsutil.Load(a.CAFile, a.CertFile, a.KeyFile)
	require.NoError(t, err)
	require.Equal(t, tlsutil.Identity{Name: "db-1", Role: tlsutil.RoleAgent}, m.Identity())

	_, err = c.AddAgent(AgentSpec{HostID: "db-1", Site: "dr"})
	require.ErrorContains(t, err, "the name is taken")
	_, err = c.AddAgent(AgentSpec{HostID: "db-2", Site: "dr", Hooks: []config.HookConfig{{Name: "bad", Command: []string{"relative"}}}})
	require.ErrorContains(t, err, "must start with an absolute path")
}
