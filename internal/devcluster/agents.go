package devcluster

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// AgentSpec is what `drplane dev` or a test declares about one agent.
// AddAgent fills in the rest of its config: data_dir, listen and http
// (free loopback ports unless declared), servers (every server of the
// cluster) and tls.
type AgentSpec struct {
	// HostID is the agent's host_id and certificate name; it must not be
	// a server's node id.
	HostID string
	// Site is a data site of the cluster: "primary" or "dr".
	Site string
	// LeaseTTL is lease_ttl, the boot fencing window; the agent's default
	// (3s, as the servers' failover.lease_ttl) when zero.
	LeaseTTL time.Duration
	// LogLevel is log_level; "info" when empty.
	LogLevel string

	// The declared blocks, written as the HCL the operator would write.
	// Zero fields are left out, so the agent's defaults apply.
	Services  []config.ServiceConfig
	Syncs     []config.SyncConfig
	Snapshots []config.SnapshotConfig
	Backups   []config.BackupConfig
	Hooks     []config.HookConfig

	// Mounts run the agent in a private mount namespace (unshare(1), which
	// needs root) with each Source bind-mounted over its Target, so that
	// two agents on one machine see different contents at the same
	// absolute path, as two hosts would. A sync block mirrors a path into
	// the same path on the pulling host; without this both agents would
	// read and write one directory.
	Mounts []Mount

	// Listen and HTTP, when set, are the agent's listen and http
	// addresses; each is a free loopback port when empty.
	Listen, HTTP string
	// Check, when set, is the agent's check_endpoint block; an empty
	// Listen takes a free loopback port.
	Check *config.CheckEndpointConfig
}

// Mount bind-mounts the directory Source over the directory Target.
type Mount struct {
	Source, Target string
}

// Agent is one `drplane agent` process of a Cluster.
type Agent struct {
	HostID, Site string
	// GRPCAddr is the HostAgent address (listen), which the agent
	// registers with the servers; HTTPAddr is the load-balancer endpoint.
	GRPCAddr, HTTPAddr string
	// CheckAddr is the check endpoint's address (no client certificate);
	// "" without one.
	CheckAddr string
	// Dir holds ConfigPath, LogPath and DataDir.
	Dir, ConfigPath, LogPath, DataDir string
	// CertFile and KeyFile are the agent's certificate (agent role,
	// signed by the cluster CA); CAFile is the cluster CA.
	CAFile, CertFile, KeyFile string
	Spec                      AgentSpec

	bin  string
	wrap func(host, name string, args []string) (string, []string)
	proc
}

// AddAgent creates the agent's certificate and writes its config under
// Dir/agents/<host id>. The config is parsed with the agent's own loader
// before AddAgent returns, so a spec the agent would refuse fails here
// with the position of the problem. Nothing is started yet.
func (c *Cluster) AddAgent(spec AgentSpec) (*Agent, error) {
	if spec.HostID == "" || spec.Site == "" {
		return nil, errors.New("add agent: HostID and Site are required")
	}
	if c.Node(spec.HostID) != nil || c.Agent(spec.HostID) != nil {
		return nil, fmt.Errorf("add agent %s: the name is taken", spec.HostID)
	}
	listen, httpAddr, err := agentAddrs(spec)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.Dir, "agents", spec.HostID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("add agent %s: %w", spec.HostID, err)
	}
	certFile, keyFile, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.tlsDir(), Name: spec.HostID, Role: tlsutil.RoleAgent})
	if err != nil {
		return nil, fmt.Errorf("add agent %s: certificate: %w", spec.HostID, err)
	}
	if spec.Check != nil && spec.Check.Listen == "" {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		check := *spec.Check
		check.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		spec.Check = &check
	}
	a := &Agent{
		HostID: spec.HostID, Site: spec.Site,
		GRPCAddr:   listen,
		HTTPAddr:   httpAddr,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "agent.hcl"),
		LogPath:    filepath.Join(dir, "agent.log"),
		DataDir:    filepath.Join(dir, "data"),
		CAFile:     filepath.Join(c.tlsDir(), tlsutil.CACertFile),
		CertFile:   certFile, KeyFile: keyFile,
		Spec: spec, bin: c.Bin, wrap: c.Wrap,
	}
	if spec.Check != nil {
		a.CheckAddr = spec.Check.Listen
	}
	if err := os.WriteFile(a.ConfigPath, a.renderConfig(c.serverAddrs()), 0o600); err != nil {
		return nil, fmt.Errorf("add agent %s: write config: %w", spec.HostID, err)
	}
	if _, err := config.LoadAgentConfig(a.ConfigPath); err != nil {
		return nil, fmt.Errorf("add agent %s: the agent would refuse its config: %w", spec.HostID, err)
	}
	c.Agents = append(c.Agents, a)
	return a, nil
}

