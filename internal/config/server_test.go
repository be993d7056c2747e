package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/drplane/drplane/internal/plan"
)

// writeTLSFiles creates files standing in for the PEM files; the config
// only checks that they exist (tlsutil.Load parses them).
func writeTLSFiles(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{"ca.pem", "s1.pem", "s1-key.pem"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600))
	}
}

// exampleConfig is the documented shape, verbatim. Values of the aligned
// top-level keys start at column 20; in line 5 the port values start at
// columns 16, 29 and 42; in line 8 the tls values at 17, 39 and 60; in the
// site lines kind's value starts at 25 and a second key at 33.
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

// parseExample parses src as server.hcl in a directory holding the TLS
// files it names.
func parseExample(t *testing.T, src string) (*ServerConfig, string, error) {
	t.Helper()
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	cfg, err := ParseServerConfig([]byte(src), filepath.Join(dir, "server.hcl"))
	return cfg, dir, err
}

func TestParseServerConfig_Example(t *testing.T) {
	cfg, dir, err := parseExample(t, exampleConfig)
	require.NoError(t, err)
	require.Equal(t, "s1", cfg.NodeID)
	require.Equal(t, "primary", cfg.Site)
	require.Equal(t, "/var/lib/drplane", cfg.DataDir)
	require.Equal(t, PortsConfig{GRPC: 7400, Raft: 7401, HTTP: 7402}, cfg.Ports)
	require.Equal(t, 3, cfg.BootstrapExpect)
	require.Equal(t, []string{"127.0.0.1:7410", "127.0.0.1:7420"}, cfg.RetryJoin)
	require.Equal(t, TLSConfig{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "s1.pem"),
		KeyFile:  filepath.Join(dir, "s1-key.pem"),
	}, cfg.TLS, "relative paths resolve against the config's directory")
	require.Equal(t, []SiteConfig{
		{Name: "primary", Kind: SiteKindData, Active: true},
		{Name: "dr", Kind: SiteKindData},
		{Name: "witness", Kind: SiteKindWitness},
	}, cfg.Sites)

	// Defaults.
	require.Equal(t, "127.0.0.1", cfg.AdvertiseAddr, "advertise_addr defaults to bind_addr")
	require.Equal(t, 1, cfg.RaftMultiplier)
	require.Equal(t, time.Second, cfg.RetryInterval)
	require.Equal(t, "info", cfg.LogLevel)
	require.Equal(t, FailoverConfig{
		ProbeInterval:       500 * time.Millisecond,
		ProbeTimeout:        time.Second,
		LeaseTTL:            3 * time.Second,
		FailoverTimeout:     3500 * time.Millisecond,
		ClockSkewMargin:     500 * time.Millisecond,
		MaxDataLoss:         30 * time.Second,
		Cooldown:            time.Hour,
		QuorumLossTimeout:   10 * time.Second,
		PrimaryStartTimeout: 30 * time.Second,
	}, cfg.Failover)

	// Addresses.
	require.Equal(t, "127.0.0.1:7400", cfg.GRPCAddr())
	require.Equal(t, "127.0.0.1:7401", cfg.RaftAddr())
	require.Equal(t, "127.0.0.1:7402", cfg.HTTPAddr())
	require.Equal(t, "127.0.0.1:7400", cfg.AdvertiseGRPCAddr())
	require.Equal(t, "127.0.0.1:7401", cfg.AdvertiseRaftAddr())
	require.NoError(t, cfg.Validate(), "a loaded config passes Validate")
}

