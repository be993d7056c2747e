package config

import (
	"path/filepath"
	"slices"
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
	require.Empty(t, cfg.Snapshots[0].Service)

	withService, err := ParseAgentConfig([]byte(strings.Replace(exampleAgentConfig, `keep_last   = 10`, `service     = "engine"`, 1)), filepath.Join(dir, "agent.hcl"))
	require.NoError(t, err)
	require.Equal(t, "engine", withService.Snapshots[0].Service)
	require.Nil(t, cfg.CheckEndpoint)

	withCheck, err := ParseAgentConfig([]byte(exampleAgentConfig+"check_endpoint { listen = \"0.0.0.0:7502\" }\n"), filepath.Join(dir, "agent.hcl"))
	require.NoError(t, err)
	require.Equal(t, &CheckEndpointConfig{Listen: "0.0.0.0:7502", TLS: CheckTLSNone}, withCheck.CheckEndpoint, "plain HTTP unless told")
	require.Equal(t, 10, cfg.Snapshots[0].KeepLast)
	require.Equal(t, "builtin", cfg.Snapshots[0].Engine)
	require.Equal(t, []string{"/opt/app/bin/halt", "--reason", "dr"}, cfg.Hooks[0].Command)
}

// A service may depend on a service of another host at the same site; the
// control plane resolves it when it derives plans.
func TestParseAgentConfig_DependencyOnAnotherHost(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	src := strings.Replace(exampleAgentConfig, `depends_on = ["postgres"]`, `depends_on = ["postgres", "risk-db"]`, 1)
	cfg, err := ParseAgentConfig([]byte(src), filepath.Join(dir, "agent.hcl"))
	require.NoError(t, err)
	engine, _ := cfg.Service("engine")
	require.Equal(t, []string{"postgres", "risk-db"}, engine.DependsOn)
}

// TestParseAgentConfig_SyncExcludedFromRPO: a sync block of files rebuilt
// from other data says so, and nothing else does.
func TestParseAgentConfig_SyncExcludedFromRPO(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	cfg, err := ParseAgentConfig([]byte(exampleAgentConfig), filepath.Join(dir, "agent.hcl"))
	require.NoError(t, err)
	require.False(t, cfg.Syncs[0].ExcludeFromRPO)
	src := strings.Replace(exampleAgentConfig, `interval = "10s"`, `interval = "10s"`+"\n  exclude_from_rpo = true", 1)
	cfg, err = ParseAgentConfig([]byte(src), filepath.Join(dir, "agent.hcl"))
	require.NoError(t, err)
	require.True(t, cfg.Syncs[0].ExcludeFromRPO)
}

