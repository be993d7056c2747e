package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writeTLSFiles creates empty files standing in for the PEM files; the
// config only checks that they exist (tlsutil.Load parses them).
func writeTLSFiles(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{"ca.pem", "s1.pem", "s1-key.pem"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600))
	}
}

// exampleConfig is the shape from the issue, verbatim.
const exampleConfig = `node_id          = "s1"
site             = "primary"
data_dir         = "/var/lib/drplane"
bind_addr        = "127.0.0.1"
ports { grpc = 7400  raft = 7401  http = 7402 }
bootstrap_expect = 3
retry_join       = ["127.0.0.1:7410", "127.0.0.1:7420"]   # other servers' grpc addresses
tls { ca_file = "ca.pem"  cert_file = "s1.pem"  key_file = "s1-key.pem" }
site "primary" { kind = "data"  active = true }
site "dr"      { kind = "data" }
site "witness" { kind = "witness" }
`

func TestParseServerConfig_Example(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	cfg, err := ParseServerConfig([]byte(exampleConfig), filepath.Join(dir, "server.hcl"))
	require.NoError(t, err)
	require.Equal(t, "s1", cfg.NodeID)
	require.Equal(t, "primary", cfg.Site)
	require.Equal(t, PortsConfig{GRPC: 7400, Raft: 7401, HTTP: 7402}, cfg.Ports)
	require.Equal(t, 3, cfg.BootstrapExpect)
	require.Equal(t, []string{"127.0.0.1:7410", "127.0.0.1:7420"}, cfg.RetryJoin)
	require.Equal(t, filepath.Join(dir, "ca.pem"), cfg.TLS.CAFile, "relative paths resolve against the config's directory")
	require.Equal(t, filepath.Join(dir, "s1-key.pem"), cfg.TLS.KeyFile)
	require.Equal(t, []SiteConfig{{"primary", "data", true}, {"dr", "data", false}, {"witness", "witness", false}}, cfg.Sites)
	require.Equal(t, "127.0.0.1", cfg.AdvertiseAddr)
	require.Equal(t, "127.0.0.1:7400", cfg.AdvertiseGRPCAddr())
	require.Equal(t, "127.0.0.1:7401", cfg.RaftAddr())
	// Defaults.
	require.Equal(t, 1, cfg.RaftMultiplier)
	require.Equal(t, time.Second, cfg.RetryInterval)
	require.Equal(t, "info", cfg.LogLevel)
	require.Equal(t, 500*time.Millisecond, cfg.Failover.ProbeInterval)
	require.Equal(t, 3*time.Second, cfg.Failover.LeaseTTL)
	require.Equal(t, 5*time.Second, cfg.Failover.FailoverTimeout)
	require.Equal(t, 500*time.Millisecond, cfg.Failover.ClockSkewMargin)
}

func TestParseServerConfig_MultiLineBlocksAndFailover(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	src := `node_id = "s2"
site = "dr"
data_dir = "data"
advertise_addr = "10.0.2.10"
bind_addr = "0.0.0.0"
bootstrap_expect = 1
raft_multiplier = 5
tls {
  ca_file   = "ca.pem"
  cert_file = "s1.pem"
  key_file  = "s1-key.pem"
}
site "primary" {
  kind   = "data"
  active = true
}
site "dr" { kind = "data" }
failover {
  automatic      = true
  probe_interval = "250ms"
  lease_ttl      = "2s"
  failover_timeout = "4s"
}
`
	cfg, err := ParseServerConfig([]byte(src), filepath.Join(dir, "server.hcl"))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "data"), cfg.DataDir)
	require.Equal(t, "0.0.0.0:7400", cfg.GRPCAddr())
	require.Equal(t, "10.0.2.10:7401", cfg.AdvertiseRaftAddr())
	require.Equal(t, 5, cfg.RaftMultiplier)
	require.True(t, cfg.Failover.Automatic)
	require.Equal(t, 250*time.Millisecond, cfg.Failover.ProbeInterval)
	require.Equal(t, 2*time.Second, cfg.Failover.LeaseTTL)
}

