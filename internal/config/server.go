// Package config parses and validates drplane's HCL configuration files.
//
// Every problem is reported with its file, line and column as
// "file:line:col: message", all problems of a file at once in one *Error.
// Problems of structure (syntax, unknown keys, wrong types, missing keys)
// are reported first; the values are checked once the structure is right.
// A config is returned only when it is entirely valid, with defaults
// filled in.
package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/calendar"
	"github.com/drplane/drplane/internal/names"
	"github.com/drplane/drplane/internal/plan"
)

// Site kinds.
const (
	SiteKindData    = "data"
	SiteKindWitness = "witness"
)

// logLevels are the accepted values of log_level.
var logLevels = []string{"trace", "debug", "info", "warn", "error"}

// NotifyConfig is a notify block: a webhook told of events, at once or
// After the event when nobody acknowledged it by then.
type NotifyConfig struct {
	Name    string
	Webhook string
	Events  []string
	After   time.Duration
	Format  string
	// Secret signs each body (HMAC-SHA256); RoutingKey is PagerDuty's.
	// Neither is ever logged.
	Secret, RoutingKey string
}

// ServerConfig is the configuration of one `drplane server`. The file's
// shape, with an hcl tag per key, is rawServer in server_file.go.
type ServerConfig struct {
	// NodeID names this server uniquely in the cluster.
	NodeID string
	// Site is the site this server runs in; one of Sites.
	Site string
	// DataDir holds the Raft log and snapshots; absolute once loaded.
	DataDir string
	// BindAddr is the IP the listeners bind.
	BindAddr string
	// AdvertiseAddr is the IP other servers reach this one at; a loaded
	// config always has it (it defaults to BindAddr).
	AdvertiseAddr string
	Ports         PortsConfig
	// BootstrapExpect is how many servers form a new cluster; 0 joins an
	// existing one through RetryJoin.
	BootstrapExpect int
	// RetryJoin are other servers' gRPC addresses (host:port).
	RetryJoin     []string
	RetryInterval time.Duration
	// RaftMultiplier scales Raft's timeouts, 1 (fastest) to 10.
	RaftMultiplier int
	LogLevel       string
	// TLS is empty in dev mode, which generates its own certificates.
	TLS      TLSConfig
	Sites    []SiteConfig
	Failover FailoverConfig
	// Replication is how the data services' primaries replicate.
	Replication ReplicationConfig
	// Objectives are the top-level objectives block: the RTO and RPO
	// targets of every plan that does not set its own.
	Objectives plan.Objectives
	// Plans are the plan blocks: operator steps and objectives of the
	// default plans, and named plans of a kind. plan.Resolve finds one.
	Plans []*plan.Definition
	// Notify are the notify blocks: who is told of what, and after how
	// long without an acknowledgement (the escalation hierarchy).
	Notify []NotifyConfig
	// Programme are the DR programme's KPI targets, from the top-level
	// objectives block.
	Programme plan.Programme
	// TradingHours are the trading_hours blocks: scheduled drills and
	// other non-emergency automatic actions stay outside them.
	TradingHours calendar.Calendar
	// Schedules are the schedule blocks: drills the leader runs.
	Schedules []ScheduleConfig
	// Programs are the STONITH hooks' programs, with where each is
	// declared; see Programs.Check.
	Programs Programs
	// nodeIDAt is where node_id is written, for CheckCertificateName;
	// zero for a config built in code.
	nodeIDAt Diagnostic
}

// PortsConfig are the server's listening ports; 0 lets the kernel choose.
type PortsConfig struct {
	GRPC int
	Raft int
	HTTP int
}

// SiteConfig declares a failure domain.
type SiteConfig struct {
	Name string
	// Kind is SiteKindData or SiteKindWitness.
	Kind string
	// Active marks the data site that runs the services now.
	Active bool
}