func TestParseServerConfig_AllKeys(t *testing.T) {
	src := `node_id          = "s2"
site             = "dr"
data_dir         = "data"
bind_addr        = "0.0.0.0"
advertise_addr   = "10.0.2.10"
bootstrap_expect = 1
raft_multiplier  = 5
retry_interval   = "250ms"
log_level        = "debug"
ports {
  grpc = 0
  raft = 0
  http = 0
}
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
  automatic         = true
  probe_interval    = "250ms"
  probe_timeout     = "400ms"
  lease_ttl         = "8s"
  failover_timeout  = "10s"
  clock_skew_margin = "100ms"
  max_data_loss     = "1m"
  cooldown          = "10m"
  quorum_loss_timeout = "20s"
  primary_start_timeout = "45s"
  stonith "primary" { command = ["/etc/drplane/fence-primary.sh"]  timeout = "45s" }
  stonith "dr" { command = ["/etc/drplane/fence-dr.sh"] }
}
replication {
  mode          = "sync"
  strict        = true
  degrade_after = "3s"
}
`
	cfg, dir, err := parseExample(t, src)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "data"), cfg.DataDir, "data_dir resolves against the config's directory")
	require.Equal(t, PortsConfig{}, cfg.Ports, "0 lets the kernel choose, and may repeat")
	require.Equal(t, "0.0.0.0:0", cfg.GRPCAddr())
	require.Equal(t, "10.0.2.10:0", cfg.AdvertiseRaftAddr())
	require.Equal(t, 5, cfg.RaftMultiplier)
	require.Equal(t, 250*time.Millisecond, cfg.RetryInterval)
	require.Equal(t, "debug", cfg.LogLevel)
	require.Equal(t, FailoverConfig{
		Automatic:           true,
		ProbeInterval:       250 * time.Millisecond,
		ProbeTimeout:        400 * time.Millisecond,
		LeaseTTL:            8 * time.Second,
		FailoverTimeout:     10 * time.Second,
		ClockSkewMargin:     100 * time.Millisecond,
		MaxDataLoss:         time.Minute,
		Cooldown:            10 * time.Minute,
		PrimaryStartTimeout: 45 * time.Second, QuorumLossTimeout: 20 * time.Second,
		Stonith: []StonithConfig{
			{Site: "primary", Command: []string{"/etc/drplane/fence-primary.sh"}, Timeout: 45 * time.Second},
			{Site: "dr", Command: []string{"/etc/drplane/fence-dr.sh"}, Timeout: 30 * time.Second},
		},
	}, cfg.Failover)
	require.Equal(t, ReplicationConfig{Mode: ReplicationSync, Strict: true, DegradeAfter: 3 * time.Second}, cfg.Replication)
	// A STONITH hook whose program is missing stops the server at start,
	// not when the site is lost and the fence is needed.
	err = cfg.Programs.Check(fakeLookPath("/etc/drplane/fence-primary.sh"))
	require.EqualError(t, err, filepath.Join(dir, "server.hcl")+`:37:28: stonith "dr" runs /etc/drplane/fence-dr.sh, which is not installed (no executable file at that path); install it or correct the path, then start again`)
}

func TestLoadServerConfig_RelativePaths(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	path := filepath.Join(dir, "server.hcl")
	src := strings.Replace(exampleConfig, `data_dir         = "/var/lib/drplane"`, `data_dir         = "state"`, 1)
	require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
	t.Chdir(t.TempDir()) // paths must not depend on the working directory

	cfg, err := LoadServerConfig(path)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "state"), cfg.DataDir)
	require.Equal(t, filepath.Join(dir, "ca.pem"), cfg.TLS.CAFile)
	require.Equal(t, filepath.Join(dir, "s1.pem"), cfg.TLS.CertFile)
	require.Equal(t, filepath.Join(dir, "s1-key.pem"), cfg.TLS.KeyFile)
}

func TestLoadServerConfig_MissingFile(t *testing.T) {
	_, err := LoadServerConfig(filepath.Join(t.TempDir(), "nope.hcl"))
	require.ErrorContains(t, err, "nope.hcl")
}