// agentAddrs returns the listen and http addresses spec declares, with a
// free loopback port for each it leaves empty. AddAgent's config check
// catches an address the agent would refuse.
func agentAddrs(spec AgentSpec) (listen, httpAddr string, err error) {
	listen, httpAddr = spec.Listen, spec.HTTP
	if listen == "" || httpAddr == "" {
		ports, err := freePorts(2)
		if err != nil {
			return "", "", err
		}
		listen = cmp.Or(listen, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])))
		httpAddr = cmp.Or(httpAddr, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])))
	}
	return listen, httpAddr, nil
}

// Agent returns the agent with the given host id, or nil.
func (c *Cluster) Agent(hostID string) *Agent {
	for _, a := range c.Agents {
		if a.HostID == hostID {
			return a
		}
	}
	return nil
}

func (c *Cluster) tlsDir() string { return filepath.Join(c.Dir, "tls") }

func (c *Cluster) serverAddrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.GRPCAddr
	}
	return addrs
}

// renderConfig writes the agent's HCL with hclwrite, which quotes and
// escapes every value as the parser expects.
func (a *Agent) renderConfig(servers []string) []byte {
	f := hclwrite.NewEmptyFile()
	b := f.Body()
	setString(b, "host_id", a.HostID)
	setString(b, "site", a.Site)
	setString(b, "data_dir", a.DataDir)
	setString(b, "listen", a.GRPCAddr)
	setString(b, "http", a.HTTPAddr)
	setStrings(b, "servers", servers)
	setString(b, "log_level", cmp.Or(a.Spec.LogLevel, "info"))
	setDuration(b, "lease_ttl", a.Spec.LeaseTTL)
	if c := a.Spec.Check; c != nil {
		cb := b.AppendNewBlock("check_endpoint", nil).Body()
		setString(cb, "listen", c.Listen)
		setString(cb, "tls", c.TLS)
	}
	tls := b.AppendNewBlock("tls", nil).Body()
	setString(tls, "ca_file", a.CAFile)
	setString(tls, "cert_file", a.CertFile)
	setString(tls, "key_file", a.KeyFile)
	for _, s := range a.Spec.Services {
		writeService(b.AppendNewBlock("service", []string{s.Name}).Body(), s)
	}
	for _, s := range a.Spec.Syncs {
		sb := b.AppendNewBlock("sync", []string{s.Name}).Body()
		setStrings(sb, "paths", s.Paths)
		setDuration(sb, "interval", s.Interval)
		setString(sb, "source", s.Source)
		if s.ExcludeFromRPO {
			sb.SetAttributeValue("exclude_from_rpo", cty.True)
		}
	}
	for _, s := range a.Spec.Snapshots {
		sb := b.AppendNewBlock("snapshot", []string{s.Name}).Body()
		setStrings(sb, "paths", s.Paths)
		setDuration(sb, "every", s.Every)
		setDuration(sb, "keep_within", s.KeepWithin)
		if s.KeepLast > 0 {
			sb.SetAttributeValue("keep_last", cty.NumberIntVal(int64(s.KeepLast)))
		}
		setString(sb, "engine", s.Engine)
		setString(sb, "repository", s.Repository)
		setString(sb, "password_file", s.PasswordFile)
		setString(sb, "service", s.Service)
	}
	for _, bc := range a.Spec.Backups {
		bb := b.AppendNewBlock("backup", []string{bc.Name}).Body()
		setString(bb, "engine", bc.Engine)
		setString(bb, "service", bc.Service)
		setString(bb, "repository", bc.Repository)
		setDuration(bb, "full_every", bc.FullEvery)
		setDuration(bb, "incr_every", bc.IncrEvery)
		setDuration(bb, "verify_every", bc.VerifyEvery)
		for _, n := range []struct {
			key string
			v   int
		}{{"keep_full", bc.KeepFull}, {"verify_port", bc.VerifyPort}, {"process_max", bc.ProcessMax}} {
			if n.v > 0 {
				bb.SetAttributeValue(n.key, cty.NumberIntVal(int64(n.v)))
			}
		}
		setString(bb, "config_dir", bc.ConfigDir)
	}
	for _, h := range a.Spec.Hooks {
		hb := b.AppendNewBlock("hook", []string{h.Name}).Body()
		setStrings(hb, "command", h.Command)
		setDuration(hb, "timeout", h.Timeout)
	}
	return f.Bytes()
}