// FailoverConfig tunes failure detection and leases (DESIGN.md section 5).
type FailoverConfig struct {
	Automatic       bool
	ProbeInterval   time.Duration
	ProbeTimeout    time.Duration
	LeaseTTL        time.Duration
	FailoverTimeout time.Duration
	ClockSkewMargin time.Duration
	// MaxDataLoss is the RPO guard's limit (invariant 7): a failover
	// whose target lags more refuses to promote unless data loss is
	// allowed. A plan block's max_data_loss overrides it.
	MaxDataLoss time.Duration
	// Cooldown blocks further automatic failovers after one, until it
	// passes or an operator runs `drplane ack` (anti-flapping).
	Cooldown time.Duration
	// PrimaryStartTimeout is how long a primary data service that went
	// down on an active-site host whose agent still answers has to come
	// back in place (the leader restarts it) before the site fails over:
	// Patroni's primary_start_timeout. Zero fails over as soon as the
	// service is seen down; two restarts in a row that fail (one
	// failover_timeout apart) fail over before it.
	PrimaryStartTimeout time.Duration
	// QuorumLossTimeout is how long the servers of a site must be without
	// a leader, and unable to reach any server of the active site, before
	// they may fail over on quorum loss (two sites, no witness; only with
	// a STONITH hook for the active site).
	QuorumLossTimeout time.Duration
	// Stonith are the fencing hooks per site: a command that powers off
	// or isolates the whole site and exits 0 once it is done.
	Stonith []StonithConfig
}

// Replication modes.
const (
	// ReplicationAsync: a primary acknowledges commits before any standby
	// has them; a failover may lose what was written since the standby's
	// last replayed write.
	ReplicationAsync = "async"
	// ReplicationSync: the leader makes each data service's primary wait
	// for a standby at another data site before acknowledging a commit
	// (Patroni's synchronous_mode), so that a failover to it loses nothing.
	ReplicationSync = "sync"
)

// ReplicationConfig is the replication block (invariant 8).
type ReplicationConfig struct {
	// Mode is ReplicationAsync or ReplicationSync.
	Mode string
	// Strict never lets a primary acknowledge a commit no standby has:
	// while no synchronous standby answers, writes wait.
	Strict bool
	// DegradeAfter is how long a synchronous standby may be missing
	// before the leader records the service degraded and lets its
	// primary write on asynchronously (not in strict mode).
	DegradeAfter time.Duration
}

// Sync reports whether the data services replicate synchronously.
func (r ReplicationConfig) Sync() bool { return r.Mode == ReplicationSync }

// StonithConfig is the hook that fences a whole site ("shoot the other
// node in the head").
type StonithConfig struct {
	Site    string
	Command []string
	Timeout time.Duration
}

// StonithFor returns the STONITH hook of site.
func (f FailoverConfig) StonithFor(site string) (StonithConfig, bool) {
	for _, s := range f.Stonith {
		if s.Site == site {
			return s, true
		}
	}
	return StonithConfig{}, false
}

// DefaultServerConfig returns the values used for every key a file omits.
func DefaultServerConfig() *ServerConfig {
	return &ServerConfig{
		BindAddr:       "127.0.0.1",
		Ports:          PortsConfig{GRPC: 7400, Raft: 7401, HTTP: 7402},
		RetryInterval:  time.Second,
		RaftMultiplier: 1,
		LogLevel:       "info",
		Failover: FailoverConfig{
			ProbeInterval:       500 * time.Millisecond,
			ProbeTimeout:        time.Second,
			LeaseTTL:            3 * time.Second,
			FailoverTimeout:     3500 * time.Millisecond,
			ClockSkewMargin:     500 * time.Millisecond,
			Cooldown:            time.Hour,
			QuorumLossTimeout:   10 * time.Second,
			PrimaryStartTimeout: 30 * time.Second,
			MaxDataLoss:         plan.DefaultMaxDataLoss,
		},
		Replication: ReplicationConfig{Mode: ReplicationAsync, DegradeAfter: 2 * time.Second},
	}
}

// PlanOptions are the defaults a plan is derived with: the objectives and
// the RPO guard's limit. The caller adds the sites (and a drill's id).
func (c *ServerConfig) PlanOptions() plan.DeriveOptions {
	return plan.DeriveOptions{Objectives: c.Objectives, MaxDataLoss: c.Failover.MaxDataLoss}
}