// TestLoadServerConfig_Errors has one row per validation error; each
// asserts the exact file:line:col the operator must look at (worked out
// by hand from exampleConfig) and a phrase of the message. "$DIR" in want
// stands for the config file's directory.
func TestLoadServerConfig_Errors(t *testing.T) {
	replace := func(old, new string) func(string) string {
		return func(s string) string {
			out := strings.Replace(s, old, new, 1)
			if out == s {
				panic("edit does not apply: " + old)
			}
			return out
		}
	}
	appendText := func(text string) func(string) string {
		return func(s string) string { return s + text }
	}
	cases := []struct {
		name string
		edit func(string) string
		pos  string // line:col
		want string
	}{
		// Structure, reported by HCL and rephrased.
		{"syntax error", replace(`= "s1"`, `= "s1`), "1:23", "unterminated template string"},
		{"unknown top-level key", replace("bootstrap_expect = 3", "bootstrap_expected = 3"), "6:1",
			`unknown key "bootstrap_expected"; did you mean "bootstrap_expect"?`},
		{"unknown key in ports", replace("http = 7402", "htp = 7402"), "5:35", `unknown key "htp"; did you mean "http"?`},
		{"unknown key in tls", replace(`key_file = "s1-key.pem"`, `keyfile = "s1-key.pem"`), "8:49",
			`unknown key "keyfile"; did you mean "key_file"?`},
		{"unknown key in site", replace(`{ kind = "data" }`, `{ kind = "data"  primary = true }`), "10:33", `unknown key "primary"`},
		{"unknown key in failover", appendText("failover {\n  lease_tll = \"3s\"\n}\n"), "13:3",
			`unknown key "lease_tll"; did you mean "lease_ttl"?`},
		{"unknown block", appendText("failvoer {\n}\n"), "12:1", `unknown block "failvoer"; did you mean "failover"?`},
		{"notify: unknown event", appendText("notify \"oncall\" {\n  webhook = \"https://hooks.example/oncall\"\n  events = [\"failover\", \"failed\"]\n}\n"), "14:12",
			`notify "oncall": event "failed" is not one of failover, execution_failed, step_failed, approval_waiting, quorum_lost, replication_degraded, backup_failed, scheduled_drill, drill_deferred, notify`},
		{"notify: webhook not a URL", appendText("notify \"oncall\" {\n  webhook = \"hooks.example/T0KEN\"\n  events = [\"failover\"]\n}\n"), "13:13",
			`notify "oncall": webhook is not a URL to post to (scheme "" is not http or https); expected https://host/path`},
		{"notify: pagerduty without routing key", appendText("notify \"pd\" {\n  webhook = \"https://events.pagerduty.com/v2/enqueue\"\n  events = [\"failover\"]\n  format = \"pagerduty\"\n}\n"), "12:1",
			`notify "pd": format pagerduty needs routing_key`},
		{"notify: negative after", appendText("notify \"execs\" {\n  webhook = \"https://hooks.example/x\"\n  events = [\"failover\"]\n  after = \"-1h\"\n}\n"), "15:11",
			`notify.execs.after: duration "-1h" is negative; expected zero or more`},
		{"key set twice", appendText(`node_id = "s9"` + "\n"), "12:1", `key "node_id" is set twice`},
		{"wrong type", replace("bootstrap_expect = 3", `bootstrap_expect = "three"`), "6:20",
			"bootstrap_expect: wrong type: a number is required"},
		{"wrong type in block", replace("active = true", `active = "yes"`), "9:42", "site.active: wrong type: a bool is required"},
		{"missing node_id", replace(`node_id          = "s1"`, ``), "1:1", `missing required key "node_id"`},
		{"missing site", replace(`site             = "primary"`, ``), "1:1", `missing required key "site"`},
		{"missing data_dir", replace(`data_dir         = "/var/lib/drplane"`, ``), "1:1", `missing required key "data_dir"`},
		{"missing key in tls block", replace(`  key_file = "s1-key.pem"`, ``), "8:1", `tls block: missing required key "key_file"`},
		{"missing site kind", replace(`{ kind = "data" }`, `{ }`), "10:1", `site block: missing required key "kind"`},
		{"missing site label", replace(`site "dr"      {`, `site {`), "10:6", "site block: missing its name label"},
		{"missing tls block", replace(`tls { ca_file = "ca.pem"  cert_file = "s1.pem"  key_file = "s1-key.pem" }`, ``), "1:1",
			"missing tls block"},
		{"duplicate block", appendText("ports { grpc = 7500 }\n"), "12:1", "duplicate ports block"},

		// Values.
		{"no site blocks", func(s string) string { return s[:strings.Index(s, `site "primary"`)] }, "1:1", "no site blocks"},
		{"bad duration", appendText("failover {\n  lease_ttl = \"3 seconds\"\n}\n"), "13:15",
			`failover.lease_ttl: invalid duration "3 seconds": expected a number with a unit, e.g. "500ms", "3s", "1m"`},
		{"bad retry_interval", appendText(`retry_interval = "soon"` + "\n"), "12:18", `retry_interval: invalid duration "soon"`},
		{"negative duration", appendText("failover {\n  clock_skew_margin = \"-1s\"\n}\n"), "13:23",
			`failover.clock_skew_margin: duration "-1s" is negative`},
		{"missing tls file", replace(`cert_file = "s1.pem"`, `cert_file = "nope.pem"`), "8:39",
			"tls.cert_file: file $DIR/nope.pem does not exist"},
		{"tls file is a directory", replace(`ca_file = "ca.pem"`, `ca_file = "."`), "8:17", "tls.ca_file: $DIR is a directory"},
		{"two active sites", replace(`{ kind = "data" }`, `{ kind = "data"  active = true }`), "10:42",
			`site "dr" is active, but site "primary" is active already; exactly one site may be active`},
		{"no active site", replace(`kind = "data"  active = true`, `kind = "data"`), "9:1", "no active site"},
		{"active witness", replace(`{ kind = "witness" }`, `{ kind = "witness"  active = true }`), "11:45",
			`site "witness" is a witness site and cannot be active`},
		{"bad site kind", replace(`{ kind = "witness" }`, `{ kind = "arbiter" }`), "11:25", `site "witness": kind "arbiter" is not "data" or "witness"`},
		{"duplicate site", replace(`site "witness"`, `site "dr"`), "11:1", `site "dr" is declared twice`},
		{"node site not declared", replace(`= "primary"`, `= "dr2"`), "2:20",
			`site "dr2" of this node is not declared (declared: primary, dr, witness)`},
		{"negative bootstrap_expect", replace("bootstrap_expect = 3", "bootstrap_expect = -1"), "6:20", "bootstrap_expect -1 is negative"},
		{"nothing to bootstrap or join", func(s string) string {
			s = replace("bootstrap_expect = 3", "bootstrap_expect = 0")(s)
			return replace(`retry_join       = ["127.0.0.1:7410", "127.0.0.1:7420"]`, ``)(s)
		}, "6:20", "nothing to bootstrap or join"},
		{"bootstrap without peers", replace(`retry_join       = ["127.0.0.1:7410", "127.0.0.1:7420"]`, ``), "6:20",
			"bootstrap_expect = 3 needs retry_join"},
		{"bad retry_join entry", replace(`"127.0.0.1:7420"`, `"127.0.0.1"`), "7:39", `retry_join entry "127.0.0.1" is not host:port`},
		{"raft_multiplier too high", appendText("raft_multiplier = 11\n"), "12:19", "raft_multiplier 11 is out of range; expected 1 to 10"},
		{"raft_multiplier zero", appendText("raft_multiplier = 0\n"), "12:19", "raft_multiplier 0 is out of range"},
		{"bad log_level", appendText(`log_level = "loud"` + "\n"), "12:13", `log_level "loud" is not one of trace, debug, info, warn, error`},
		{"port out of range", replace("raft = 7401", "raft = 74010"), "5:29", "ports.raft 74010 is out of range; expected 0"},
		{"negative port", replace("http = 7402", "http = -1"), "5:42", "ports.http -1 is out of range"},
		{"duplicate port", replace("http = 7402", "http = 7400"), "5:42", "ports.http 7400 is also ports.grpc"},
		{"bind_addr not an IP", replace(`= "127.0.0.1"`, `= "localhost"`), "4:20", `bind_addr "localhost" is not an IP address`},
		{"unspecified bind_addr advertised", replace(`= "127.0.0.1"`, `= "0.0.0.0"`), "4:20",
			`bind_addr "0.0.0.0" cannot be advertised to other servers; set advertise_addr`},
		{"unspecified advertise_addr", appendText(`advertise_addr = "::"` + "\n"), "12:18", `advertise_addr "::" cannot be advertised`},
		{"lease_ttl too short", appendText("failover {\n  lease_ttl = \"1s\"\n}\n"), "13:15",
			"failover timings must satisfy 3 x probe_interval <= lease_ttl < failover_timeout; got probe_interval 500ms, lease_ttl 1s, failover_timeout 3.5s"},
		{"lease_ttl not before failover_timeout", appendText("failover {\n  lease_ttl        = \"3500ms\"\n  probe_timeout    = \"1s\"\n}\n"), "13:22",
			"got probe_interval 500ms, lease_ttl 3.5s, failover_timeout 3.5s"},
		{"lease rule with default lease_ttl", appendText("failover {\n  probe_interval = \"2s\"\n}\n"), "12:1",
			"got probe_interval 2s, lease_ttl 3s, failover_timeout 3.5s"},
		{"probe_timeout not below lease_ttl", appendText("failover {\n  probe_timeout = \"3s\"\n}\n"), "13:19",
			"failover.probe_timeout 3s must be shorter than lease_ttl 3s"},
		{"lease_ttl shorter than an election", appendText("failover {\n  lease_ttl        = \"2500ms\"\n}\n"), "13:22",
			"failover.lease_ttl 2.5s does not outlast a change of leader: it must exceed the election bound 1.35s (3 x the Raft heartbeat timeout 450ms x raft_multiplier 1) + probe_interval 500ms + probe_timeout 1s = 2.85s"},
		{"raft_multiplier makes elections outlast lease_ttl", appendText("raft_multiplier = 2\n"), "1:1",
			"must exceed the election bound 2.7s (3 x the Raft heartbeat timeout 450ms x raft_multiplier 2) + probe_interval 500ms + probe_timeout 1s = 4.2s"},
		{"bad max_data_loss", appendText("failover {\n  max_data_loss = \"lots\"\n}\n"), "13:19",
			`failover.max_data_loss: invalid duration "lots": expected a number with a unit`},
		{"negative max_data_loss", appendText("failover {\n  max_data_loss = \"-5s\"\n}\n"), "13:19",
			`failover.max_data_loss: duration "-5s" is negative`},
		{"automatic without witness or stonith", func(s string) string {
			s = replace(`site "witness" { kind = "witness" }`, ``)(s)
			return s + "failover {\n  automatic = true\n}\n"
		}, "13:15", `automatic = true with data sites primary, dr and no witness site needs a stonith hook for every data site (missing: primary)`},
		{"stonith with empty command", appendText("failover {\n  stonith \"primary\" { command = [] }\n}\n"), "13:33",
			`stonith "primary": command is empty`},
		{"quorum_loss_timeout below failover_timeout", appendText("failover {\n  quorum_loss_timeout = \"1s\"\n}\n"), "13:25",
			"failover.quorum_loss_timeout 1s must be at least failover_timeout 3.5s"},

		// Names, one rule for all (package names).
		{"bad node_id", replace(`= "s1"`, `= "s1/../s2"`), "1:20",
			`node_id "s1/../s2": a name is one path element and cannot contain "/" or "\"; expected 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit`},
		{"bad site key", replace(`site             = "primary"`, `site             = "prïmary"`), "2:20",
			`site "prïmary": 'ï' is not allowed in a name; expected 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit; set it to this node's site, one of: primary, dr, witness`},
		{"bad site label", replace(`site "primary"`, `site "prïmary"`), "9:6", `site "prïmary": 'ï' is not allowed in a name`},
		{"site label not starting with a letter", replace(`site "witness"`, `site ".witness"`), "11:6",
			`site ".witness": a name starts with a letter or digit; expected 1 to 63 letters`},
		{"empty site label", replace(`site "witness"`, `site ""`), "11:6", `site name is empty`},
		{"bad stonith label", appendText("failover {\n  stonith \"dr:1\" { command = [\"/bin/fence\"] }\n}\n"), "13:11",
			`stonith "dr:1": ':' is not allowed in a name; expected 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit; a stonith block is labelled with the site it fences`},
		{"bad plan name", appendText("plan \"fast failover\" {\n  kind = \"failover\"\n}\n"), "12:6",
			`plan "fast failover": ' ' is not allowed in a name`},

		// STONITH hooks, with or without automatic failover.
		{"stonith for an undeclared site", appendText("failover {\n  stonith \"nowhere\" { command = [\"/bin/fence\"] }\n}\n"), "13:11",
			`stonith "nowhere" names no declared data site (data sites: primary, dr); label the block with the data site it fences`},
		{"stonith for the witness", appendText("failover {\n  stonith \"witness\" { command = [\"/bin/fence\"] }\n}\n"), "13:11",
			`stonith "witness" names no declared data site (data sites: primary, dr)`},
		{"relative stonith command", appendText("failover {\n  stonith \"primary\" { command = [\"fence-primary\"] }\n}\n"), "13:33",
			`stonith "primary": command must start with an absolute path to the program, e.g. ["/usr/local/bin/fence-primary", ...]; "fence-primary" would depend on the server's PATH or working directory`},

		// Refused before only when the server started, or in other words.
		{"retry_join entry out of range", replace(`"127.0.0.1:7420"`, `"999.1.1.1:99999"`), "7:39",
			`retry_join entry "999.1.1.1:99999" is not a usable address: 999.1.1.1 is not an IP address and port 99999 is out of range (expected 1 to 65535); expected e.g. "10.0.1.11:7400" (another server's grpc address)`},
		{"bind_addr not an IP", replace(`= "127.0.0.1"`, `= "999.1.1.1"`), "4:20", `bind_addr "999.1.1.1" is not an IP address`},
		{"data_dir is a file", replace(`data_dir         = "/var/lib/drplane"`, `data_dir         = "ca.pem"`), "3:20",
			`data_dir $DIR/ca.pem is a file, expected a directory; set data_dir to a directory for the Raft log and snapshots`},
		{"data_dir under a file", replace(`data_dir         = "/var/lib/drplane"`, `data_dir         = "ca.pem/raft"`), "3:20",
			`data_dir $DIR/ca.pem/raft cannot be created: $DIR/ca.pem is a file, expected a directory; set data_dir to a directory for the Raft log and snapshots`},
		{"duration out of range", appendText("failover {\n  lease_ttl = \"100000000h\"\n}\n"), "13:15",
			`failover.lease_ttl: duration "100000000h" is out of range; the longest is 2562047h47m16.854775807s (about 292 years)`},

		{"unknown replication mode", appendText("replication {\n  mode = \"synchronous\"\n}\n"), "13:10",
			`replication.mode "synchronous" is not a mode; expected "async" (the default) or "sync"`},
		{"strict without sync", appendText("replication {\n  strict = true\n}\n"), "13:12", `replication.strict = true needs mode = "sync"`},
		{"degrade_after below probe_interval", appendText("replication {\n  mode = \"sync\"\n  degrade_after = \"100ms\"\n}\n"), "14:19",
			"replication.degrade_after 100ms must be at least failover.probe_interval 500ms"},

		// Plans, checked by the plan parser.
		{"bad objectives", appendText(`objectives { rto = "quick" }` + "\n"), "12:20", `objectives.rto: invalid duration "quick"`},
		{"duplicate objectives", appendText("objectives { rto = \"1m\" }\nobjectives { rpo = \"1m\" }\n"), "13:1", "duplicate objectives block"},
		{"plan without label", appendText("plan {\n}\n"), "12:6", "plan block: missing its name label"},
		{"unknown action in a plan", appendText("plan \"failover\" {\n  step \"x\" { action = \"hok\"  before = \"fence\" }\n}\n"), "13:23",
			`plan "failover": step "x": unknown action "hok"; did you mean "hook"?`},
		{"unknown key in a plan step", appendText("plan \"failover\" {\n  step \"x\" { action = \"approval\"  aftr = \"verify\" }\n}\n"), "13:35",
			`unknown key "aftr"; did you mean "after"?`},
		{"unknown phase in a plan", appendText("plan \"switchover\" {\n  step \"x\" { action = \"approval\"  before = \"fence\" }\n}\n"), "13:44",
			`unknown phase "fence" for a switchover plan`},
		{"bad plan max_data_loss", appendText("plan \"failover\" {\n  max_data_loss = \"-1s\"\n}\n"), "13:19",
			`plan "failover": max_data_loss: duration "-1s" is negative`},
		{"named plan without kind", appendText("plan \"fast\" {\n}\n"), "12:1", `plan "fast": missing kind`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, dir, err := parseExample(t, tc.edit(exampleConfig))
			require.Error(t, err)
			var cfgErr *Error
			require.True(t, errors.As(err, &cfgErr), "want a *config.Error, got %T", err)
			prefix := filepath.Join(dir, "server.hcl") + ":" + tc.pos + ": "
			want := strings.ReplaceAll(tc.want, "$DIR", dir)
			for _, d := range cfgErr.Diagnostics {
				if strings.HasPrefix(d.String(), prefix) && strings.Contains(d.Message, want) {
					return
				}
			}
			t.Fatalf("no diagnostic %q at %s in:\n%s", want, tc.pos, err)
		})
	}
}

