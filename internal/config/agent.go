package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/backuprules"
	"github.com/drplane/drplane/internal/hclpos"
	"github.com/drplane/drplane/internal/names"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Service drivers.
const (
	DriverProcess  = "process"
	DriverSystemd  = "systemd"
	DriverPostgres = "postgres"
)

// AgentConfig is the configuration of one `drplane agent`.
type AgentConfig struct {
	HostID  string
	Site    string
	DataDir string
	// Listen is the HostAgent gRPC address; HTTP serves health and the
	// load-balancer role endpoint.
	Listen    string
	HTTP      string
	Advertise string
	Servers   []string
	LogLevel  string
	// LeaseTTL is the boot fencing window: a primary-role service found
	// running at start is fenced unless a leader grants a lease within it.
	// It should equal the servers' failover.lease_ttl.
	LeaseTTL  time.Duration
	TLS       TLSConfig
	Services  []ServiceConfig
	Syncs     []SyncConfig
	Snapshots []SnapshotConfig
	Backups   []BackupConfig
	Hooks     []HookConfig
	// CheckEndpoint, when set, serves the read-only endpoints on a second
	// listener without client authentication, for load balancers that
	// cannot present a client certificate.
	CheckEndpoint *CheckEndpointConfig
	// Programs are the external programs the blocks above run, with
	// where each is declared; see Programs.Check.
	Programs Programs
	// hostIDAt is where host_id is written, for CheckCertificateName;
	// zero for a config built in code.
	hostIDAt Diagnostic
}

// ServiceConfig declares one service the agent owns.
type ServiceConfig struct {
	Name      string
	Driver    string
	DependsOn []string
	// postgres
	DataDir string
	Port    int
	BinDir  string
	RunAs   string
	// process
	Command     []string
	Env         map[string]string
	Dir         string
	Restart     string
	StopTimeout time.Duration
	// systemd
	Unit   string
	Health *HealthConfig
	// Drill is how the service's drill copy differs from it; nil when the
	// service declares no drill block, which refuses drill starts.
	Drill *DrillConfig
}

// DrillConfig is a service's drill block: what its isolated drill copy
// changes so that it runs beside production without touching it.
type DrillConfig struct {
	// Port is a postgres copy's port: required for postgres, and never
	// the service's own port.
	Port int
	// Command replaces a process service's command; empty keeps it.
	Command []string
	// Env is merged over a process service's env.
	Env map[string]string
	// Health replaces the service's health check for the copy, which
	// listens elsewhere; nil means no drill health check.
	Health *HealthConfig
}

// HealthConfig is a service's health check: exactly one of HTTP, TCP,
// Exec and SQL.
type HealthConfig struct {
	HTTP     string
	TCP      string
	Exec     []string
	SQL      string
	Query    string
	Interval time.Duration
	Timeout  time.Duration
}

// SyncConfig declares paths replicated from the active site's agent that
// declares the same sync block.
type SyncConfig struct {
	Name     string
	Paths    []string
	Interval time.Duration
	// Source is the HostAgent address to pull from; empty means the agent
	// of the active site that declares this sync.
	Source string
	// ExcludeFromRPO marks files rebuilt from other data (a cache, a
	// journal of rows the database holds): their age is shown but not
	// counted in the RPO of a failover.
	ExcludeFromRPO bool
}

// SnapshotConfig schedules snapshots of paths.
type SnapshotConfig struct {
	Name       string
	Paths      []string
	Every      time.Duration
	KeepWithin time.Duration
	KeepLast   int
	Engine     string
	Repository string
	// PasswordFile is restic's repository password file.
	PasswordFile string
	// Service is the service of this agent whose state the paths hold;
	// "" for none. A restore plan that stops the service brings the paths
	// back to the snapshot of its target's time.
	Service string
}

// BackupConfig is a backup block: consistent backups of a postgres
// service with point-in-time recovery, through pgBackRest. Every host
// that runs the service declares the same block with the same repository
// (shared storage), so that the stanza stays one history across
// failovers: whichever host is primary archives its WAL there, and the
// active site's primary takes the scheduled backups.
type BackupConfig struct {
	// Name is the block's label; it is also pgBackRest's stanza.
	Name string
	// Engine is "pgbackrest", the only one.
	Engine string
	// Service is the postgres service backed up.
	Service string
	// Repository is the directory pgBackRest stores backups and WAL in.
	Repository string
	// FullEvery and IncrEvery schedule full and incremental backups; zero
	// takes none of that kind on a schedule.
	FullEvery time.Duration
	IncrEvery time.Duration
	// KeepFull is how many full backups are kept (and the WAL they need).
	KeepFull int
	// VerifyEvery schedules a verification: the newest backup restored
	// into a scratch directory, started on a side port and queried. Zero
	// verifies only on demand.
	VerifyEvery time.Duration
	// VerifyPort is the side port of the verification; zero takes a free
	// one when it runs.
	VerifyPort int
	// ProcessMax is how many processes pgBackRest copies and compresses
	// with.
	ProcessMax int
	// ConfigDir is where the agent writes the stanza's pgbackrest.conf;
	// the service's run_as user must be able to reach it, since
	// archive_command runs pgBackRest as that user. Default
	// <data_dir>/backup/<name>.
	ConfigDir string
}