func writeService(b *hclwrite.Body, s config.ServiceConfig) {
	setString(b, "driver", s.Driver)
	setStrings(b, "depends_on", s.DependsOn)
	setString(b, "data_dir", s.DataDir)
	if s.Port > 0 {
		b.SetAttributeValue("port", cty.NumberIntVal(int64(s.Port)))
	}
	setString(b, "bin_dir", s.BinDir)
	setString(b, "run_as", s.RunAs)
	setStrings(b, "command", s.Command)
	setStringMap(b, "env", s.Env)
	setString(b, "dir", s.Dir)
	setString(b, "restart", s.Restart)
	setDuration(b, "stop_timeout", s.StopTimeout)
	setString(b, "unit", s.Unit)
	if s.Health != nil {
		writeHealth(b.AppendNewBlock("health", nil).Body(), s.Health)
	}
	if d := s.Drill; d != nil {
		db := b.AppendNewBlock("drill", nil).Body()
		if d.Port > 0 {
			db.SetAttributeValue("port", cty.NumberIntVal(int64(d.Port)))
		}
		setStrings(db, "command", d.Command)
		setStringMap(db, "env", d.Env)
		if d.Health != nil {
			writeHealth(db.AppendNewBlock("health", nil).Body(), d.Health)
		}
	}
}

func writeHealth(b *hclwrite.Body, h *config.HealthConfig) {
	setString(b, "http", h.HTTP)
	setString(b, "tcp", h.TCP)
	setStrings(b, "exec", h.Exec)
	setString(b, "sql", h.SQL)
	setString(b, "query", h.Query)
	setDuration(b, "interval", h.Interval)
	setDuration(b, "timeout", h.Timeout)
}

func setString(b *hclwrite.Body, name, v string) {
	if v != "" {
		b.SetAttributeValue(name, cty.StringVal(v))
	}
}

func setStrings(b *hclwrite.Body, name string, vs []string) {
	if len(vs) == 0 {
		return
	}
	vals := make([]cty.Value, len(vs))
	for i, v := range vs {
		vals[i] = cty.StringVal(v)
	}
	b.SetAttributeValue(name, cty.ListVal(vals))
}

func setStringMap(b *hclwrite.Body, name string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	vals := map[string]cty.Value{}
	for k, v := range m {
		vals[k] = cty.StringVal(v)
	}
	b.SetAttributeValue(name, cty.MapVal(vals))
}

func setDuration(b *hclwrite.Body, name string, d time.Duration) {
	if d > 0 {
		b.SetAttributeValue(name, cty.StringVal(d.String()))
	}
}