// TestParseServerConfig_AllProblemsSorted checks that every problem of a
// file is reported at once, one per line in file order.
func TestParseServerConfig_AllProblemsSorted(t *testing.T) {
	src := strings.Replace(exampleConfig, "raft = 7401", "raft = 7400", 1)
	src = strings.Replace(src, `{ kind = "witness" }`, `{ kind = "arbiter" }`, 1)
	src += "log_level = \"loud\"\nfailover {\n  lease_ttl = \"1200ms\"\n}\n"
	_, dir, err := parseExample(t, src)
	var cfgErr *Error
	require.ErrorAs(t, err, &cfgErr)
	file := filepath.Join(dir, "server.hcl")
	var got []string
	for _, d := range cfgErr.Diagnostics {
		require.Equal(t, file, d.File)
		got = append(got, fmt.Sprintf("%d:%d", d.Line, d.Column))
	}
	require.Equal(t, []string{"5:29", "11:25", "12:13", "14:15"}, got)
	require.Len(t, strings.Split(err.Error(), "\n"), 4)
}

// TestParseServerConfig_BrokenValueNotRepeated checks that a value that
// fails to parse is reported once, not again by the rules that use it.
func TestParseServerConfig_BrokenValueNotRepeated(t *testing.T) {
	_, _, err := parseExample(t, exampleConfig+"failover {\n  lease_ttl = \"3 seconds\"\n}\n")
	var cfgErr *Error
	require.ErrorAs(t, err, &cfgErr)
	require.Len(t, cfgErr.Diagnostics, 1, "%s", err)
	require.Equal(t, "failover.lease_ttl", cfgErr.Diagnostics[0].Key)
}