// TestParseAgentConfig_Errors has one row per validation error: an edit
// of exampleAgentConfig, the file:line:col it is reported at and its
// message (or a part of it). "$DIR" in new and want stands for the config
// file's directory.
func TestParseAgentConfig_Errors(t *testing.T) {
	cases := []struct {
		name, old, new, wantPos, want string
	}{
		{"unknown key", `run_as   = "postgres"`, `runas   = "postgres"`, "agent.hcl:14:3", `unknown key "runas"; did you mean "run_as"?`},
		{"bad driver", `driver   = "postgres"`, `driver   = "docker"`, "agent.hcl:10:14", `driver "docker" is not one of`},
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

		// Names become directories under data_dir and parts of step ids:
		// one rule (package names), checked here with file:line.
		{"service name leaving data_dir", `service "engine"`, `service "../../../../../x/escape"`, "agent.hcl:16:9",
			`service "../../../../../x/escape": a name is one path element and cannot contain "/" or "\"; expected 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit`},
		{"service name outside the rule", `service "engine"`, `service "ünï☃"`, "agent.hcl:16:9",
			`service "ünï☃": 'ü', 'ï', '☃' are not allowed in a name; expected 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit`},
		{"empty service name", `service "engine"`, `service ""`, "agent.hcl:16:9",
			`service "": the name is empty; expected 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit`},
		{"long service name", `service "engine"`, `service "` + strings.Repeat("e", 64) + `"`, "agent.hcl:16:9",
			`: the name is 64 characters long; expected 1 to 63 letters`},
		{"bad depends_on", `depends_on = ["postgres"]`, `depends_on = ["postgres", "../pg"]`, "agent.hcl:19:29",
			`service "engine": depends_on "../pg": a name is one path element`},
		{"bad sync name", `sync "state"`, `sync "st ate"`, "agent.hcl:22:6", `sync "st ate": ' ' is not allowed in a name`},
		{"bad snapshot name", `snapshot "state"`, `snapshot "../state"`, "agent.hcl:26:10", `snapshot "../state": a name is one path element`},
		{"check endpoint on the grpc port", `hook "circuit-breaker-trip" {`, "check_endpoint { listen = \"127.0.0.1:7500\" }\nhook \"circuit-breaker-trip\" {", "agent.hcl:32:27",
			`check_endpoint.listen "127.0.0.1:7500" is also listen or http; expected a port of its own, e.g. 7502`},
		{"check endpoint asking for client certificates", `hook "circuit-breaker-trip" {`, "check_endpoint {\n  listen = \"0.0.0.0:7502\"\n  tls = \"mtls\"\n}\nhook \"circuit-breaker-trip\" {", "agent.hcl:34:9",
			`check_endpoint.tls "mtls" is not "none" (plain HTTP) or "server" (HTTPS with the agent's certificate, no client certificate)`},
		{"snapshot of an undeclared service", `keep_last   = 10`, `service     = "engne"`, "agent.hcl:30:17",
			`snapshot state: service "engne" is not declared in this file; expected the service whose state the paths hold (postgres, engine)`},
		{"bad hook name", `hook "circuit-breaker-trip"`, `hook "trip:breaker"`, "agent.hcl:32:6", `hook "trip:breaker": ':' is not allowed in a name`},
		{"bad host_id", `host_id  = "db-1"`, `host_id  = "db/1"`, "agent.hcl:1:12", `host_id "db/1": a name is one path element`},
		{"bad site", `site     = "primary"`, `site     = "prim@ry"`, "agent.hcl:2:12", `site "prim@ry": '@' is not allowed in a name`},

		// Values accepted before, refused now with their position.
		{"process command in PATH", `command    = ["/opt/app/engine"`, `command    = ["engine"`, "agent.hcl:18:16",
			`service "engine": command must start with an absolute path to the program, e.g. ["/usr/local/bin/engine", ...]; "engine" would be looked up in the agent's PATH`},
		{"relative process command", `command    = ["/opt/app/engine"`, `command    = ["./bin/engine"`, "agent.hcl:18:16",
			`service "engine": command must start with an absolute path to the program, e.g. ["/usr/local/bin/engine", ...]; "./bin/engine" would be looked up in the agent's working directory`},
		{"env key with =", `  depends_on = ["postgres"]`, "  env        = { \"A=B\" = \"x\", MODE = \"live\" }\n  depends_on = [\"postgres\"]", "agent.hcl:19:18",
			`service "engine": env: "A=B" is not an environment variable name; expected letters, digits and "_", not starting with a digit, e.g. MODE`},
		{"empty env key", `  depends_on = ["postgres"]`, "  env        = { MODE = \"live\", \"\" = \"y\" }\n  depends_on = [\"postgres\"]", "agent.hcl:19:33",
			`service "engine": env: "" is not an environment variable name`},
		{"lease_ttl of 1ns", `servers  = [`, "lease_ttl = \"1ns\"\nservers  = [", "agent.hcl:6:13",
			`lease_ttl 1ns is shorter than any lease a server grants: a server's failover.lease_ttl must exceed 1.35s (3 x the Raft heartbeat timeout 450ms); set lease_ttl to the servers' failover.lease_ttl (default 3s)`},
		{"lease_ttl at the election bound", `servers  = [`, "lease_ttl = \"1350ms\"\nservers  = [", "agent.hcl:6:13",
			`lease_ttl 1.35s is shorter than any lease a server grants`},

		// Refused before only when the agent started, without a position.
		{"relative postgres data_dir", `data_dir = "/var/lib/postgresql/15/main"`, `data_dir = "pgdata"`, "agent.hcl:11:14",
			`service "postgres": data_dir "pgdata" must be a clean absolute path, PostgreSQL's data directory on this host, e.g. "/var/lib/postgresql/15/main"`},
		{"postgres data_dir is a file", `data_dir = "/var/lib/postgresql/15/main"`, `data_dir = "$DIR/ca.pem"`, "agent.hcl:11:14",
			`service "postgres": data_dir $DIR/ca.pem is a file, expected a directory; set it to PostgreSQL's data directory`},
		{"listen out of range", `listen   = "127.0.0.1:7500"`, `listen   = "999.1.1.1:99999"`, "agent.hcl:4:12",
			`listen "999.1.1.1:99999" is not a usable address: 999.1.1.1 is not an IP address and port 99999 is out of range (expected 0 to 65535); expected e.g. "10.0.1.11:7500"`},
		{"http port not a number", `http     = "127.0.0.1:7501"`, `http     = "127.0.0.1:http"`, "agent.hcl:5:12",
			`http "127.0.0.1:http" is not a usable address: port http is out of range (expected 0 to 65535); expected e.g. "10.0.1.11:7501"`},
		{"advertise not a host name", `servers  = [`, "advertise = \"db-1..example:7500\"\nservers  = [", "agent.hcl:6:13",
			`advertise "db-1..example:7500" is not a usable address: "db-1..example" is not a host name; expected e.g. "10.0.1.11:7500"`},
		{"servers entry with port 0", `"127.0.0.1:7410"`, `"127.0.0.1:0"`, "agent.hcl:6:31",
			`servers entry "127.0.0.1:0" is not a usable address: port 0 is out of range (expected 1 to 65535); expected e.g. "10.0.1.11:7400"`},
		{"sync source without a host", `interval = "10s"`, "interval = \"10s\"\n  source   = \":7500\"", "agent.hcl:25:14",
			`sync "state": source ":7500" is not a usable address: the host is empty; expected e.g. "10.0.1.11:7500"`},
		{"health tcp out of range", `health { http = "http://127.0.0.1:8004/health"`, `health { tcp = "127.0.0.1:80040"`, "agent.hcl:20:18",
			`service "engine": health.tcp "127.0.0.1:80040" is not a usable address: port 80040 is out of range (expected 1 to 65535); expected e.g. "127.0.0.1:5432"`},
		{"data_dir is a file", `data_dir = "/var/lib/drplane-agent"`, `data_dir = "ca.pem"`, "agent.hcl:3:12",
			`data_dir $DIR/ca.pem is a file, expected a directory; set data_dir to a directory for the epoch, journal and snapshots`},
		{"data_dir under a file", `data_dir = "/var/lib/drplane-agent"`, `data_dir = "ca.pem/state"`, "agent.hcl:3:12",
			`data_dir $DIR/ca.pem/state cannot be created: $DIR/ca.pem is a file, expected a directory; set data_dir to a directory for the epoch, journal and snapshots`},
		{"duration out of range", `interval = "10s"`, `interval = "100000000h"`, "agent.hcl:24:14",
			`sync state: interval: duration "100000000h" is out of range; the longest is 2562047h47m16.854775807s (about 292 years)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTLSFiles(t, dir)
			src := strings.Replace(exampleAgentConfig, tc.old, strings.ReplaceAll(tc.new, "$DIR", dir), 1)
			require.NotEqual(t, exampleAgentConfig, src, "the edit must apply")
			_, err := ParseAgentConfig([]byte(src), filepath.Join(dir, "agent.hcl"))
			var cfgErr *Error
			require.ErrorAs(t, err, &cfgErr)
			want := strings.ReplaceAll(tc.want, "$DIR", dir)
			found := false
			for _, d := range cfgErr.Diagnostics {
				if strings.HasPrefix(d.String(), filepath.Join(dir, tc.wantPos)) && strings.Contains(d.Message, want) {
					found = true
				}
			}
			require.True(t, found, "no diagnostic at %s containing %q in:\n%s", tc.wantPos, tc.want, err)
		})
	}
}

// drillAgentConfig declares drill blocks in the documented shapes: a
// postgres copy on its own port, a process copy with drill env, another
// command and its own health check.
const drillAgentConfig = `host_id  = "db-2"
site     = "dr"
data_dir = "/var/lib/drplane-agent"
servers  = ["127.0.0.1:7400"]
tls { ca_file = "ca.pem"  cert_file = "s1.pem"  key_file = "s1-key.pem" }

service "postgres" {
  driver   = "postgres"
  data_dir = "/var/lib/postgresql/15/main"
  port     = 5432
  drill { port = 15432 }
}
service "engine" {
  driver  = "process"
  command = ["/opt/app/engine", "--config", "production.toml"]
  env     = { MODE = "live", REGION = "dr" }
  health { http = "http://127.0.0.1:8004/health" }
  drill {
    command = ["/opt/app/engine", "--config", "drill.toml"]
    env     = { MODE = "drill" }
    health { http = "http://127.0.0.1:18004/health"  interval = "2s"  timeout = "1s" }
  }
}
service "gateway" { driver = "systemd" }
`

func TestParseAgentConfig_Drill(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	cfg, err := ParseAgentConfig([]byte(drillAgentConfig), filepath.Join(dir, "agent.hcl"))
	require.NoError(t, err)

	pg, _ := cfg.Service("postgres")
	require.Equal(t, &DrillConfig{Port: 15432}, pg.Drill)
	engine, _ := cfg.Service("engine")
	require.NotNil(t, engine.Drill)
	require.Equal(t, []string{"/opt/app/engine", "--config", "drill.toml"}, engine.Drill.Command)
	require.Equal(t, map[string]string{"MODE": "drill"}, engine.Drill.Env, "only the override: the driver merges it over env")
	require.Equal(t, "http://127.0.0.1:18004/health", engine.Drill.Health.HTTP)
	require.Equal(t, 2*time.Second, engine.Drill.Health.Interval)
	require.Equal(t, "http://127.0.0.1:8004/health", engine.Health.HTTP, "the service's own health check is unchanged")
	gateway, _ := cfg.Service("gateway")
	require.Nil(t, gateway.Drill)
}

func TestParseAgentConfig_DrillErrors(t *testing.T) {
	cases := []struct {
		name, old, new, wantPos, want string
	}{
		{"postgres drill without port", `drill { port = 15432 }`, `drill { }`, "agent.hcl:11:", "a postgres drill needs port"},
		{"postgres drill port out of range", `drill { port = 15432 }`, `drill { port = 70000 }`, "agent.hcl:11:18", "a postgres drill needs port between 1 and 65535"},
		{"postgres drill on the service port", `drill { port = 15432 }`, `drill { port = 5432 }`, "agent.hcl:11:18", "drill.port 5432 is the service's own port"},
		{"postgres drill with command", `drill { port = 15432 }`, `drill { port = 15432  command = ["/bin/true"] }`, "agent.hcl:11:", "drill.command applies to process services only"},
		{"process drill with port", `env     = { MODE = "drill" }`, `env     = { MODE = "drill" }` + "\n    port = 18004", "agent.hcl:21:12", "drill.port applies to postgres services only"},
		{"process drill with empty command", `command = ["/opt/app/engine", "--config", "drill.toml"]`, `command = []`, "agent.hcl:19:15", "drill.command is empty"},
		{"drill health with two kinds", `health { http = "http://127.0.0.1:18004/health"`, `health { tcp = "127.0.0.1:18004"  http = "http://127.0.0.1:18004/health"`, "agent.hcl:21:", "drill.health needs exactly one of"},
		{"drill health bad timeout", `timeout = "1s" }`, `timeout = "soon" }`, "agent.hcl:21:", `drill.health.timeout: invalid duration "soon"`},
		{"drill health timeout over interval", `timeout = "1s" }`, `timeout = "3s" }`, "agent.hcl:21:", "drill.health timeout 3s is longer than its interval 2s"},
		{"systemd drill", `service "gateway" { driver = "systemd" }`, "service \"gateway\" {\n  driver = \"systemd\"\n  drill { port = 1 }\n}", "agent.hcl:26:9", "the systemd driver cannot run a drill copy"},
		{"unknown drill key", `drill { port = 15432 }`, `drill { prot = 15432 }`, "agent.hcl:11:11", `unknown key "prot"`},
		{"two drill blocks", `drill { port = 15432 }`, "drill { port = 15432 }\n  drill { port = 15433 }", "agent.hcl:12:", "duplicate drill block"},
		{"relative drill command", `command = ["/opt/app/engine", "--config", "drill.toml"]`, `command = ["engine", "--config", "drill.toml"]`, "agent.hcl:19:15",
			`service "engine": drill.command must start with an absolute path to the program, e.g. ["/usr/local/bin/engine", ...]; "engine" would be looked up in the agent's PATH`},
		{"bad drill env key", `env     = { MODE = "drill" }`, `env     = { "1MODE" = "drill" }`, "agent.hcl:20:17",
			`service "engine": drill.env: "1MODE" is not an environment variable name; expected letters, digits and "_", not starting with a digit, e.g. MODE`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTLSFiles(t, dir)
			src := strings.Replace(drillAgentConfig, tc.old, tc.new, 1)
			require.NotEqual(t, drillAgentConfig, src, "the edit must apply")
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

// TestAgentConfig_CheckCertificateName checks that a host_id other than
// its certificate's name is refused at host_id's position, saying both
// ways out.
func TestAgentConfig_CheckCertificateName(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	file := filepath.Join(dir, "agent.hcl")
	cfg, err := ParseAgentConfig([]byte(exampleAgentConfig), file)
	require.NoError(t, err)
	require.NoError(t, cfg.CheckCertificateName("db-1"))
	err = cfg.CheckCertificateName("db-2")
	var cfgErr *Error
	require.ErrorAs(t, err, &cfgErr)
	require.EqualError(t, err, file+`:1:12: host_id "db-1" is not the name of this agent's certificate: `+filepath.Join(dir, "s1.pem")+
		` is named "db-2", and the servers let an agent register only the host its certificate names; set host_id = "db-2", or make a certificate for db-1 with `+
		"`drplane tls cert create --agent --name db-1`")
}

// backupAgentConfig declares a backup block as the backup issue shows it.
const backupAgentConfig = `host_id  = "db-1"
site     = "primary"
data_dir = "/var/lib/drplane-agent"
servers  = ["127.0.0.1:7400"]
tls { ca_file = "ca.pem"  cert_file = "s1.pem"  key_file = "s1-key.pem" }

service "postgres" {
  driver   = "postgres"
  data_dir = "/var/lib/postgresql/15/main"
  port     = 5432
}
service "engine" {
  driver  = "process"
  command = ["/opt/app/engine"]
}
backup "pg" {
  engine       = "pgbackrest"
  service      = "postgres"
  repository   = "/var/lib/pgbackrest"
  full_every   = "24h"
  incr_every   = "15m"
  keep_full    = 7
  verify_every = "24h"
}
`

func TestParseAgentConfig_Backup(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	cfg, err := ParseAgentConfig([]byte(backupAgentConfig), filepath.Join(dir, "agent.hcl"))
	require.NoError(t, err)
	b, ok := cfg.Backup("pg")
	require.True(t, ok)
	require.Equal(t, BackupConfig{Name: "pg", Engine: "pgbackrest", Service: "postgres", Repository: "/var/lib/pgbackrest",
		FullEvery: 24 * time.Hour, IncrEvery: 15 * time.Minute, KeepFull: 7, VerifyEvery: 24 * time.Hour, ProcessMax: 2,
		ConfigDir: "/var/lib/drplane-agent/backup/pg"}, b)
	i := slices.IndexFunc(cfg.Programs, func(p Program) bool { return p.Name == "pgbackrest" })
	require.GreaterOrEqual(t, i, 0, "pgbackrest is checked at start")
	require.Equal(t, `backup "pg" (engine pgbackrest)`, cfg.Programs[i].NeededBy)
}

func TestParseAgentConfig_BackupErrors(t *testing.T) {
	cases := []struct {
		name, old, new, wantPos, want string
	}{
		{"unknown service", `service      = "postgres"`, `service      = "pg"`, "agent.hcl:18:18", `backup "pg": service "pg" is not declared in this file`},
		{"not postgres", `service      = "postgres"`, `service      = "engine"`, "agent.hcl:18:18", `service "engine" has driver "process"; only a postgres service`},
		{"other engine", `engine       = "pgbackrest"`, `engine       = "barman"`, "agent.hcl:17:18", `engine "barman" is not supported; expected "pgbackrest"`},
		{"shell in repository", `repository   = "/var/lib/pgbackrest"`, `repository   = "/var/lib/pg backrest"`, "agent.hcl:19:18", `repository "/var/lib/pg backrest" must be an absolute path of letters`},
		{"bad stanza", `backup "pg"`, `backup "p;g"`, "agent.hcl:16:8", `the name is pgBackRest's stanza`},
		{"incr not shorter", `incr_every   = "15m"`, `incr_every   = "48h"`, "agent.hcl:21:18", `incr_every 48h0m0s is not shorter than full_every 24h0m0s`},
		{"bad duration", `verify_every = "24h"`, `verify_every = "daily"`, "agent.hcl:23:18", `backup "pg": verify_every: invalid duration "daily"`},
		{"keep none", `keep_full    = 7`, `keep_full    = -1`, "agent.hcl:22:18", `keep_full -1 must be at least 1`},
		{"verify on the service's port", `keep_full    = 7`, "keep_full    = 7\n  verify_port  = 5432", "agent.hcl:23:18", `verify_port 5432 is the service's own port`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTLSFiles(t, dir)
			src := strings.Replace(backupAgentConfig, tc.old, tc.new, 1)
			require.NotEqual(t, backupAgentConfig, src, "the edit must apply")
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