// Backup returns the backup block named name.
func (c *AgentConfig) Backup(name string) (BackupConfig, bool) {
	i := slices.IndexFunc(c.Backups, func(b BackupConfig) bool { return b.Name == name })
	if i < 0 {
		return BackupConfig{}, false
	}
	return c.Backups[i], true
}

// CheckEndpointConfig is a listener for health checkers that cannot
// present a client certificate (AWS load balancers, keepalived, most
// appliances): GET /v1/role/<service>, GET /v1/health and GET /metrics,
// nothing else, over plain HTTP or server-only TLS.
type CheckEndpointConfig struct {
	Listen string
	// TLS is CheckTLSNone (plain HTTP) or CheckTLSServer (HTTPS with the
	// agent's certificate, no client certificate asked).
	TLS string
}

// The check endpoint's TLS modes.
const (
	CheckTLSNone   = "none"
	CheckTLSServer = "server"
)

// HookConfig is a command the agent may run as a plan step. Only hooks
// declared here ever run.
type HookConfig struct {
	Name    string
	Command []string
	Timeout time.Duration
}

// Service returns the service named name.
func (c *AgentConfig) Service(name string) (ServiceConfig, bool) {
	i := slices.IndexFunc(c.Services, func(s ServiceConfig) bool { return s.Name == name })
	if i < 0 {
		return ServiceConfig{}, false
	}
	return c.Services[i], true
}

// serviceNames lists the declared services' names, for messages.
func (c *AgentConfig) serviceNames() []string {
	out := make([]string, len(c.Services))
	for i, s := range c.Services {
		out[i] = s.Name
	}
	return out
}

type rawAgent struct {
	HostID    string        `hcl:"host_id"`
	Site      string        `hcl:"site"`
	DataDir   string        `hcl:"data_dir"`
	Listen    string        `hcl:"listen,optional"`
	HTTP      string        `hcl:"http,optional"`
	Advertise string        `hcl:"advertise,optional"`
	Servers   []string      `hcl:"servers"`
	LogLevel  string        `hcl:"log_level,optional"`
	LeaseTTL  string        `hcl:"lease_ttl,optional"`
	TLS       *rawTLS       `hcl:"tls,block"`
	Services  []rawService  `hcl:"service,block"`
	Syncs     []rawSync     `hcl:"sync,block"`
	Snapshots []rawSnapshot `hcl:"snapshot,block"`
	Backups   []rawBackup   `hcl:"backup,block"`
	Hooks     []rawHook     `hcl:"hook,block"`
	Check     *rawCheck     `hcl:"check_endpoint,block"`
}

type rawCheck struct {
	Listen string `hcl:"listen"`
	TLS    string `hcl:"tls,optional"`
}

type rawService struct {
	Name        string            `hcl:"name,label"`
	Driver      string            `hcl:"driver"`
	DependsOn   []string          `hcl:"depends_on,optional"`
	DataDir     string            `hcl:"data_dir,optional"`
	Port        int               `hcl:"port,optional"`
	BinDir      string            `hcl:"bin_dir,optional"`
	RunAs       string            `hcl:"run_as,optional"`
	Command     []string          `hcl:"command,optional"`
	Env         map[string]string `hcl:"env,optional"`
	Dir         string            `hcl:"dir,optional"`
	Restart     string            `hcl:"restart,optional"`
	StopTimeout string            `hcl:"stop_timeout,optional"`
	Unit        string            `hcl:"unit,optional"`
	Health      *rawHealth        `hcl:"health,block"`
	Drill       *rawDrill         `hcl:"drill,block"`
}

type rawDrill struct {
	Port    int               `hcl:"port,optional"`
	Command []string          `hcl:"command,optional"`
	Env     map[string]string `hcl:"env,optional"`
	Health  *rawHealth        `hcl:"health,block"`
}

type rawHealth struct {
	HTTP     string   `hcl:"http,optional"`
	TCP      string   `hcl:"tcp,optional"`
	Exec     []string `hcl:"exec,optional"`
	SQL      string   `hcl:"sql,optional"`
	Query    string   `hcl:"query,optional"`
	Interval string   `hcl:"interval,optional"`
	Timeout  string   `hcl:"timeout,optional"`
}

type rawSync struct {
	Name     string   `hcl:"name,label"`
	Paths    []string `hcl:"paths"`
	Interval string   `hcl:"interval,optional"`
	Source   string   `hcl:"source,optional"`
	// ExcludeFromRPO: see SyncConfig.
	ExcludeFromRPO bool `hcl:"exclude_from_rpo,optional"`
}

