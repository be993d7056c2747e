package config

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/drplane/drplane/internal/names"
	"github.com/drplane/drplane/internal/notify"
	"github.com/drplane/drplane/internal/plan"
)

// rawServer is the server file's shape as gohcl decodes it. Durations stay
// strings until parseDuration reads them with their positions; pointers
// tell an absent key from a zero one.
type rawServer struct {
	NodeID          string          `hcl:"node_id"`
	Site            string          `hcl:"site"`
	DataDir         string          `hcl:"data_dir"`
	BindAddr        string          `hcl:"bind_addr,optional"`
	AdvertiseAddr   string          `hcl:"advertise_addr,optional"`
	Ports           *rawPorts       `hcl:"ports,block"`
	BootstrapExpect int             `hcl:"bootstrap_expect,optional"`
	RetryJoin       []string        `hcl:"retry_join,optional"`
	RetryInterval   string          `hcl:"retry_interval,optional"`
	RaftMultiplier  *int            `hcl:"raft_multiplier,optional"`
	LogLevel        string          `hcl:"log_level,optional"`
	TLS             *rawTLS         `hcl:"tls,block"`
	Sites           []rawSite       `hcl:"site,block"`
	Failover        *rawFailover    `hcl:"failover,block"`
	Replication     *rawReplication `hcl:"replication,block"`
	// The objectives and plan blocks are read by plan.Parse; gohcl only
	// lets them through.
	Objectives *rawPassed   `hcl:"objectives,block"`
	Plans      []rawPlanRef `hcl:"plan,block"`
	Notify     []rawNotify  `hcl:"notify,block"`
	// The DR programme: trading hours and scheduled drills.
	TradingHours []rawTradingHours `hcl:"trading_hours,block"`
	Schedules    []rawSchedule     `hcl:"schedule,block"`
}

type rawNotify struct {
	Name       string   `hcl:"name,label"`
	Webhook    string   `hcl:"webhook"`
	Events     []string `hcl:"events"`
	After      string   `hcl:"after,optional"`
	Format     string   `hcl:"format,optional"`
	Secret     string   `hcl:"secret,optional"`
	SecretFile string   `hcl:"secret_file,optional"`
	RoutingKey string   `hcl:"routing_key,optional"`
}

// rawPassed is a block whose contents another parser reads.
type rawPassed struct {
	Body hcl.Body `hcl:",remain"`
}

// rawPlanRef is a plan block, read by plan.Parse.
type rawPlanRef struct {
	Name string   `hcl:"name,label"`
	Body hcl.Body `hcl:",remain"`
}

type rawPorts struct {
	GRPC *int `hcl:"grpc,optional"`
	Raft *int `hcl:"raft,optional"`
	HTTP *int `hcl:"http,optional"`
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
	MaxDataLoss     string `hcl:"max_data_loss,optional"`
	Cooldown        string `hcl:"cooldown,optional"`
	// PrimaryStartTimeout bounds a restart in place of a primary that
	// went down under an answering agent.
	PrimaryStartTimeout string `hcl:"primary_start_timeout,optional"`
	// QuorumLossTimeout and Stonith govern failover without a witness.
	QuorumLossTimeout string       `hcl:"quorum_loss_timeout,optional"`
	Stonith           []rawStonith `hcl:"stonith,block"`
}

type rawReplication struct {
	Mode         string `hcl:"mode,optional"`
	Strict       bool   `hcl:"strict,optional"`
	DegradeAfter string `hcl:"degrade_after,optional"`
}

type rawStonith struct {
	Site    string   `hcl:"site,label"`
	Command []string `hcl:"command"`
	Timeout string   `hcl:"timeout,optional"`
}

// LoadServerConfig reads and validates a server configuration file. It
// returns either a complete, valid config or an error; a file's problems
// come as one *Error.
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
	var raw rawServer
	body, d := decodeFile(src, filename, &raw)
	if err := d.err(); err != nil {
		return nil, err
	}
	v := &serverValidator{d: d, body: body, file: filename, programs: programCollector{d: d}}
	cfg := v.build(&raw)
	cfg.Programs = v.programs.list
	cfg.nodeIDAt = d.position(attrRange(body, "node_id"))
	v.plans(src, cfg)
	if err := d.err(); err != nil {
		return nil, err
	}
	cfg.AdvertiseAddr = cfg.advertiseAddr()
	return cfg, nil
}