// DevServerConfig is a single-node server on loopback with kernel-chosen
// ports, as `drplane dev` runs it. TLS is left empty: dev mode generates
// its own certificates and passes them to the server directly. DataDir is
// left for the caller to set.
func DevServerConfig() *ServerConfig {
	c := DefaultServerConfig()
	c.NodeID, c.Site = "dev", "primary"
	c.AdvertiseAddr = c.BindAddr
	c.Ports = PortsConfig{}
	c.BootstrapExpect = 1
	c.Sites = []SiteConfig{
		{Name: "primary", Kind: SiteKindData, Active: true},
		{Name: "dr", Kind: SiteKindData},
		{Name: "witness", Kind: SiteKindWitness},
	}
	return c
}

// GRPCAddr is the address the gRPC listener binds.
func (c *ServerConfig) GRPCAddr() string { return hostPort(c.BindAddr, c.Ports.GRPC) }

// RaftAddr is the address the Raft listener binds.
func (c *ServerConfig) RaftAddr() string { return hostPort(c.BindAddr, c.Ports.Raft) }

// HTTPAddr is the address the HTTP listener binds.
func (c *ServerConfig) HTTPAddr() string { return hostPort(c.BindAddr, c.Ports.HTTP) }

// AdvertiseGRPCAddr is the gRPC address other servers and clients use.
func (c *ServerConfig) AdvertiseGRPCAddr() string { return hostPort(c.advertiseAddr(), c.Ports.GRPC) }

// AdvertiseRaftAddr is the Raft address other servers use.
func (c *ServerConfig) AdvertiseRaftAddr() string { return hostPort(c.advertiseAddr(), c.Ports.Raft) }