type rawSnapshot struct {
	Name         string   `hcl:"name,label"`
	Paths        []string `hcl:"paths"`
	Every        string   `hcl:"every,optional"`
	KeepWithin   string   `hcl:"keep_within,optional"`
	KeepLast     int      `hcl:"keep_last,optional"`
	Engine       string   `hcl:"engine,optional"`
	Repository   string   `hcl:"repository,optional"`
	PasswordFile string   `hcl:"password_file,optional"`
	Service      string   `hcl:"service,optional"`
}

type rawBackup struct {
	Name        string `hcl:"name,label"`
	Engine      string `hcl:"engine"`
	Service     string `hcl:"service"`
	Repository  string `hcl:"repository"`
	FullEvery   string `hcl:"full_every,optional"`
	IncrEvery   string `hcl:"incr_every,optional"`
	KeepFull    int    `hcl:"keep_full,optional"`
	VerifyEvery string `hcl:"verify_every,optional"`
	VerifyPort  int    `hcl:"verify_port,optional"`
	ProcessMax  int    `hcl:"process_max,optional"`
	ConfigDir   string `hcl:"config_dir,optional"`
}

type rawHook struct {
	Name    string   `hcl:"name,label"`
	Command []string `hcl:"command"`
	Timeout string   `hcl:"timeout,optional"`
}

// LoadAgentConfig reads and validates an agent configuration file.
func LoadAgentConfig(path string) (*AgentConfig, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	return ParseAgentConfig(src, path)
}