// TestParseServerConfig_Errors has one row per validation error; each
// asserts the file:line:col the operator must look at.
func TestParseServerConfig_Errors(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(string) string
		wantPos string
		want    string
	}{
		{"syntax error", func(s string) string {
			return strings.Replace(s, `node_id          = "s1"`, `node_id          = "s1`, 1)
		},
			"server.hcl:1:23", "unterminated"},
		{"unknown top-level key", func(s string) string { return strings.Replace(s, "bootstrap_expect = 3", "bootstrap_expected = 3", 1) },
			"server.hcl:6:1", `Did you mean "bootstrap_expect"?`},
		{"unknown key in ports", func(s string) string { return strings.Replace(s, "http = 7402", "htp = 7402", 1) },
			"server.hcl:5:35", `argument named "htp" is not expected`},
		{"unknown key in tls", func(s string) string {
			return strings.Replace(s, `key_file = "s1-key.pem"`, `keyfile = "s1-key.pem"`, 1)
		},
			"server.hcl:8:49", `"keyfile" is not expected`},
		{"unknown key in site", func(s string) string {
			return strings.Replace(s, `site "dr"      { kind = "data" }`, `site "dr"      { kind = "data"  primary = true }`, 1)
		},
			"server.hcl:10:33", `"primary" is not expected`},
		{"wrong type", func(s string) string {
			return strings.Replace(s, "bootstrap_expect = 3", `bootstrap_expect = "three"`, 1)
		},
			"server.hcl:6:21", "a number is required"},
		{"missing node_id", func(s string) string { return strings.Replace(s, `node_id          = "s1"`, ``, 1) },
			"server.hcl:", `"node_id" is required`},
		{"missing tls block", func(s string) string {
			return strings.Replace(s, `tls { ca_file = "ca.pem"  cert_file = "s1.pem"  key_file = "s1-key.pem" }`, ``, 1)
		}, "server.hcl:1:1", "missing tls block"},
		{"missing tls file", func(s string) string { return strings.Replace(s, `cert_file = "s1.pem"`, `cert_file = "nope.pem"`, 1) },
			"server.hcl:8:39", "tls.cert_file: file"},
		{"bad duration", func(s string) string { return s + "failover {\n  lease_ttl = \"3 seconds\"\n}\n" },
			"server.hcl:13:15", `failover.lease_ttl: invalid duration "3 seconds"`},
		{"lease rule", func(s string) string { return s + "failover {\n  lease_ttl = \"1s\"\n}\n" },
			"server.hcl:13:15", "3 x probe_interval <= lease_ttl < failover_timeout"},
		{"two active sites", func(s string) string {
			return strings.Replace(s, `site "dr"      { kind = "data" }`, `site "dr"      { kind = "data"  active = true }`, 1)
		},
			"server.hcl:10:42", `site "primary" is active already`},
		{"no active site", func(s string) string { return strings.Replace(s, `kind = "data"  active = true`, `kind = "data"`, 1) },
			"server.hcl:9:1", "no active site"},
		{"active witness", func(s string) string {
			return strings.Replace(s, `{ kind = "witness" }`, `{ kind = "witness"  active = true }`, 1)
		},
			"server.hcl:11:", "witness site and cannot be active"},
		{"bad site kind", func(s string) string { return strings.Replace(s, `{ kind = "witness" }`, `{ kind = "arbiter" }`, 1) },
			"server.hcl:11:25", `kind "arbiter" is not "data" or "witness"`},
		{"duplicate site", func(s string) string { return strings.Replace(s, `site "witness"`, `site "dr"`, 1) },
			"server.hcl:11:6", `site "dr" is declared twice`},
		{"node site not declared", func(s string) string {
			return strings.Replace(s, `site             = "primary"`, `site             = "dr2"`, 1)
		},
			"server.hcl:2:20", `site "dr2" of this node is not declared (declared: primary, dr, witness)`},
		{"negative bootstrap_expect", func(s string) string { return strings.Replace(s, "bootstrap_expect = 3", "bootstrap_expect = -1", 1) },
			"server.hcl:6:20", "negative"},
		{"nothing to join", func(s string) string {
			s = strings.Replace(s, "bootstrap_expect = 3", "bootstrap_expect = 0", 1)
			return strings.Replace(s, `retry_join       = ["127.0.0.1:7410", "127.0.0.1:7420"]`, ``, 1)
		}, "server.hcl:6:20", "nothing to bootstrap or join"},
		{"bad retry_join", func(s string) string { return strings.Replace(s, `"127.0.0.1:7420"`, `"127.0.0.1"`, 1) },
			"server.hcl:7:20", `retry_join entry "127.0.0.1" is not host:port`},
		{"raft_multiplier range", func(s string) string { return s + "raft_multiplier = 11\n" },
			"server.hcl:12:19", "raft_multiplier 11 is out of range"},
		{"bad log_level", func(s string) string { return s + "log_level = \"loud\"\n" },
			"server.hcl:12:13", `log_level "loud" is not one of`},
		{"port out of range", func(s string) string { return strings.Replace(s, "raft = 7401", "raft = 74010", 1) },
			"server.hcl:5:29", "ports.raft 74010 is out of range"},
		{"duplicate port", func(s string) string { return strings.Replace(s, "raft = 7401", "raft = 7400", 1) },
			"server.hcl:5:29", "ports.raft 7400 is also ports.grpc"},
		{"unspecified advertise", func(s string) string {
			return strings.Replace(s, `bind_addr        = "127.0.0.1"`, `bind_addr        = "0.0.0.0"`, 1)
		},
			"server.hcl:4:20", "cannot be advertised"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTLSFiles(t, dir)
			_, err := ParseServerConfig([]byte(tc.edit(exampleConfig)), filepath.Join(dir, "server.hcl"))
			require.Error(t, err)
			var cfgErr *Error
			require.True(t, errors.As(err, &cfgErr), "want a *config.Error, got %T", err)
			require.Contains(t, err.Error(), tc.want)
			var found bool
			for _, d := range cfgErr.Diagnostics {
				if strings.HasPrefix(d.String(), filepath.Join(dir, tc.wantPos)) && strings.Contains(d.Message, tc.want) {
					found = true
				}
			}
			require.True(t, found, "no diagnostic at %s containing %q in:\n%s", tc.wantPos, tc.want, err)
		})
	}
}

func TestLoadServerConfig_MissingFile(t *testing.T) {
	_, err := LoadServerConfig(filepath.Join(t.TempDir(), "nope.hcl"))
	require.ErrorContains(t, err, "nope.hcl")
}

func TestDevServerConfig_Valid(t *testing.T) {
	c := DevServerConfig()
	require.Equal(t, 1, c.BootstrapExpect)
	require.Equal(t, "127.0.0.1:0", c.GRPCAddr())
	require.Len(t, c.Sites, 3)
}