// advertiseAddr is AdvertiseAddr, or BindAddr when it is unset.
func (c *ServerConfig) advertiseAddr() string {
	if c.AdvertiseAddr == "" {
		return c.BindAddr
	}
	return c.AdvertiseAddr
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// Validate reports every problem in c as an *Error whose diagnostics carry
// the key each concerns. It checks everything but the TLS files: those are
// checked by TLSConfig.Validate where they are loaded, and dev mode has
// none.
func (c *ServerConfig) Validate() error {
	var p problems
	c.validate(&p)
	return p.err()
}

func (c *ServerConfig) validate(p *problems) {
	c.validateIdentity(p)
	c.validateAddrs(p)
	c.Ports.validate(p)
	c.validateJoin(p)
	c.validateSites(p)
	c.Failover.validate(p)
	c.Replication.validate(p, c.Failover)
	c.validateStonith(p)
	c.validateLeaseCoversElection(p)
	c.validateAutomatic(p)
	if c.Objectives.RTO < 0 {
		p.add("objectives.rto", "objectives.rto %s is negative", c.Objectives.RTO)
	}
	if c.Objectives.RPO < 0 {
		p.add("objectives.rpo", "objectives.rpo %s is negative", c.Objectives.RPO)
	}
}

func (c *ServerConfig) validateIdentity(p *problems) {
	switch {
	case c.NodeID == "":
		p.add("node_id", "node_id is empty; expected a unique name such as \"s1\"")
	case !names.Valid(c.NodeID):
		p.add("node_id", "node_id %q: %v", c.NodeID, names.Check(c.NodeID))
	}
	if c.DataDir == "" {
		p.add("data_dir", "data_dir is empty; expected a directory for the Raft log and snapshots")
	} else if err := checkDir(c.DataDir); err != nil {
		p.add("data_dir", "data_dir %v; set data_dir to a directory for the Raft log and snapshots", err)
	}
	if !slices.Contains(logLevels, strings.ToLower(c.LogLevel)) {
		p.add("log_level", "log_level %q is not one of %s", c.LogLevel, strings.Join(logLevels, ", "))
	}
	if c.RaftMultiplier < 1 || c.RaftMultiplier > 10 {
		p.add("raft_multiplier", "raft_multiplier %d is out of range; expected 1 to 10", c.RaftMultiplier)
	}
	if c.RetryInterval <= 0 {
		p.add("retry_interval", "retry_interval %s must be positive", c.RetryInterval)
	}
}

func (c *ServerConfig) validateAddrs(p *problems) {
	if net.ParseIP(c.BindAddr) == nil {
		p.add("bind_addr", "bind_addr %q is not an IP address", c.BindAddr)
		return
	}
	key := "advertise_addr"
	if c.AdvertiseAddr == "" {
		key = "bind_addr"
	}
	switch ip := net.ParseIP(c.advertiseAddr()); {
	case ip == nil:
		p.add(key, "%s %q is not an IP address", key, c.advertiseAddr())
	case ip.IsUnspecified():
		p.add(key, "%s %q cannot be advertised to other servers; set advertise_addr to this host's IP address", key, c.advertiseAddr())
	}
}

func (c *ServerConfig) validateJoin(p *problems) {
	for i, addr := range c.RetryJoin {
		if msg := addrProblem("retry_join entry", addr, false, "10.0.1.11:7400"); msg != "" {
			p.add(fmt.Sprintf("retry_join[%d]", i), "%s (another server's grpc address)", msg)
		}
	}
	switch {
	case c.BootstrapExpect < 0:
		p.add("bootstrap_expect", "bootstrap_expect %d is negative; expected the number of servers that form a new cluster, or 0 to join one", c.BootstrapExpect)
	case c.BootstrapExpect == 0 && len(c.RetryJoin) == 0:
		p.add("bootstrap_expect", "nothing to bootstrap or join: set bootstrap_expect (servers that form a new cluster) or retry_join (servers of an existing one)")
	case c.BootstrapExpect > 1 && len(c.RetryJoin) == 0:
		p.add("bootstrap_expect", "bootstrap_expect = %d needs retry_join with the other servers' grpc addresses", c.BootstrapExpect)
	}
}

func (c *ServerConfig) validateSites(p *problems) {
	if len(c.Sites) == 0 {
		p.add("site[0]", "no site blocks; expected at least site \"primary\" { kind = \"data\"  active = true }")
		return
	}
	declared := map[string]bool{}
	active, anyActive := "", false
	for i, s := range c.Sites {
		key := fmt.Sprintf("site[%d]", i)
		s.validate(p, key)
		if declared[s.Name] {
			p.add(key, "site %q is declared twice", s.Name)
		}
		declared[s.Name] = true
		anyActive = anyActive || s.Active
		if !s.Active || s.Kind == SiteKindWitness {
			continue
		}
		if active != "" {
			p.add(key+".active", "site %q is active, but site %q is active already; exactly one site may be active", s.Name, active)
		} else {
			active = s.Name
		}
	}
	if !anyActive {
		p.add("site[0]", "no active site; set active = true on the data site that is primary now")
	}
	c.validateNodeSite(p, declared)
}

// validateNodeSite checks that this node's site is one of the declared.
func (c *ServerConfig) validateNodeSite(p *problems, declared map[string]bool) {
	if declared[c.Site] {
		return
	}
	declaredNames := make([]string, len(c.Sites))
	for i, s := range c.Sites {
		declaredNames[i] = s.Name
	}
	if c.Site == "" {
		p.add("site", "site is empty; expected this node's site, one of: %s", strings.Join(declaredNames, ", "))
		return
	}
	if err := names.Check(c.Site); err != nil {
		p.add("site", "site %q: %v; set it to this node's site, one of: %s", c.Site, err, strings.Join(declaredNames, ", "))
		return
	}
	p.add("site", "site %q of this node is not declared (declared: %s)", c.Site, strings.Join(declaredNames, ", "))
}

// Validate reports the problems of one port setting.
func (pc PortsConfig) Validate() error {
	var p problems
	pc.validate(&p)
	return p.err()
}

func (pc PortsConfig) validate(p *problems) {
	ports := []struct {
		name string
		num  int
	}{{"grpc", pc.GRPC}, {"raft", pc.Raft}, {"http", pc.HTTP}}
	seen := map[int]string{}
	for _, port := range ports {
		key := "ports." + port.name
		other, dup := seen[port.num]
		switch {
		case port.num < 0 || port.num > 65535:
			p.add(key, "%s %d is out of range; expected 0 (the kernel chooses) to 65535", key, port.num)
		case dup && port.num != 0:
			p.add(key, "%s %d is also ports.%s; grpc, raft and http must differ", key, port.num, other)
		case !dup:
			seen[port.num] = port.name
		}
	}
}

// Validate reports the problems of one site on its own; duplicate names
// and the one active site are checked by ServerConfig.Validate.
func (s SiteConfig) Validate() error {
	var p problems
	s.validate(&p, "site")
	return p.err()
}

// validate checks s, the site block that key names.
func (s SiteConfig) validate(p *problems, key string) {
	switch {
	case s.Name == "":
		p.add(key+"."+labelKey, "site name is empty; expected e.g. site \"primary\" { kind = \"data\" }")
	case !names.Valid(s.Name):
		p.add(key+"."+labelKey, "site %q: %v", s.Name, names.Check(s.Name))
	}
	if s.Kind != SiteKindData && s.Kind != SiteKindWitness {
		p.add(key+".kind", "site %q: kind %q is not %q or %q", s.Name, s.Kind, SiteKindData, SiteKindWitness)
		return
	}
	if s.Active && s.Kind == SiteKindWitness {
		p.add(key+".active", "site %q is a witness site and cannot be active; only data sites run services", s.Name)
	}
}

// Validate reports the problems of the failover timings.
func (f FailoverConfig) Validate() error {
	var p problems
	f.validate(&p)
	return p.err()
}

// leaseFitsProbes is the timing rule of invariant 4 (DESIGN.md section 4):
// 3 x probe_interval <= lease_ttl < failover_timeout, so at least three
// renewals fit in a lease, and a lease always lapses before the DR site
// may be promoted. The leader counts the leases themselves in
// controlplane's leaseTable.
func (f FailoverConfig) leaseFitsProbes() bool {
	return 3*f.ProbeInterval <= f.LeaseTTL && f.LeaseTTL < f.FailoverTimeout
}

// probeFitsLease is whether a renewal's RPC deadline (probe_timeout) is
// shorter than the lease it grants: the leader counts an unanswered
// renewal as arriving as late as that deadline.
func (f FailoverConfig) probeFitsLease() bool { return f.ProbeTimeout < f.LeaseTTL }

// validateLeaseCoversElection refuses timings where the active site's
// leases lapse while the servers elect a new leader after the leader dies:
// the last renewal of the dead leader may have arrived one probe_interval
// before its death, and the new leader's first renewal, sent as soon as it
// leads, takes up to probe_timeout to arrive. Production would be fenced
// although nothing failed over. It is checked only when the lease rule of
// FailoverConfig.validate holds, so a key gets one problem at a time.
func (c *ServerConfig) validateLeaseCoversElection(p *problems) {
	f := c.Failover
	if !f.leaseFitsProbes() || !f.probeFitsLease() {
		return
	}
	need := c.ElectionBound() + f.ProbeInterval + f.ProbeTimeout
	if f.LeaseTTL > need {
		return
	}
	p.add("failover.lease_ttl", "failover.lease_ttl %s does not outlast a change of leader: it must exceed the election bound %s (3 x the Raft heartbeat timeout %s x raft_multiplier %d) + probe_interval %s + probe_timeout %s = %s, or the active site fences its services while the servers elect a new leader after the leader dies; raise lease_ttl (and failover_timeout above it) or lower raft_multiplier, probe_interval or probe_timeout",
		f.LeaseTTL, c.ElectionBound(), RaftHeartbeatTimeout, max(c.RaftMultiplier, 1), f.ProbeInterval, f.ProbeTimeout, need)
}

// validateAutomatic refuses automatic failover where it cannot be safe:
// with two data sites and no witness, the side that loses the majority
// cannot tell the other site's death from a partition, so only a STONITH
// hook that confirms the other site is fenced makes acting safe.
func (c *ServerConfig) validateAutomatic(p *problems) {
	if !c.Failover.Automatic {
		return
	}
	var data []string
	witness := false
	for _, s := range c.Sites {
		switch s.Kind {
		case SiteKindWitness:
			witness = true
		case SiteKindData:
			data = append(data, s.Name)
		}
	}
	if witness || len(data) < 2 {
		return
	}
	for _, site := range data {
		if _, ok := c.Failover.StonithFor(site); !ok {
			p.add("failover.automatic", "failover: automatic = true with data sites %s and no witness site needs a stonith hook for every data site (missing: %s): without a witness, the servers that lose the majority cannot tell a dead site from a partition, and only a confirmed fence makes failing over safe; add a site with kind = \"witness\" or a stonith \"%s\" { command = [...] } block",
				strings.Join(data, ", "), site, site)
			return
		}
	}
}

// validateStonith checks that every STONITH hook fences a declared data
// site: a hook for a site that does not exist (a typo of one that does)
// would leave that site without its fence when it is lost.
func (c *ServerConfig) validateStonith(p *problems) {
	var data []string
	for _, s := range c.Sites {
		if s.Kind == SiteKindData {
			data = append(data, s.Name)
		}
	}
	for i, st := range c.Failover.Stonith {
		if !slices.Contains(data, st.Site) && names.Valid(st.Site) {
			p.add(fmt.Sprintf("failover.stonith[%d].%s", i, labelKey), "stonith %q names no declared data site (data sites: %s); label the block with the data site it fences", st.Site, strings.Join(data, ", "))
		}
	}
}

func (r ReplicationConfig) validate(p *problems, f FailoverConfig) {
	switch r.Mode {
	case ReplicationAsync, ReplicationSync:
	default:
		p.add("replication.mode", "replication.mode %q is not a mode; expected \"async\" (the default) or \"sync\"", r.Mode)
	}
	if r.Strict && !r.Sync() {
		p.add("replication.strict", "replication.strict = true needs mode = \"sync\": strict keeps a primary from acknowledging commits no synchronous standby has")
	}
	if r.DegradeAfter < f.ProbeInterval {
		p.add("replication.degrade_after", "replication.degrade_after %s must be at least failover.probe_interval %s: the leader notices a missing synchronous standby from its probes", r.DegradeAfter, f.ProbeInterval)
	}
}

func (f FailoverConfig) validate(p *problems) {
	if f.ProbeInterval <= 0 {
		p.add("failover.probe_interval", "failover.probe_interval %s must be positive", f.ProbeInterval)
	}
	if f.ProbeTimeout <= 0 {
		p.add("failover.probe_timeout", "failover.probe_timeout %s must be positive", f.ProbeTimeout)
	}
	if f.MaxDataLoss < 0 {
		p.add("failover.max_data_loss", "failover.max_data_loss %s is negative; expected zero (no data loss) or more", f.MaxDataLoss)
	}
	if f.ClockSkewMargin < 0 {
		p.add("failover.clock_skew_margin", "failover.clock_skew_margin %s is negative", f.ClockSkewMargin)
	}
	if f.Cooldown < 0 {
		p.add("failover.cooldown", "failover.cooldown %s is negative", f.Cooldown)
	}
	if f.PrimaryStartTimeout < 0 {
		p.add("failover.primary_start_timeout", "failover.primary_start_timeout %s is negative; expected 0 (fail over as soon as a primary is seen down) or more", f.PrimaryStartTimeout)
	}
	if f.QuorumLossTimeout < f.FailoverTimeout {
		p.add("failover.quorum_loss_timeout", "failover.quorum_loss_timeout %s must be at least failover_timeout %s", f.QuorumLossTimeout, f.FailoverTimeout)
	}
	if !f.leaseFitsProbes() {
		p.add("failover.lease_ttl", "failover timings must satisfy 3 x probe_interval <= lease_ttl < failover_timeout; got probe_interval %s, lease_ttl %s, failover_timeout %s",
			f.ProbeInterval, f.LeaseTTL, f.FailoverTimeout)
	}
	if !f.probeFitsLease() {
		p.add("failover.probe_timeout", "failover.probe_timeout %s must be shorter than lease_ttl %s", f.ProbeTimeout, f.LeaseTTL)
	}
}