func TestDevServerConfig_Valid(t *testing.T) {
	c := DevServerConfig()
	c.DataDir = t.TempDir()
	require.NoError(t, c.Validate())
	require.Equal(t, TLSConfig{}, c.TLS, "dev mode generates its own certificates")
	require.Equal(t, 1, c.BootstrapExpect)
	require.Equal(t, "primary", c.Site)
	require.Equal(t, "127.0.0.1:0", c.GRPCAddr())
	require.Equal(t, "127.0.0.1:0", c.AdvertiseRaftAddr())
	require.Len(t, c.Sites, 3)
}

// TestServerConfig_Validate_InCode checks configs built in code: problems
// carry their key but no position.
func TestServerConfig_Validate_InCode(t *testing.T) {
	c := DevServerConfig()
	c.Failover.LeaseTTL = 1200 * time.Millisecond
	c.Sites[2].Active = true
	err := c.Validate()
	var cfgErr *Error
	require.ErrorAs(t, err, &cfgErr)
	keys := make([]string, len(cfgErr.Diagnostics))
	for i, d := range cfgErr.Diagnostics {
		keys[i] = d.Key
		require.Empty(t, d.File)
		require.Equal(t, d.Message, d.String())
	}
	require.Equal(t, []string{"data_dir", "site[2].active", "failover.lease_ttl"}, keys)
}

