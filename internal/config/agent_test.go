package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// exampleAgentConfig is the shape from the host-agent issue, verbatim but
// for the TLS file names.
const exampleAgentConfig = `host_id  = "db-1"
site     = "primary"
data_dir = "/var/lib/drplane-agent"
listen   = "127.0.0.1:7500"         # HostAgent gRPC (mTLS)
http     = "127.0.0.1:7501"         # health endpoints for load balancers, /metrics later
servers  = ["127.0.0.1:7400", "127.0.0.1:7410", "127.0.0.1:7420"]
tls { ca_file = "ca.pem"  cert_file = "s1.pem"  key_file = "s1-key.pem" }

service "postgres" {
  driver   = "postgres"
  data_dir = "/var/lib/postgresql/15/main"
  port     = 5432
  bin_dir  = "/usr/lib/postgresql/15/bin"
  run_as   = "postgres"
}
service "engine" {
  driver     = "process"
  command    = ["/opt/app/engine", "--config", "production.toml"]
  depends_on = ["postgres"]
  health { http = "http://127.0.0.1:8004/health"  interval = "1s"  timeout = "500ms" }
}
sync "state" {
  paths    = ["/opt/app/state"]
  interval = "10s"
}
snapshot "state" {
  paths       = ["/opt/app/state"]
  every       = "6h"
  keep_within = "720h"
  keep_last   = 10
}
hook "circuit-breaker-trip" {
  command = ["/opt/app/bin/halt", "--reason", "dr"]
  timeout = "30s"
}
`

func TestParseAgentConfig_Example(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	cfg, err := ParseAgentConfig([]byte(exampleAgentConfig), filepath.Join(dir, "agent.hcl"))
	require.NoError(t, err)
	require.Equal(t, "db-1", cfg.HostID)
	require.Equal(t, "127.0.0.1:7500", cfg.Advertise)
	require.Len(t, cfg.Servers, 3)
	pg, ok := cfg.Service("postgres")
	require.True(t, ok)
	require.Equal(t, 5432, pg.Port)
	require.Equal(t, "postgres", pg.RunAs)
	engine, _ := cfg.Service("engine")
	require.Equal(t, []string{"postgres"}, engine.DependsOn)
	require.Equal(t, "http://127.0.0.1:8004/health", engine.Health.HTTP)
	require.Equal(t, 500*time.Millisecond, engine.Health.Timeout)
	require.Equal(t, 10*time.Second, cfg.Syncs[0].Interval)
	require.Equal(t, 6*time.Hour, cfg.Snapshots[0].Every)
	require.Equal(t, 720*time.Hour, cfg.Snapshots[0].KeepWithin)
	require.Equal(t, 10, cfg.Snapshots[0].KeepLast)
	require.Equal(t, "builtin", cfg.Snapshots[0].Engine)
	require.Equal(t, []string{"/opt/app/bin/halt", "--reason", "dr"}, cfg.Hooks[0].Command)
}

func TestParseAgentConfig_Errors(t *testing.T) {
	cases := []struct {
		name, old, new, wantPos, want string
	}{
		{"unknown key", `run_as   = "postgres"`, `runas   = "postgres"`, "agent.hcl:14:3", `unknown key "runas"; did you mean "run_as"?`},
		{"bad driver", `driver   = "postgres"`, `driver   = "docker"`, "agent.hcl:10:14", `driver "docker" is not one of`},
		{"undeclared dependency", `depends_on = ["postgres"]`, `depends_on = ["redis"]`, "agent.hcl:19:16", `depends on "redis", which is not declared`},
		{"dependency cycle", `  run_as   = "postgres"`, "  run_as   = \"postgres\"\n  depends_on = [\"engine\"]", "agent.hcl:", "cycle: postgres -> engine -> postgres"},
		{"bad health timeout", `timeout = "500ms" }`, `timeout = "fast" }`, "agent.hcl:20:", `health.timeout: invalid duration "fast"`},
		{"two health kinds", `health { http = "http://127.0.0.1:8004/health"`, `health { tcp = "127.0.0.1:8004"  http = "http://127.0.0.1:8004/health"`, "agent.hcl:20:", "exactly one of http, tcp, exec, sql"},
		{"relative sync path", `paths    = ["/opt/app/state"]`, `paths    = ["state"]`, "agent.hcl:23:14", `path "state" must be an absolute path`},
		{"bad sync interval", `interval = "10s"`, `interval = "10"`, "agent.hcl:24:14", `sync state: interval: invalid duration "10"`},
		{"relative hook", `command = ["/opt/app/bin/halt"`, `command = ["halt"`, "agent.hcl:33:13", "absolute path"},
		{"duplicate service", `service "engine"`, `service "postgres"`, "agent.hcl:16:9", `service "postgres" is declared twice`},
		{"missing process command", `  command    = ["/opt/app/engine", "--config", "production.toml"]` + "\n", ``, "agent.hcl:16:", "needs command"},
		{"bad listen", `listen   = "127.0.0.1:7500"`, `listen   = "127.0.0.1"`, "agent.hcl:4:12", `listen "127.0.0.1" is not host:port`},
		{"missing tls file", `key_file = "s1-key.pem"`, `key_file = "gone.pem"`, "agent.hcl:7:", "tls.key_file: file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTLSFiles(t, dir)
			src := strings.Replace(exampleAgentConfig, tc.old, tc.new, 1)
			require.NotEqual(t, exampleAgentConfig, src, "the edit must apply")
			_, err := ParseAgentConfig([]byte(src), filepath.Join(dir, "agent.hcl"))
			var cfgErr *Error
			require.ErrorAs(t, err, &cfgErr)
			found := false
			for _, d := range cfgErr.Diagnostics {
				if strings.HasPrefix(d.String(), filepath.Join(dir, tc.wantPos)) && strings.Contains(d.Message, tc.want) {
					found = true
				}
			}
			require.True(t, found, "no diagnostic at %s containing %q in:\n%s", tc.wantPos, tc.want, err)
		})
	}
}