// ParseAgentConfig parses and validates src as the file filename.
func ParseAgentConfig(src []byte, filename string) (*AgentConfig, error) {
	src, lines := hclpos.ExpandSingleLineBlocks(src, filename)
	d := &diagnostics{file: filename, lines: lines}
	file, hd := hclparse.NewParser().ParseHCL(src, filename)
	d.addHCL(hd)
	if hd.HasErrors() {
		return nil, d.err()
	}
	var raw rawAgent
	d.addHCL(gohcl.DecodeBody(file.Body, nil, &raw))
	if len(d.diags) > 0 {
		return nil, d.err()
	}
	v := &agentValidator{d: d, body: file.Body.(*hclsyntax.Body), file: filename, programs: programCollector{d: d}}
	cfg := v.build(&raw)
	if err := d.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

type agentValidator struct {
	d    *diagnostics
	body *hclsyntax.Body
	file string
	// programs collects the external programs the blocks run.
	programs programCollector
}

func (v *agentValidator) build(raw *rawAgent) *AgentConfig {
	cfg := &AgentConfig{
		HostID: raw.HostID, Site: raw.Site, DataDir: resolvePath(v.file, raw.DataDir),
		Listen: orDefault(raw.Listen, "127.0.0.1:7500"), HTTP: orDefault(raw.HTTP, "127.0.0.1:7501"),
		Advertise: raw.Advertise, Servers: raw.Servers, LogLevel: orDefault(raw.LogLevel, "info"),
	}
	cfg.LeaseTTL = v.d.parseDuration(attrRange(v.body, "lease_ttl"), "lease_ttl", raw.LeaseTTL, 3*time.Second)
	v.leaseTTL(cfg.LeaseTTL)
	v.identity(cfg)
	(&serverValidator{d: v.d, body: v.body, file: v.file}).tls(raw.TLS, &cfg.TLS)
	v.services(raw.Services, cfg)
	v.syncs(raw.Syncs, cfg)
	v.snapshots(raw.Snapshots, cfg)
	v.backups(raw.Backups, cfg)
	v.hooks(raw.Hooks, cfg)
	v.checkEndpoint(raw.Check, cfg)
	cfg.Programs = v.programs.list
	cfg.hostIDAt = v.d.position(attrRange(v.body, "host_id"))
	return cfg
}

// minAgentLeaseTTL is the bound an agent's lease_ttl must exceed: the
// election bound at raft_multiplier 1 (3 x RaftHeartbeatTimeout), which
// every server's failover.lease_ttl exceeds (see
// ServerConfig.validateLeaseCoversElection), so no value a server accepts
// is refused here. The agent's lease_ttl is its boot fencing window and
// should equal the servers' value; a shorter one ("1ns") fences every
// primary the agent adopts at start before a leader can vouch for it, so
// each restart of the agent would take production down (invariant 4 is
// kept either way: this bound is about availability, not safety).
const minAgentLeaseTTL = 3 * RaftHeartbeatTimeout

// leaseTTL checks the agent's lease_ttl against minAgentLeaseTTL, unless
// it could not be parsed (reported already).
func (v *agentValidator) leaseTTL(ttl time.Duration) {
	if v.d.broken["lease_ttl"] || ttl > minAgentLeaseTTL {
		return
	}
	v.d.at(attrRange(v.body, "lease_ttl"), "lease_ttl %s is shorter than any lease a server grants: a server's failover.lease_ttl must exceed %s (3 x the Raft heartbeat timeout %s); set lease_ttl to the servers' failover.lease_ttl (default 3s)",
		ttl, minAgentLeaseTTL, RaftHeartbeatTimeout)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (v *agentValidator) identity(cfg *AgentConfig) {
	switch {
	case cfg.HostID == "":
		v.d.at(attrRange(v.body, "host_id"), "host_id is empty; expected this host's name, e.g. \"db-1\" (also its certificate name)")
	case !names.Valid(cfg.HostID):
		v.d.at(attrRange(v.body, "host_id"), "host_id %q: %v", cfg.HostID, names.Check(cfg.HostID))
	}
	switch {
	case cfg.Site == "":
		v.d.at(attrRange(v.body, "site"), "site is empty; expected the data site this host is in")
	case !names.Valid(cfg.Site):
		v.d.at(attrRange(v.body, "site"), "site %q: %v", cfg.Site, names.Check(cfg.Site))
	}
	if cfg.DataDir == "" {
		v.d.at(attrRange(v.body, "data_dir"), "data_dir is empty; expected a directory for the epoch, journal and snapshots")
	} else if err := checkDir(cfg.DataDir); err != nil {
		v.d.at(attrRange(v.body, "data_dir"), "data_dir %v; set data_dir to a directory for the epoch, journal and snapshots", err)
	}
	levels := []string{"trace", "debug", "info", "warn", "error"}
	if !slices.Contains(levels, strings.ToLower(cfg.LogLevel)) {
		v.d.at(attrRange(v.body, "log_level"), "log_level %q is not one of %s", cfg.LogLevel, strings.Join(levels, ", "))
	}
	v.addresses(cfg)
}

// addresses checks the addresses the agent listens on, advertises and
// dials, and fills in advertise from listen when it is not set.
func (v *agentValidator) addresses(cfg *AgentConfig) {
	v.hostPort("listen", cfg.Listen, true, "10.0.1.11:7500")
	v.hostPort("http", cfg.HTTP, true, "10.0.1.11:7501")
	if cfg.Advertise == "" {
		cfg.Advertise = cfg.Listen
	} else {
		v.hostPort("advertise", cfg.Advertise, false, "10.0.1.11:7500")
	}
	if host, _, err := net.SplitHostPort(cfg.Advertise); err == nil && net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		v.d.at(attrRange(v.body, "listen"), "listen %q cannot be advertised to the servers; set advertise to this host's address", cfg.Listen)
	}
	if len(cfg.Servers) == 0 {
		v.d.at(attrRange(v.body, "servers"), "servers is empty; expected the grpc addresses of the drplane servers")
	}
	for i, s := range cfg.Servers {
		if msg := addrProblem("servers entry", s, false, "10.0.1.11:7400"); msg != "" {
			v.d.at(keyRange(v.body, fmt.Sprintf("servers[%d]", i)), "%s", msg)
		}
	}
}

// checkEndpoint checks the check_endpoint block.
func (v *agentValidator) checkEndpoint(raw *rawCheck, cfg *AgentConfig) {
	if raw == nil {
		return
	}
	body := blocks(v.body, "check_endpoint")[0].Body
	c := &CheckEndpointConfig{Listen: raw.Listen, TLS: orDefault(raw.TLS, CheckTLSNone)}
	if msg := addrProblem("check_endpoint.listen", c.Listen, true, "0.0.0.0:7502"); msg != "" {
		v.d.at(attrRange(body, "listen"), "%s", msg)
	} else if c.Listen == cfg.Listen || c.Listen == cfg.HTTP {
		v.d.at(attrRange(body, "listen"), "check_endpoint.listen %q is also listen or http; expected a port of its own, e.g. 7502", c.Listen)
	}
	if c.TLS != CheckTLSNone && c.TLS != CheckTLSServer {
		v.d.at(attrRange(body, "tls"), "check_endpoint.tls %q is not %q (plain HTTP) or %q (HTTPS with the agent's certificate, no client certificate)",
			c.TLS, CheckTLSNone, CheckTLSServer)
	}
	cfg.CheckEndpoint = c
}

// hostPort checks the address key; see addrProblem.
func (v *agentValidator) hostPort(key, val string, listening bool, example string) {
	if msg := addrProblem(key, val, listening, example); msg != "" {
		v.d.at(attrRange(v.body, key), "%s", msg)
	}
}

// uniqueName checks a block's name label: it follows the name rule (the
// agent makes directories and step ids of it) and is not declared twice.
func (v *agentValidator) uniqueName(seen map[string]bool, b *hclsyntax.Block, kind, name string) {
	if err := names.Check(name); err != nil {
		v.d.at(b.LabelRanges[0], "%s %q: %v", kind, name, err)
	}
	if seen[name] {
		v.d.at(b.LabelRanges[0], "%s %q is declared twice", kind, name)
	}
	seen[name] = true
}

func (v *agentValidator) services(raw []rawService, cfg *AgentConfig) {
	blks := blocks(v.body, "service")
	seen := map[string]bool{}
	for i, r := range raw {
		v.uniqueName(seen, blks[i], "service", r.Name)
		cfg.Services = append(cfg.Services, v.service(r, blks[i].Body))
	}
	// A dependency may name a service of another host at the same site
	// (the engine here on the database on db-1): plans resolve it across
	// the site's registered agents, so it is not checked here.
	if cycle := dependencyCycle(cfg.Services); cycle != "" {
		v.d.at(attrRange(blks[0].Body, "depends_on"), "services depend on each other in a cycle: %s", cycle)
	}
}

func (v *agentValidator) service(r rawService, body *hclsyntax.Body) ServiceConfig {
	s := ServiceConfig{
		Name: r.Name, Driver: r.Driver, DependsOn: r.DependsOn,
		DataDir: r.DataDir, Port: r.Port, BinDir: r.BinDir, RunAs: r.RunAs,
		Command: r.Command, Env: r.Env, Dir: r.Dir, Restart: orDefault(r.Restart, "no"), Unit: r.Unit,
	}
	s.StopTimeout = v.d.parseDuration(attrRange(body, "stop_timeout"), "service "+r.Name+": stop_timeout", r.StopTimeout, 30*time.Second)
	for i, dep := range r.DependsOn {
		if err := names.Check(dep); err != nil {
			v.d.at(keyRange(body, fmt.Sprintf("depends_on[%d]", i)), "service %q: depends_on %q: %v", r.Name, dep, err)
		}
	}
	v.serviceDriver(body, &s)
	v.envNames(body, fmt.Sprintf("service %q: env", r.Name), s.Env)
	if r.Health != nil {
		s.Health = v.health(r.Name, "health", r.Health, blockBody(body, "health"))
	}
	if r.Drill != nil {
		s.Drill = v.drill(s, r.Drill, blockBody(body, "drill"))
	}
	return s
}

// serviceDriver checks the keys of s's driver and fills its defaults.
func (v *agentValidator) serviceDriver(body *hclsyntax.Body, s *ServiceConfig) {
	switch s.Driver {
	case DriverPostgres:
		v.postgresDataDir(body, *s)
		if s.Port <= 0 || s.Port > 65535 {
			v.d.at(attrRange(body, "port"), "service %q: the postgres driver needs port between 1 and 65535", s.Name)
		}
		s.BinDir, s.RunAs = orDefault(s.BinDir, "/usr/lib/postgresql/15/bin"), orDefault(s.RunAs, "postgres")
		v.postgresBinDir(attrRange(body, "bin_dir"), *s)
	case DriverProcess:
		if len(s.Command) == 0 {
			v.d.at(body.SrcRange, "service %q: the process driver needs command = [\"/path/to/binary\", \"arg\", ...]", s.Name)
		}
		if !slices.Contains([]string{"no", "on-failure", "always"}, s.Restart) {
			v.d.at(attrRange(body, "restart"), "service %q: restart %q is not one of no, on-failure, always", s.Name, s.Restart)
		}
		v.absoluteCommand(attrRange(body, "command"), fmt.Sprintf("service %q: command", s.Name), s.Command)
		v.programs.command(attrRange(body, "command"), fmt.Sprintf("service %q", s.Name), s.Command)
	case DriverSystemd:
		if s.Unit == "" {
			s.Unit = s.Name + ".service"
		}
		v.programs.program(attrRange(body, "driver"), fmt.Sprintf("service %q (driver systemd)", s.Name), "systemctl", "apt-get install systemd")
	default:
		v.d.at(attrRange(body, "driver"), "service %q: driver %q is not one of postgres, process, systemd", s.Name, s.Driver)
	}
}

// postgresDataDir checks a postgres service's data_dir: PostgreSQL's own
// data directory on this host, which pg_ctl is given as written, so it
// must be absolute and clean (not resolved against the config file's
// directory, as the agent's own paths are). It may not exist yet (a
// standby is cloned into it), but an existing one must be a directory.
func (v *agentValidator) postgresDataDir(body *hclsyntax.Body, s ServiceConfig) {
	rng := attrRange(body, "data_dir")
	switch {
	case s.DataDir == "":
		v.d.at(body.SrcRange, "service %q: the postgres driver needs data_dir", s.Name)
	case !filepath.IsAbs(s.DataDir) || filepath.Clean(s.DataDir) != s.DataDir:
		v.d.at(rng, "service %q: data_dir %q must be a clean absolute path, PostgreSQL's data directory on this host, e.g. \"/var/lib/postgresql/15/main\"", s.Name, s.DataDir)
	default:
		if err := checkDir(s.DataDir); err != nil {
			v.d.at(rng, "service %q: data_dir %v; set it to PostgreSQL's data directory", s.Name, err)
		}
	}
}

// drill validates a service's drill block: a postgres copy needs a port
// of its own, a process copy may change its command, env and health
// check, and a systemd unit cannot run twice.
func (v *agentValidator) drill(s ServiceConfig, r *rawDrill, body *hclsyntax.Body) *DrillConfig {
	d := &DrillConfig{Port: r.Port, Command: r.Command, Env: r.Env}
	switch s.Driver {
	case DriverPostgres:
		switch {
		case d.Port <= 0 || d.Port > 65535:
			v.d.at(attrRange(body, "port"), "service %q: a postgres drill needs port between 1 and 65535 for its copy", s.Name)
		case d.Port == s.Port:
			v.d.at(attrRange(body, "port"), "service %q: drill.port %d is the service's own port; the drill copy runs beside it", s.Name, d.Port)
		}
		for _, key := range []string{"command", "env"} {
			if _, ok := body.Attributes[key]; ok {
				v.d.at(attrRange(body, key), "service %q: drill.%s applies to process services only", s.Name, key)
			}
		}
	case DriverProcess:
		if _, ok := body.Attributes["port"]; ok {
			v.d.at(attrRange(body, "port"), "service %q: drill.port applies to postgres services only; a process copy takes its port from its command or env", s.Name)
		}
		if _, ok := body.Attributes["command"]; ok && (len(d.Command) == 0 || d.Command[0] == "") {
			v.d.at(attrRange(body, "command"), "service %q: drill.command is empty; leave it out to run the service's command", s.Name)
		} else if ok {
			v.absoluteCommand(attrRange(body, "command"), fmt.Sprintf("service %q: drill.command", s.Name), d.Command)
		}
		v.envNames(body, fmt.Sprintf("service %q: drill.env", s.Name), d.Env)
	case DriverSystemd:
		v.d.at(body.SrcRange, "service %q: the systemd driver cannot run a drill copy beside its unit; remove the drill block", s.Name)
	}
	if r.Health != nil {
		d.Health = v.health(s.Name, "drill.health", r.Health, blockBody(body, "health"))
	}
	return d
}

// health validates a health block; block is its path in the service
// ("health" or "drill.health") for messages.
func (v *agentValidator) health(svc, block string, r *rawHealth, body *hclsyntax.Body) *HealthConfig {
	h := &HealthConfig{HTTP: r.HTTP, TCP: r.TCP, Exec: r.Exec, SQL: r.SQL, Query: r.Query}
	key := "service " + svc + ": " + block + "."
	h.Interval = v.d.parseDuration(attrRange(body, "interval"), key+"interval", r.Interval, time.Second)
	h.Timeout = v.d.parseDuration(attrRange(body, "timeout"), key+"timeout", r.Timeout, time.Second)
	kinds := 0
	for _, set := range []bool{h.HTTP != "", h.TCP != "", len(h.Exec) > 0, h.SQL != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		v.d.at(body.SrcRange, "service %q: %s needs exactly one of http, tcp, exec, sql (found %d)", svc, block, kinds)
	}
	v.programs.command(attrRange(body, "exec"), fmt.Sprintf("service %q %s check", svc, block), h.Exec)
	if h.TCP != "" {
		if msg := addrProblem(fmt.Sprintf("service %q: %s.tcp", svc, block), h.TCP, false, "127.0.0.1:5432"); msg != "" {
			v.d.at(attrRange(body, "tcp"), "%s", msg)
		}
	}
	if h.Timeout > h.Interval {
		v.d.at(attrRange(body, "timeout"), "service %q: %s timeout %s is longer than its interval %s", svc, block, h.Timeout, h.Interval)
	}
	return h
}

func (v *agentValidator) syncs(raw []rawSync, cfg *AgentConfig) {
	blks := blocks(v.body, "sync")
	seen := map[string]bool{}
	for i, r := range raw {
		body := blks[i].Body
		v.uniqueName(seen, blks[i], "sync", r.Name)
		s := SyncConfig{Name: r.Name, Paths: v.absPaths("sync "+r.Name, r.Paths, body), Source: r.Source, ExcludeFromRPO: r.ExcludeFromRPO}
		s.Interval = v.d.parseDuration(attrRange(body, "interval"), "sync "+r.Name+": interval", r.Interval, 10*time.Second)
		if s.Source != "" {
			if msg := addrProblem(fmt.Sprintf("sync %q: source", r.Name), s.Source, false, "10.0.1.11:7500"); msg != "" {
				v.d.at(attrRange(body, "source"), "%s", msg)
			}
		}
		v.programs.program(blks[i].DefRange(), fmt.Sprintf("sync %q", r.Name), "rsync", "apt-get install rsync")
		cfg.Syncs = append(cfg.Syncs, s)
	}
}

func (v *agentValidator) snapshots(raw []rawSnapshot, cfg *AgentConfig) {
	blks := blocks(v.body, "snapshot")
	seen := map[string]bool{}
	for i, r := range raw {
		body := blks[i].Body
		v.uniqueName(seen, blks[i], "snapshot", r.Name)
		key := "snapshot " + r.Name + ": "
		s := SnapshotConfig{Name: r.Name, Paths: v.absPaths("snapshot "+r.Name, r.Paths, body), KeepLast: r.KeepLast,
			Engine: orDefault(r.Engine, "builtin"), Repository: r.Repository, PasswordFile: resolvePath(v.file, r.PasswordFile), Service: r.Service}
		s.Every = v.d.parseDuration(attrRange(body, "every"), key+"every", r.Every, 0)
		s.KeepWithin = v.d.parseDuration(attrRange(body, "keep_within"), key+"keep_within", r.KeepWithin, 0)
		if s.KeepLast < 0 {
			v.d.at(attrRange(body, "keep_last"), "%skeep_last %d is negative", key, s.KeepLast)
		}
		if _, ok := cfg.Service(s.Service); s.Service != "" && !ok {
			v.d.at(attrRange(body, "service"), "%sservice %q is not declared in this file; expected the service whose state the paths hold (%s)",
				key, s.Service, strings.Join(cfg.serviceNames(), ", "))
		}
		switch s.Engine {
		case "builtin":
		case "restic":
			if s.Repository == "" || s.PasswordFile == "" {
				v.d.at(attrRange(body, "engine"), "%sthe restic engine needs repository and password_file", key)
			}
			v.programs.program(attrRange(body, "engine"), fmt.Sprintf("snapshot %q (engine restic)", r.Name), "restic", "apt-get install restic")
		default:
			v.d.at(attrRange(body, "engine"), "%sengine %q is not builtin or restic", key, s.Engine)
		}
		cfg.Snapshots = append(cfg.Snapshots, s)
	}
}

func (v *agentValidator) backups(raw []rawBackup, cfg *AgentConfig) {
	blks := blocks(v.body, "backup")
	seen := map[string]bool{}
	services := map[string]string{}
	for i, r := range raw {
		body := blks[i].Body
		v.uniqueName(seen, blks[i], "backup", r.Name)
		key := fmt.Sprintf("backup %q: ", r.Name)
		if !backuprules.StanzaRE.MatchString(r.Name) {
			v.d.at(blks[i].LabelRanges[0], "%sthe name is pgBackRest's stanza: 1 to 64 letters, digits, _ and -", key)
		}
		b := BackupConfig{Name: r.Name, Engine: r.Engine, Service: r.Service, Repository: resolvePath(v.file, r.Repository),
			KeepFull: r.KeepFull, VerifyPort: r.VerifyPort, ProcessMax: r.ProcessMax, ConfigDir: resolvePath(v.file, r.ConfigDir)}
		if b.Engine != "pgbackrest" {
			v.d.at(attrRange(body, "engine"), "%sengine %q is not supported; expected \"pgbackrest\"", key, b.Engine)
		}
		svc, ok := cfg.Service(b.Service)
		switch {
		case !ok:
			v.d.at(attrRange(body, "service"), "%sservice %q is not declared in this file; expected the postgres service it backs up", key, b.Service)
		case svc.Driver != DriverPostgres:
			v.d.at(attrRange(body, "service"), "%sservice %q has driver %q; only a postgres service is backed up with pgbackrest", key, b.Service, svc.Driver)
		case services[b.Service] != "":
			v.d.at(attrRange(body, "service"), "%sservice %q is backed up by backup %q already; one stanza per cluster", key, b.Service, services[b.Service])
		default:
			services[b.Service] = b.Name
			if b.VerifyPort != 0 && b.VerifyPort == svc.Port {
				v.d.at(attrRange(body, "verify_port"), "%sverify_port %d is the service's own port; the verification copy needs another", key, b.VerifyPort)
			}
		}
		if !filepath.IsAbs(b.Repository) || !backuprules.PathRE.MatchString(filepath.Clean(b.Repository)) {
			v.d.at(attrRange(body, "repository"), "%srepository %q must be an absolute path of letters, digits and ._/+@,=- (the same shared directory on every host of the service)", key, r.Repository)
		}
		b.Repository = filepath.Clean(b.Repository)
		if b.ConfigDir == "" && cfg.DataDir != "" {
			b.ConfigDir = filepath.Join(cfg.DataDir, "backup", r.Name)
		}
		if !filepath.IsAbs(b.ConfigDir) || !backuprules.PathRE.MatchString(filepath.Clean(b.ConfigDir)) {
			v.d.at(attrRange(body, "config_dir"), "%sconfig_dir %q must be an absolute path of letters, digits and ._/+@,=- (set config_dir when data_dir holds other characters)", key, b.ConfigDir)
		}
		b.ConfigDir = filepath.Clean(b.ConfigDir)
		b.FullEvery = v.d.parseDuration(attrRange(body, "full_every"), key+"full_every", r.FullEvery, 0)
		b.IncrEvery = v.d.parseDuration(attrRange(body, "incr_every"), key+"incr_every", r.IncrEvery, 0)
		b.VerifyEvery = v.d.parseDuration(attrRange(body, "verify_every"), key+"verify_every", r.VerifyEvery, 0)
		if b.IncrEvery > 0 && b.FullEvery > 0 && b.IncrEvery >= b.FullEvery {
			v.d.at(attrRange(body, "incr_every"), "%sincr_every %s is not shorter than full_every %s; every backup would be full", key, b.IncrEvery, b.FullEvery)
		}
		if b.KeepFull == 0 {
			b.KeepFull = backuprules.DefaultKeepFull
		}
		if b.KeepFull < 1 {
			v.d.at(attrRange(body, "keep_full"), "%skeep_full %d must be at least 1", key, r.KeepFull)
		}
		if b.ProcessMax == 0 {
			b.ProcessMax = backuprules.DefaultProcessMax
		}
		if b.ProcessMax < 1 {
			v.d.at(attrRange(body, "process_max"), "%sprocess_max %d must be at least 1", key, r.ProcessMax)
		}
		if b.VerifyPort < 0 || b.VerifyPort > 65535 {
			v.d.at(attrRange(body, "verify_port"), "%sverify_port %d is not between 1 and 65535", key, b.VerifyPort)
		}
		v.programs.program(attrRange(body, "engine"), fmt.Sprintf("backup %q (engine pgbackrest)", r.Name), "pgbackrest", "apt-get install pgbackrest")
		cfg.Backups = append(cfg.Backups, b)
	}
}

func (v *agentValidator) hooks(raw []rawHook, cfg *AgentConfig) {
	blks := blocks(v.body, "hook")
	seen := map[string]bool{}
	for i, r := range raw {
		body := blks[i].Body
		v.uniqueName(seen, blks[i], "hook", r.Name)
		if len(r.Command) == 0 {
			v.d.at(attrRange(body, "command"), "hook %q: command is empty; expected the program (an absolute path) and its arguments", r.Name)
		}
		v.absoluteCommand(attrRange(body, "command"), fmt.Sprintf("hook %q: command", r.Name), r.Command)
		v.programs.command(attrRange(body, "command"), fmt.Sprintf("hook %q", r.Name), r.Command)
		h := HookConfig{Name: r.Name, Command: r.Command}
		h.Timeout = v.d.parseDuration(attrRange(body, "timeout"), "hook "+r.Name+": timeout", r.Timeout, 30*time.Second)
		cfg.Hooks = append(cfg.Hooks, h)
	}
}

// absoluteCommand requires a command line whose program is an absolute
// path, as a hook's is: a bare name would be looked up in the agent's
// PATH and a relative path in its working directory, both of which differ
// between the shell an operator tries a command in and the agent's
// service unit. what names the key, e.g. `service "engine": command`.
func (v *agentValidator) absoluteCommand(rng hcl.Range, what string, argv []string) {
	if len(argv) == 0 || filepath.IsAbs(argv[0]) {
		return
	}
	where := "the agent's PATH"
	if strings.Contains(argv[0], "/") {
		where = "the agent's working directory"
	}
	v.d.at(rng, "%s must start with an absolute path to the program, e.g. [\"/usr/local/bin/%s\", ...]; %q would be looked up in %s", what, filepath.Base(argv[0]), argv[0], where)
}

// envNameRe is what the name of an environment variable may be (POSIX's
// portable names): "A=B" would set another variable than it says, and an
// empty name none.
var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envNames checks the keys of the env map in body, each at its position;
// what names the key, e.g. `service "engine": env`.
func (v *agentValidator) envNames(body *hclsyntax.Body, what string, env map[string]string) {
	for name := range env {
		if !envNameRe.MatchString(name) {
			v.d.at(mapKeyRange(body, "env", name), "%s: %q is not an environment variable name; expected letters, digits and \"_\", not starting with a digit, e.g. MODE", what, name)
		}
	}
}

// absPaths requires absolute, clean paths: a sync or snapshot of a
// relative path would depend on the agent's working directory.
func (v *agentValidator) absPaths(what string, paths []string, body *hclsyntax.Body) []string {
	if len(paths) == 0 {
		v.d.at(attrRange(body, "paths"), "%s: paths is empty", what)
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) == "/" {
			v.d.at(attrRange(body, "paths"), "%s: path %q must be an absolute path below /", what, p)
		}
		out[i] = filepath.Clean(p)
	}
	return out
}

// dependencyCycle returns "a -> b -> a" when depends_on has a cycle.
func dependencyCycle(services []ServiceConfig) string {
	deps := map[string][]string{}
	for _, s := range services {
		deps[s.Name] = s.DependsOn
	}
	state := map[string]int{} // 0 new, 1 on stack, 2 done
	var path []string
	var visit func(n string) string
	visit = func(n string) string {
		switch state[n] {
		case 1:
			i := slices.Index(path, n)
			return strings.Join(append(slices.Clone(path[i:]), n), " -> ")
		case 2:
			return ""
		}
		state[n] = 1
		path = append(path, n)
		for _, d := range deps[n] {
			if c := visit(d); c != "" {
				return c
			}
		}
		path = path[:len(path)-1]
		state[n] = 2
		return ""
	}
	for _, s := range services {
		if c := visit(s.Name); c != "" {
			return c
		}
	}
	return ""
}