func TestServerConfig_Validate_Blocks(t *testing.T) {
	require.NoError(t, PortsConfig{GRPC: 1, Raft: 2, HTTP: 3}.Validate())
	require.ErrorContains(t, PortsConfig{GRPC: 1, Raft: 1}.Validate(), "ports.raft 1 is also ports.grpc")
	require.NoError(t, SiteConfig{Name: "dr", Kind: SiteKindData}.Validate())
	require.ErrorContains(t, SiteConfig{Name: "w", Kind: SiteKindWitness, Active: true}.Validate(), "cannot be active")
	require.NoError(t, DefaultServerConfig().Failover.Validate())
	require.ErrorContains(t, FailoverConfig{}.Validate(), "probe_interval 0s must be positive")
	require.ErrorContains(t, TLSConfig{CAFile: "/nonexistent/ca.pem"}.Validate(), "tls.ca_file: file /nonexistent/ca.pem does not exist")
}

func TestParseServerConfig_Plans(t *testing.T) {
	src := exampleConfig + `failover {
  max_data_loss = "45s"
}
objectives { rto = "15m"  rpo = "5m" }
plan "failover" {
  objectives { rto = "10m"  rpo = "1m" }
  max_data_loss = "30s"
  step "trip-breaker" {
    action = "hook"  target = "circuit-breaker-trip"  site = "active"
    before = "fence"
    timeout = "30s"  retries = 1  on_failure = "continue"
  }
  step "resume" { action = "approval"  after = "verify" }
}
plan "failover-no-approval" { kind = "failover" }
`
	cfg, dir, err := parseExample(t, src)
	require.NoError(t, err)
	require.Equal(t, 45*time.Second, cfg.Failover.MaxDataLoss)
	require.Equal(t, plan.Objectives{RTO: 15 * time.Minute, RPO: 5 * time.Minute}, cfg.Objectives)
	require.Len(t, cfg.Plans, 2)
	def := cfg.Plans[0]
	require.Equal(t, "failover", def.Name)
	require.Equal(t, plan.KindFailover, def.Kind)
	require.Len(t, def.Steps, 2)
	require.Equal(t, filepath.Join(dir, "server.hcl"), def.Steps[0].Range.Filename, "positions name the server's file")
	require.Equal(t, 19, def.Steps[0].Range.Start.Line)
	require.Equal(t, plan.DeriveOptions{Objectives: cfg.Objectives, MaxDataLoss: 45 * time.Second}, cfg.PlanOptions())

	kind, named, err := plan.Resolve("failover-no-approval", cfg.Plans)
	require.NoError(t, err)
	require.Equal(t, plan.KindFailover, kind)
	require.Same(t, cfg.Plans[1], named)
	require.NoError(t, cfg.Validate())

	// Without them: no objectives, no plans, the default RPO limit.
	cfg, _, err = parseExample(t, exampleConfig)
	require.NoError(t, err)
	require.Empty(t, cfg.Plans)
	require.Equal(t, plan.Objectives{}, cfg.Objectives)
	require.Equal(t, plan.DefaultMaxDataLoss, cfg.Failover.MaxDataLoss)
}

