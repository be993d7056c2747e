// Package config parses and validates drplane's HCL configuration files.
// Every problem is reported with its file, line and column, and a config
// is returned only when it is entirely valid, with defaults filled in.
package config

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Site kinds.
const (
	SiteKindData    = "data"
	SiteKindWitness = "witness"
)

// ServerConfig is the configuration of one `drplane server`.
type ServerConfig struct {
	NodeID          string
	Site            string
	DataDir         string
	BindAddr        string
	AdvertiseAddr   string
	Ports           PortsConfig
	BootstrapExpect int
	RetryJoin       []string
	RetryInterval   time.Duration
	RaftMultiplier  int
	LogLevel        string
	TLS             TLSConfig
	Sites           []SiteConfig
	Failover        FailoverConfig
}

// PortsConfig are the server's listening ports; 0 lets the kernel choose.
type PortsConfig struct {
	GRPC int
	Raft int
	HTTP int
}

// TLSConfig names the PEM files of the server's certificate material.
type TLSConfig struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// SiteConfig declares a failure domain.
type SiteConfig struct {
	Name   string
	Kind   string
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
			ProbeInterval:   500 * time.Millisecond,
			ProbeTimeout:    time.Second,
			LeaseTTL:        3 * time.Second,
			FailoverTimeout: 5 * time.Second,
			ClockSkewMargin: 500 * time.Millisecond,
		},
	}
}

// DevServerConfig is a single-node server on loopback with kernel-chosen
// ports, as `drplane dev` runs it. TLS is left empty: dev mode makes its
// own certificates.
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
func (c *ServerConfig) AdvertiseGRPCAddr() string { return hostPort(c.AdvertiseAddr, c.Ports.GRPC) }

// AdvertiseRaftAddr is the Raft address other servers use.
func (c *ServerConfig) AdvertiseRaftAddr() string { return hostPort(c.AdvertiseAddr, c.Ports.Raft) }

func hostPort(host string, port int) string { return net.JoinHostPort(host, fmt.Sprint(port)) }

// rawServer is the file's shape as gohcl decodes it; durations stay
// strings until validation parses them with their positions.
type rawServer struct {
	NodeID          string       `hcl:"node_id"`
	Site            string       `hcl:"site"`
	DataDir         string       `hcl:"data_dir"`
	BindAddr        string       `hcl:"bind_addr,optional"`
	AdvertiseAddr   string       `hcl:"advertise_addr,optional"`
	Ports           *rawPorts    `hcl:"ports,block"`
	BootstrapExpect int          `hcl:"bootstrap_expect,optional"`
	RetryJoin       []string     `hcl:"retry_join,optional"`
	RetryInterval   string       `hcl:"retry_interval,optional"`
	RaftMultiplier  *int         `hcl:"raft_multiplier,optional"`
	LogLevel        string       `hcl:"log_level,optional"`
	TLS             *rawTLS      `hcl:"tls,block"`
	Sites           []rawSite    `hcl:"site,block"`
	Failover        *rawFailover `hcl:"failover,block"`
}

type rawPorts struct {
	GRPC *int `hcl:"grpc,optional"`
	Raft *int `hcl:"raft,optional"`
	HTTP *int `hcl:"http,optional"`
}

type rawTLS struct {
	CAFile   string `hcl:"ca_file"`
	CertFile string `hcl:"cert_file"`
	KeyFile  string `hcl:"key_file"`
}

type rawSite struct {
	Name   string `hcl:"name,label"`
	Kind   string `hcl:"kind"`
	Active bool   `hcl:"active,optional"`
}

type rawFailover struct {
	Automatic       bool   `hcl:"automatic,optional"`
	ProbeInterval   string `hcl:"probe_interval,optional"`
	ProbeTimeout    string `hcl:"probe_timeout,optional"`
	LeaseTTL        string `hcl:"lease_ttl,optional"`
	FailoverTimeout string `hcl:"failover_timeout,optional"`
	ClockSkewMargin string `hcl:"clock_skew_margin,optional"`
}

// LoadServerConfig reads and validates a server configuration file.
func LoadServerConfig(path string) (*ServerConfig, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read server config: %w", err)
	}
	return ParseServerConfig(src, path)
}