// Start starts the agent process, appending to its log file. The agent
// adopts services that already run; it never starts them on its own.
func (a *Agent) Start() error {
	name, args := a.bin, []string{"agent", "--config", a.ConfigPath}
	if len(a.Spec.Mounts) > 0 {
		name, args = mountNamespaceCommand(a.Spec.Mounts, name, args)
	}
	if a.wrap != nil {
		name, args = a.wrap(a.HostID, name, args)
	}
	return a.start("agent "+a.HostID, a.LogPath, withFastRaceExit(os.Environ()), name, args...)
}

// Kill sends SIGKILL (a crash) and waits for the exit. The services the
// agent started keep running, as they would on a real host.
func (a *Agent) Kill() error { return a.signal("agent "+a.HostID, syscall.SIGKILL) }

// Stop sends SIGTERM (a graceful shutdown) and waits for the exit.
func (a *Agent) Stop() error { return a.signal("agent "+a.HostID, syscall.SIGTERM) }

// Restart stops the agent gracefully and starts it again.
func (a *Agent) Restart() error {
	if err := a.Stop(); err != nil {
		return err
	}
	return a.Start()
}

// mountNamespaceCommand wraps bin args in unshare(1) and a shell that
// bind-mounts every mount and then execs the agent, so the agent keeps
// the pid the harness signals. Paths are positional parameters, never
// spliced into the script.
func mountNamespaceCommand(mounts []Mount, bin string, args []string) (string, []string) {
	const script = `set -e
while [ "$1" != "--" ]; do mount --bind "$1" "$2"; shift 2; done
shift
exec "$@"`
	out := []string{"--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh"}
	for _, m := range mounts {
		out = append(out, m.Source, m.Target)
	}
	out = append(append(out, "--", bin), args...)
	return "unshare", out
}

// MountNamespaces reports whether AgentSpec.Mounts can work here: it
// needs unshare(1) and the right to create mount namespaces (root).
func MountNamespaces() error {
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
		`d=$(mktemp -d) && mount --bind "$d" "$d"; rc=$?; rmdir "$d"; exit $rc`).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cannot bind-mount in a private mount namespace: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ServicePID returns the pid of the declared process-driver service
// name while it runs, from the pid file the driver keeps in the agent's
// data_dir, and 0 when it does not run. It works whether the agent runs
// or not.
func (a *Agent) ServicePID(name string) (int, error) {
	data, err := os.ReadFile(filepath.Join(a.DataDir, "services", name, "process.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read pid file of %s on %s: %w", name, a.HostID, err)
	}
	var pid int
	var startTicks uint64
	if _, err := fmt.Sscanf(string(data), "%d %d", &pid, &startTicks); err != nil {
		return 0, fmt.Errorf("parse pid file of %s on %s: %w", name, a.HostID, err)
	}
	// A pid the kernel handed to another process since is not ours.
	if ticks, alive := procStartTicks(pid); !alive || ticks != startTicks {
		return 0, nil
	}
	return pid, nil
}

// ProcessAlive reports whether pid runs (an exited process not yet reaped
// by its parent does not).
func ProcessAlive(pid int) bool {
	_, alive := procStartTicks(pid)
	return alive
}

// procStartTicks reads the start time of a live pid from /proc.
func procStartTicks(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces; count from its ')'.
	i := strings.LastIndexByte(string(b), ')')
	fields := strings.Fields(string(b[i+1:]))
	if i < 0 || len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return 0, false
	}
	ticks, err := strconv.ParseUint(fields[19], 10, 64)
	return ticks, err == nil
}

// killServices kills the process groups of the process-driver services
// that still run: the harness must not leave them behind.
func (a *Agent) killServices() {
	for _, s := range a.Spec.Services {
		if s.Driver != config.DriverProcess {
			continue
		}
		if pid, err := a.ServicePID(s.Name); err == nil && pid > 0 {
			// The driver gives every service its own process group.
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}