// TestParseServerConfig_PlanAndConfigProblems checks that problems of the
// plan blocks come with the config's own, once each, in file order.
func TestParseServerConfig_PlanAndConfigProblems(t *testing.T) {
	src := exampleConfig + "log_level = \"loud\"\nplan \"failover\" {\n  step \"x\" { action = \"hok\"  before = \"fence\" }\n}\n"
	_, dir, err := parseExample(t, src)
	var cfgErr *Error
	require.ErrorAs(t, err, &cfgErr)
	file := filepath.Join(dir, "server.hcl")
	var got []string
	for _, d := range cfgErr.Diagnostics {
		require.Equal(t, file, d.File)
		got = append(got, fmt.Sprintf("%d:%d", d.Line, d.Column))
	}
	require.Equal(t, []string{"12:13", "14:23"}, got, "%s", err)
}

func TestServerConfig_Validate_PlanDefaults(t *testing.T) {
	c := DevServerConfig()
	c.DataDir = t.TempDir()
	c.Failover.MaxDataLoss = -time.Second
	c.Objectives.RPO = -time.Minute
	err := c.Validate()
	require.ErrorContains(t, err, "failover.max_data_loss -1s is negative")
	require.ErrorContains(t, err, "objectives.rpo -1m0s is negative")
	require.ErrorContains(t, FailoverConfig{MaxDataLoss: -1}.Validate(), "failover.max_data_loss")
}