// ParseServerConfig parses and validates src as the file filename; relative
// paths in it are resolved against filename's directory.
func ParseServerConfig(src []byte, filename string) (*ServerConfig, error) {
	src, lines := expandSingleLineBlocks(src, filename)
	d := &diagnostics{file: filename, lines: lines}
	file, hd := hclparse.NewParser().ParseHCL(src, filename)
	d.addHCL(hd)
	if hd.HasErrors() {
		return nil, d.err()
	}
	var raw rawServer
	d.addHCL(gohcl.DecodeBody(file.Body, nil, &raw))
	if len(d.diags) > 0 {
		return nil, d.err()
	}
	body := file.Body.(*hclsyntax.Body)
	cfg := (&serverValidator{d: d, body: body, file: filename}).build(&raw)
	if err := d.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// serverValidator turns a decoded file into a ServerConfig, recording
// every problem at its position.
type serverValidator struct {
	d    *diagnostics
	body *hclsyntax.Body
	file string
}

func (v *serverValidator) build(raw *rawServer) *ServerConfig {
	cfg := DefaultServerConfig()
	cfg.NodeID, cfg.Site = raw.NodeID, raw.Site
	cfg.DataDir = resolvePath(v.file, raw.DataDir)
	cfg.BootstrapExpect, cfg.RetryJoin = raw.BootstrapExpect, raw.RetryJoin
	if raw.LogLevel != "" {
		cfg.LogLevel = raw.LogLevel
	}
	if raw.RaftMultiplier != nil {
		cfg.RaftMultiplier = *raw.RaftMultiplier
	}
	cfg.RetryInterval = v.d.parseDuration(attrRange(v.body, "retry_interval"), "retry_interval", raw.RetryInterval, cfg.RetryInterval)
	v.identity(raw, cfg)
	v.addresses(raw, cfg)
	v.ports(raw.Ports, &cfg.Ports)
	v.join(cfg)
	v.tls(raw.TLS, &cfg.TLS)
	v.sites(raw.Sites, cfg)
	v.failover(raw.Failover, &cfg.Failover)
	return cfg
}

func (v *serverValidator) identity(raw *rawServer, cfg *ServerConfig) {
	if cfg.NodeID == "" {
		v.d.at(attrRange(v.body, "node_id"), "node_id is empty; expected a unique name such as \"s1\"")
	}
	if cfg.DataDir == "" {
		v.d.at(attrRange(v.body, "data_dir"), "data_dir is empty; expected a directory for the Raft log and snapshots")
	}
	levels := []string{"trace", "debug", "info", "warn", "error"}
	if !slices.Contains(levels, strings.ToLower(cfg.LogLevel)) {
		v.d.at(attrRange(v.body, "log_level"), "log_level %q is not one of %s", cfg.LogLevel, strings.Join(levels, ", "))
	}
	if cfg.RaftMultiplier < 1 || cfg.RaftMultiplier > 10 {
		v.d.at(attrRange(v.body, "raft_multiplier"), "raft_multiplier %d is out of range; expected 1 to 10", cfg.RaftMultiplier)
	}
}

func (v *serverValidator) addresses(raw *rawServer, cfg *ServerConfig) {
	if raw.BindAddr != "" {
		cfg.BindAddr = raw.BindAddr
	}
	if net.ParseIP(cfg.BindAddr) == nil {
		v.d.at(attrRange(v.body, "bind_addr"), "bind_addr %q is not an IP address", cfg.BindAddr)
	}
	cfg.AdvertiseAddr = raw.AdvertiseAddr
	key := "advertise_addr"
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr, key = cfg.BindAddr, "bind_addr"
	}
	ip := net.ParseIP(cfg.AdvertiseAddr)
	switch {
	case ip == nil:
		v.d.at(attrRange(v.body, key), "%s %q is not an IP address", key, cfg.AdvertiseAddr)
	case ip.IsUnspecified():
		v.d.at(attrRange(v.body, key), "%s %q cannot be advertised to other servers; set advertise_addr to this host's address", key, cfg.AdvertiseAddr)
	}
}

func (v *serverValidator) ports(raw *rawPorts, p *PortsConfig) {
	if raw == nil {
		return
	}
	body := blockBody(v.body, "ports")
	set := func(dst *int, val *int, name string) {
		if val == nil {
			return
		}
		*dst = *val
		if *val < 0 || *val > 65535 {
			v.d.at(attrRange(body, name), "ports.%s %d is out of range; expected 0 to 65535", name, *val)
		}
	}
	set(&p.GRPC, raw.GRPC, "grpc")
	set(&p.Raft, raw.Raft, "raft")
	set(&p.HTTP, raw.HTTP, "http")
	seen := map[int]string{}
	for _, kv := range []struct {
		name string
		port int
	}{{"grpc", p.GRPC}, {"raft", p.Raft}, {"http", p.HTTP}} {
		if other, dup := seen[kv.port]; dup && kv.port != 0 {
			v.d.at(attrRange(body, kv.name), "ports.%s %d is also ports.%s; each port must differ", kv.name, kv.port, other)
		}
		seen[kv.port] = kv.name
	}
}

func (v *serverValidator) join(cfg *ServerConfig) {
	rng := attrRange(v.body, "retry_join")
	for _, addr := range cfg.RetryJoin {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			v.d.at(rng, "retry_join entry %q is not host:port (another server's grpc address)", addr)
		}
	}
	switch {
	case cfg.BootstrapExpect < 0:
		v.d.at(attrRange(v.body, "bootstrap_expect"), "bootstrap_expect %d is negative", cfg.BootstrapExpect)
	case cfg.BootstrapExpect == 0 && len(cfg.RetryJoin) == 0:
		v.d.at(attrRange(v.body, "bootstrap_expect"), "nothing to bootstrap or join: set bootstrap_expect (servers that form a new cluster) or retry_join (servers of an existing one)")
	case cfg.BootstrapExpect > 1 && len(cfg.RetryJoin) == 0:
		v.d.at(attrRange(v.body, "bootstrap_expect"), "bootstrap_expect = %d needs retry_join with the other servers' grpc addresses", cfg.BootstrapExpect)
	}
}