// serverValidator turns a decoded file into a ServerConfig, recording
// every problem at its position.
type serverValidator struct {
	d    *diagnostics
	body *hclsyntax.Body
	file string
	// programs collects the STONITH hooks' programs.
	programs programCollector
}

// build fills the defaults with the file's values and validates the result.
func (v *serverValidator) build(raw *rawServer) *ServerConfig {
	cfg := DefaultServerConfig()
	v.scalars(raw, cfg)
	v.ports(raw.Ports, &cfg.Ports)
	v.tls(raw.TLS, &cfg.TLS)
	for _, s := range raw.Sites {
		cfg.Sites = append(cfg.Sites, SiteConfig(s))
	}
	v.failover(raw.Failover, &cfg.Failover)
	v.replication(raw.Replication, &cfg.Replication)
	v.notify(raw.Notify, cfg)
	v.tradingHours(raw.TradingHours, cfg)
	v.schedules(raw.Schedules, cfg)
	var p problems
	cfg.validate(&p)
	v.d.place(v.body, p)
	return cfg
}

// scalars copies the top-level keys, keeping defaults for absent ones.
func (v *serverValidator) scalars(raw *rawServer, cfg *ServerConfig) {
	cfg.NodeID, cfg.Site = raw.NodeID, raw.Site
	cfg.DataDir = resolvePath(v.file, raw.DataDir)
	if raw.BindAddr != "" {
		cfg.BindAddr = raw.BindAddr
	}
	cfg.AdvertiseAddr = raw.AdvertiseAddr
	cfg.BootstrapExpect, cfg.RetryJoin = raw.BootstrapExpect, raw.RetryJoin
	cfg.RetryInterval = v.d.parseDuration(attrRange(v.body, "retry_interval"), "retry_interval", raw.RetryInterval, cfg.RetryInterval)
	if raw.RaftMultiplier != nil {
		cfg.RaftMultiplier = *raw.RaftMultiplier
	}
	if raw.LogLevel != "" {
		cfg.LogLevel = raw.LogLevel
	}
}

// ports copies the ports that the file sets.
func (v *serverValidator) ports(raw *rawPorts, p *PortsConfig) {
	if raw == nil {
		return
	}
	for _, f := range []struct {
		dst *int
		val *int
	}{{&p.GRPC, raw.GRPC}, {&p.Raft, raw.Raft}, {&p.HTTP, raw.HTTP}} {
		if f.val != nil {
			*f.dst = *f.val
		}
	}
}