// TestServerConfig_Validate_LeaseCoversElection checks the rule that a
// lease outlasts a change of leader: lease_ttl > 3 x heartbeat timeout x
// raft_multiplier + probe_interval + probe_timeout.
func TestServerConfig_Validate_LeaseCoversElection(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(c *ServerConfig)
		wantOK bool
	}{
		{"defaults", func(c *ServerConfig) {}, true},
		{"raft_multiplier 2 with the default lease", func(c *ServerConfig) { c.RaftMultiplier = 2 }, false},
		{"raft_multiplier 2 with a longer lease", func(c *ServerConfig) {
			c.RaftMultiplier, c.Failover.LeaseTTL, c.Failover.FailoverTimeout = 2, 5*time.Second, 7*time.Second
		}, true},
		{"lease exactly the bound", func(c *ServerConfig) { c.Failover.LeaseTTL = 2850 * time.Millisecond }, false},
		{"lease just above the bound", func(c *ServerConfig) { c.Failover.LeaseTTL = 2851 * time.Millisecond }, true},
		{"slow probes", func(c *ServerConfig) { c.Failover.ProbeTimeout = 1500 * time.Millisecond }, false},
		{"fast probes, short lease", func(c *ServerConfig) {
			c.Failover.ProbeInterval, c.Failover.ProbeTimeout, c.Failover.LeaseTTL = 200*time.Millisecond, 300*time.Millisecond, 1900*time.Millisecond
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DevServerConfig()
			c.DataDir = t.TempDir()
			tc.edit(c)
			err := c.Validate()
			if tc.wantOK {
				require.NoError(t, err)
				return
			}
			var cfgErr *Error
			require.ErrorAs(t, err, &cfgErr)
			require.Len(t, cfgErr.Diagnostics, 1, "one problem: %s", err)
			require.Equal(t, "failover.lease_ttl", cfgErr.Diagnostics[0].Key)
			require.Contains(t, cfgErr.Diagnostics[0].Message, "does not outlast a change of leader")
		})
	}
}

// TestServerConfig_CheckCertificateName checks that a node_id other than
// its certificate's name is refused at node_id's position, saying both
// ways out; a config built in code has no position.
func TestServerConfig_CheckCertificateName(t *testing.T) {
	cfg, dir, err := parseExample(t, exampleConfig)
	require.NoError(t, err)
	require.NoError(t, cfg.CheckCertificateName("s1"))
	err = cfg.CheckCertificateName("s2")
	var cfgErr *Error
	require.ErrorAs(t, err, &cfgErr)
	require.EqualError(t, err, filepath.Join(dir, "server.hcl")+`:1:20: node_id "s1" is not the name of this server's certificate: `+filepath.Join(dir, "s1.pem")+
		` is named "s2", and other servers, agents and the audit trail know a server by its certificate; set node_id = "s2", or make a certificate for s1 with `+
		"`drplane tls cert create --server --name s1`")

	dev := DevServerConfig()
	require.ErrorContains(t, dev.CheckCertificateName("s2"), `node_id "dev" is not the name of this server's certificate`)
}

// TestParseServerConfig_Notify: the escalation hierarchy of the issue's
// example, with a secret read from a file.
func TestParseServerConfig_Notify(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hook.secret"), []byte("s3cret\n"), 0o600))
	src := exampleConfig + `
notify "oncall"   { webhook = "https://hooks.example/oncall"  events = ["failover", "step_failed", "quorum_lost", "replication_degraded", "backup_failed", "approval_waiting"] }
notify "managers" {
  webhook     = "https://hooks.example/mgmt"
  after       = "15m"
  events      = ["failover", "quorum_lost"]
  format      = "slack"
  secret_file = "hook.secret"
}
notify "execs"    { webhook = "https://hooks.example/exec"  after = "1h"   events = ["failover"] }
`
	writeTLSFiles(t, dir)
	cfg, err := ParseServerConfig([]byte(src), filepath.Join(dir, "server.hcl"))
	require.NoError(t, err)
	require.Len(t, cfg.Notify, 3)
	require.Equal(t, NotifyConfig{Name: "oncall", Webhook: "https://hooks.example/oncall", Format: "json",
		Events: []string{"failover", "step_failed", "quorum_lost", "replication_degraded", "backup_failed", "approval_waiting"}}, cfg.Notify[0])
	require.Equal(t, 15*time.Minute, cfg.Notify[1].After)
	require.Equal(t, "slack", cfg.Notify[1].Format)
	require.Equal(t, "s3cret", cfg.Notify[1].Secret)
	require.Equal(t, time.Hour, cfg.Notify[2].After)
}