func (v *serverValidator) tls(raw *rawTLS, t *TLSConfig) {
	if raw == nil {
		v.d.at(v.body.SrcRange, "missing tls block; expected tls { ca_file = \"ca.pem\"  cert_file = \"server.pem\"  key_file = \"server-key.pem\" } (make them with `drplane tls`)")
		return
	}
	body := blockBody(v.body, "tls")
	t.CAFile = resolvePath(v.file, raw.CAFile)
	t.CertFile = resolvePath(v.file, raw.CertFile)
	t.KeyFile = resolvePath(v.file, raw.KeyFile)
	v.d.requireFile(attrRange(body, "ca_file"), "tls.ca_file", t.CAFile)
	v.d.requireFile(attrRange(body, "cert_file"), "tls.cert_file", t.CertFile)
	v.d.requireFile(attrRange(body, "key_file"), "tls.key_file", t.KeyFile)
}

func (v *serverValidator) sites(raw []rawSite, cfg *ServerConfig) {
	blks := blocks(v.body, "site")
	if len(raw) == 0 {
		v.d.at(v.body.SrcRange, "no site blocks; expected at least site \"primary\" { kind = \"data\"  active = true }")
		return
	}
	names := map[string]bool{}
	active := ""
	for i, s := range raw {
		b := blks[i]
		switch {
		case names[s.Name]:
			v.d.at(b.LabelRanges[0], "site %q is declared twice", s.Name)
		case s.Kind != SiteKindData && s.Kind != SiteKindWitness:
			v.d.at(attrRange(b.Body, "kind"), "site %q: kind %q is not \"data\" or \"witness\"", s.Name, s.Kind)
		case s.Active && s.Kind == SiteKindWitness:
			v.d.at(attrRange(b.Body, "active"), "site %q is a witness site and cannot be active; only data sites run services", s.Name)
		case s.Active && active != "":
			v.d.at(attrRange(b.Body, "active"), "site %q is active, but site %q is active already; exactly one site may be active", s.Name, active)
		}
		if s.Active && active == "" {
			active = s.Name
		}
		names[s.Name] = true
		cfg.Sites = append(cfg.Sites, SiteConfig(s))
	}
	if active == "" {
		v.d.at(blks[0].DefRange(), "no active site; set active = true on the data site that is primary now")
	}
	if !names[cfg.Site] {
		declared := make([]string, len(raw))
		for i, s := range raw {
			declared[i] = s.Name
		}
		v.d.at(attrRange(v.body, "site"), "site %q of this node is not declared (declared: %s)", cfg.Site, strings.Join(declared, ", "))
	}
}

func (v *serverValidator) failover(raw *rawFailover, f *FailoverConfig) {
	if raw == nil {
		raw = &rawFailover{}
	}
	body := blockBody(v.body, "failover")
	dur := func(name, val string, def time.Duration) time.Duration {
		return v.d.parseDuration(attrRange(body, name), "failover."+name, val, def)
	}
	f.Automatic = raw.Automatic
	f.ProbeInterval = dur("probe_interval", raw.ProbeInterval, f.ProbeInterval)
	f.ProbeTimeout = dur("probe_timeout", raw.ProbeTimeout, f.ProbeTimeout)
	f.LeaseTTL = dur("lease_ttl", raw.LeaseTTL, f.LeaseTTL)
	f.FailoverTimeout = dur("failover_timeout", raw.FailoverTimeout, f.FailoverTimeout)
	f.ClockSkewMargin = dur("clock_skew_margin", raw.ClockSkewMargin, f.ClockSkewMargin)
	if f.ProbeInterval <= 0 {
		v.d.at(attrRange(body, "probe_interval"), "failover.probe_interval must be positive")
	}
	// Invariant 4 of DESIGN.md: at least three renewals fit in a lease, and
	// a lease always lapses before the DR site may be promoted.
	if 3*f.ProbeInterval > f.LeaseTTL || f.LeaseTTL >= f.FailoverTimeout {
		v.d.at(attrRange(body, "lease_ttl"), "failover timings must satisfy 3 x probe_interval <= lease_ttl < failover_timeout; got probe_interval %s, lease_ttl %s, failover_timeout %s",
			f.ProbeInterval, f.LeaseTTL, f.FailoverTimeout)
	}
	if f.ProbeTimeout >= f.LeaseTTL {
		v.d.at(attrRange(body, "probe_timeout"), "failover.probe_timeout %s must be shorter than lease_ttl %s", f.ProbeTimeout, f.LeaseTTL)
	}
}