// failover copies the failover block, parsing its durations.
func (v *serverValidator) failover(raw *rawFailover, f *FailoverConfig) {
	if raw == nil {
		return
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
	f.MaxDataLoss = dur("max_data_loss", raw.MaxDataLoss, f.MaxDataLoss)
	f.Cooldown = dur("cooldown", raw.Cooldown, f.Cooldown)
	f.QuorumLossTimeout = dur("quorum_loss_timeout", raw.QuorumLossTimeout, f.QuorumLossTimeout)
	f.PrimaryStartTimeout = dur("primary_start_timeout", raw.PrimaryStartTimeout, f.PrimaryStartTimeout)
	stonith := blocks(body, "stonith")
	for i, r := range raw.Stonith {
		sb := stonith[i].Body
		if err := names.Check(r.Site); err != nil {
			v.d.at(stonith[i].LabelRanges[0], "stonith %q: %v; a stonith block is labelled with the site it fences", r.Site, err)
		}
		sc := StonithConfig{Site: r.Site, Command: r.Command,
			Timeout: v.d.parseDuration(attrRange(sb, "timeout"), "failover.stonith."+r.Site+".timeout", r.Timeout, 30*time.Second)}
		switch {
		case len(sc.Command) == 0 || sc.Command[0] == "":
			v.d.at(attrRange(sb, "command"), "stonith %q: command is empty; expected the program (and its arguments) that powers off or isolates site %s and exits 0 once it is fenced", r.Site, r.Site)
		case !filepath.IsAbs(sc.Command[0]):
			// As an agent's hooks: PATH and the working directory
			// differ between an operator's shell and the server's unit.
			v.d.at(attrRange(sb, "command"), "stonith %q: command must start with an absolute path to the program, e.g. [\"/usr/local/bin/%s\", ...]; %q would depend on the server's PATH or working directory", r.Site, filepath.Base(sc.Command[0]), sc.Command[0])
		}
		v.programs.command(attrRange(sb, "command"), fmt.Sprintf("stonith %q", r.Site), sc.Command)
		f.Stonith = append(f.Stonith, sc)
	}
}

// notify checks the notify blocks: the escalation hierarchy.
func (v *serverValidator) notify(raw []rawNotify, cfg *ServerConfig) {
	nb := blocks(v.body, "notify")
	seen := map[string]bool{}
	for i, r := range raw {
		body := nb[i].Body
		what := fmt.Sprintf("notify %q", r.Name)
		if err := names.Check(r.Name); err != nil {
			v.d.at(nb[i].LabelRanges[0], "%s: %v", what, err)
		} else if seen[r.Name] {
			v.d.at(nb[i].LabelRanges[0], "%s is declared twice", what)
		}
		seen[r.Name] = true
		n := NotifyConfig{Name: r.Name, Webhook: r.Webhook, Events: r.Events, Format: cmp.Or(r.Format, notify.FormatJSON),
			Secret: r.Secret, RoutingKey: r.RoutingKey,
			After: v.d.parseDuration(attrRange(body, "after"), "notify."+r.Name+".after", r.After, 0)}
		if err := notify.ValidWebhook(r.Webhook); err != nil {
			// The URL itself is not repeated: it may hold a token.
			v.d.at(attrRange(body, "webhook"), "%s: webhook is not a URL to post to (%v); expected https://host/path", what, err)
		}
		if len(r.Events) == 0 {
			v.d.at(attrRange(body, "events"), "%s: events is empty; expected some of %s", what, strings.Join(notify.Events, ", "))
		}
		for _, e := range r.Events {
			if !slices.Contains(notify.Events, e) {
				v.d.at(attrRange(body, "events"), "%s: event %q is not one of %s", what, e, strings.Join(notify.Events, ", "))
			}
		}
		if !slices.Contains(notify.Formats, n.Format) {
			v.d.at(attrRange(body, "format"), "%s: format %q is not one of %s", what, n.Format, strings.Join(notify.Formats, ", "))
		}
		if n.Format == notify.FormatPagerDuty && n.RoutingKey == "" {
			v.d.at(nb[i].DefRange(), "%s: format pagerduty needs routing_key, the integration key of the PagerDuty service", what)
		}
		switch {
		case r.Secret != "" && r.SecretFile != "":
			v.d.at(attrRange(body, "secret_file"), "%s: give secret or secret_file, not both", what)
		case r.SecretFile != "":
			path := resolvePath(v.file, r.SecretFile)
			b, err := os.ReadFile(path)
			if err != nil {
				v.d.at(attrRange(body, "secret_file"), "%s: secret_file: %v", what, err)
			}
			n.Secret = strings.TrimSpace(string(b))
		}
		cfg.Notify = append(cfg.Notify, n)
	}
}

// replication copies the replication block.
func (v *serverValidator) replication(raw *rawReplication, r *ReplicationConfig) {
	if raw == nil {
		return
	}
	if raw.Mode != "" {
		r.Mode = raw.Mode
	}
	r.Strict = raw.Strict
	r.DegradeAfter = v.d.parseDuration(attrRange(blockBody(v.body, "replication"), "degrade_after"), "replication.degrade_after", raw.DegradeAfter, r.DegradeAfter)
}

// plans reads the objectives and plan blocks with plan.Parse, which checks
// them and reports each problem at its position in the file.
func (v *serverValidator) plans(src []byte, cfg *ServerConfig) {
	f, err := plan.Parse(src, v.file)
	var perr *plan.Error
	switch {
	case err == nil:
		cfg.Objectives, cfg.Plans, cfg.Programme = f.Objectives, f.Plans, f.Programme
		v.schedulePlans(cfg)
	case errors.As(err, &perr):
		for _, pd := range perr.Diagnostics {
			if pd.File == "" {
				v.d.record(fileStart(v.body), "plan", pd.Message)
				continue
			}
			v.d.diags = append(v.d.diags, Diagnostic{File: pd.File, Line: pd.Line, Column: pd.Column, Key: "plan", Message: pd.Message})
		}
	default:
		v.d.record(fileStart(v.body), "plan", err.Error())
	}
}
