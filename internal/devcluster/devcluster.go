// Package devcluster is product code: it lays out and runs the local
// deployment of `drplane dev` (internal/devenv), real drplane processes on
// loopback: certificates, one HCL config per server and per agent,
// kernel-chosen ports, and the calls to start, kill and reach them. The
// process tests share it, so they run exactly what `drplane dev` and an
// operator run.
//
// A Cluster is built with New (servers) and AddAgent (agents, from an
// AgentSpec) and started with Start and Agent.Start; WaitForLeader and
// WaitForMembers wait until the servers form a cluster. The servers are
// reached through the CLI (CLI, with Env), the Operator API with the
// operator's certificate (Operator), or an agent's HostAgent API with a
// server certificate, standing in for the leader (AgentClient, Execute).
// Close kills every process it started.
//
// It holds only what `drplane dev` uses. What only tests ask of a
// deployment lives in test support under internal/testing: the leader's
// status and the members decoded into the CLI's --json types, site
// switches and waits for agents in clustertest, placement in network
// namespaces in netns. Being product code, devcluster must not import
// anything under internal/testing (internal/testing/imports_test.go checks).
package devcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/tlsutil"
)

// Node is one server process. New gives it free loopback ports; a test may
// move it to other addresses before it first starts and before AddAgent,
// since StartNode writes its config from these fields and AddAgent
// configures agents with the servers' GRPCAddr.
type Node struct {
	ID, Site   string
	GRPCAddr   string
	RaftAddr   string
	HTTPAddr   string
	ConfigPath string
	DataDir    string
	LogPath    string

	proc
}

// Cluster is a set of server processes sharing a CA, and the agent
// processes added with AddAgent.
type Cluster struct {
	Bin    string
	Dir    string
	Nodes  []*Node
	Agents []*Agent
	// Multiplier is written as raft_multiplier.
	Multiplier int
	// Failover, when set, is written in full as the servers' failover
	// block (start from config.DefaultServerConfig().Failover and change
	// what the test needs); the servers' defaults apply when nil. Configs
	// are rewritten by StartNode, so a change takes effect at the next
	// start.
	Failover *config.FailoverConfig
	// Replication, when set, is written as the servers' replication
	// block; async by default.
	Replication *config.ReplicationConfig
	// Programme, when set, is HCL appended to every server's config as
	// it is: objectives, trading_hours and schedule blocks.
	Programme string
	// Wrap, when set, rewrites the command line of every server and
	// agent process before it starts, given the server's node id or the
	// agent's host id: a test runs each in a network namespace of its own
	// this way. The program it runs must exec the given one in place, so
	// the pid the harness signals is drplane's. Set it before AddAgent;
	// nil runs the processes as they are.
	Wrap func(host, name string, args []string) (string, []string)
	// Dial, when set, connects the harness's own gRPC clients
	// (Operator, AgentClient), for example from inside a network
	// namespace; nil dials from the harness's.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	inProcessTLS bool
	clients      clients
}

// New writes certificates and configs under dir for one server per entry
// of sites (named s1, s2, ...). Nothing is started yet.
func New(bin, dir string, sites []string) (*Cluster, error) {
	return newCluster(&Cluster{Bin: bin, Dir: dir, Multiplier: 1}, sites)
}

// NewInProcessTLS is New with the CA and certificates made in this
// process by tlsutil, the library behind `drplane tls`: the same files,
// without seven runs of the binary, which take seconds on a busy machine
// (more with -race). The network-namespace harness uses it; `drplane dev`
// uses New, running `drplane tls` as an operator would.
func NewInProcessTLS(bin, dir string, sites []string) (*Cluster, error) {
	return newCluster(&Cluster{Bin: bin, Dir: dir, Multiplier: 1, inProcessTLS: true}, sites)
}

func newCluster(c *Cluster, sites []string) (*Cluster, error) {
	tlsDir := c.tlsDir()
	if c.inProcessTLS {
		if err := tlsutil.CreateCA(tlsDir); err != nil {
			return nil, err
		}
	} else if _, err := c.run(context.Background(), "tls", "ca", "create", "--dir", tlsDir); err != nil {
		return nil, err
	}
	if err := c.createCert("operator", tlsutil.RoleCLI); err != nil {
		return nil, err
	}
	// Prometheus's certificate: it reads /metrics and nothing else.
	if err := c.createCert("prometheus", tlsutil.RoleMonitor); err != nil {
		return nil, err
	}
	for i, site := range sites {
		n, err := c.newNode(fmt.Sprintf("s%d", i+1), site)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		if err := c.writeConfig(n); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) newNode(id, site string) (*Node, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	if err := c.createCert(id, tlsutil.RoleServer); err != nil {
		return nil, err
	}
	nodeDir := filepath.Join(c.Dir, id)
	return &Node{
		ID: id, Site: site,
		GRPCAddr:   fmt.Sprintf("127.0.0.1:%d", ports[0]),
		RaftAddr:   fmt.Sprintf("127.0.0.1:%d", ports[1]),
		HTTPAddr:   fmt.Sprintf("127.0.0.1:%d", ports[2]),
		ConfigPath: filepath.Join(nodeDir, "server.hcl"),
		DataDir:    filepath.Join(nodeDir, "data"),
		LogPath:    filepath.Join(nodeDir, "server.log"),
	}, nil
}

// createCert makes the certificate name with role, with `drplane tls
// cert create` (or tlsutil when inProcessTLS).
func (c *Cluster) createCert(name string, role tlsutil.Role) error {
	if c.inProcessTLS {
		_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.tlsDir(), Name: name, Role: role})
		return err
	}
	_, err := c.run(context.Background(), "tls", "cert", "create", "--dir", c.tlsDir(), "--name", name, "--"+string(role))
	return err
}

// FreePorts asks the kernel for n free loopback ports, for the other
// processes of a deployment (databases, applications); see freePorts.
func FreePorts(n int) ([]int, error) { return freePorts(n) }

// handedOut are the ports freePorts returned in this process: the
// listeners are closed before the processes bind, so the kernel may offer
// one of them again before its process bound it (two servers of one
// deployment were handed the same port that way).
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePorts asks the kernel for n free ports, never one it returned
// before in this process. The listeners are closed before the processes
// bind, which another test process could race; the ports come from the
// ephemeral range, so a collision is unlikely and shows up as a clear bind
// error in the server's log.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	handedOut.Lock()
	defer handedOut.Unlock()
	var ports []int
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		lns = append(lns, ln) // held until all are picked: no repeats among them
		port := ln.Addr().(*net.TCPAddr).Port
		if handedOut.ports[port] {
			continue
		}
		handedOut.ports[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}

var serverConfigTmpl = template.Must(template.New("server").Parse(`node_id          = "{{.Node.ID}}"
site             = "{{.Node.Site}}"
data_dir         = "{{.Node.DataDir}}"
bind_addr        = "{{.BindAddr}}"
ports { grpc = {{.GRPCPort}}  raft = {{.RaftPort}}  http = {{.HTTPPort}} }
bootstrap_expect = {{.Expect}}
retry_join       = [{{.Join}}]
retry_interval   = "200ms"
raft_multiplier  = {{.Multiplier}}
tls {
  ca_file   = "{{.TLSDir}}/ca.pem"
  cert_file = "{{.TLSDir}}/{{.Node.ID}}.pem"
  key_file  = "{{.TLSDir}}/{{.Node.ID}}-key.pem"
}
site "primary" { kind = "data"  active = true }
site "dr"      { kind = "data" }
{{- if .Witness}}
site "witness" { kind = "witness" }
{{- end}}
{{- with .Failover}}
failover {
  automatic         = {{.Automatic}}
  probe_interval    = "{{.ProbeInterval}}"
  probe_timeout     = "{{.ProbeTimeout}}"
  lease_ttl         = "{{.LeaseTTL}}"
  failover_timeout  = "{{.FailoverTimeout}}"
  clock_skew_margin = "{{.ClockSkewMargin}}"
  max_data_loss     = "{{.MaxDataLoss}}"
  cooldown          = "{{.Cooldown}}"
  quorum_loss_timeout = "{{.QuorumLossTimeout}}"
  primary_start_timeout = "{{.PrimaryStartTimeout}}"
{{- range .Stonith}}
  stonith {{printf "%q" .Site}} {
    command = [{{range $i, $a := .Command}}{{if $i}}, {{end}}{{printf "%q" $a}}{{end}}]
    timeout = "{{.Timeout}}"
  }
{{- end}}
}
{{- end}}
{{- with .Replication}}
replication {
  mode          = "{{.Mode}}"
  strict        = {{.Strict}}
  degrade_after = "{{.DegradeAfter}}"
}
{{- end}}
{{.Programme}}
`))

func (c *Cluster) writeConfig(n *Node) error {
	var join []string
	witness := false
	for _, o := range c.Nodes {
		witness = witness || o.Site == "witness"
		if o != n {
			join = append(join, fmt.Sprintf("%q", o.GRPCAddr))
		}
	}
	var buf bytes.Buffer
	err := serverConfigTmpl.Execute(&buf, map[string]any{
		"Node": n, "BindAddr": host(n.GRPCAddr), "Expect": len(c.Nodes), "Join": strings.Join(join, ", "), "Multiplier": c.Multiplier,
		"GRPCPort": port(n.GRPCAddr), "RaftPort": port(n.RaftAddr), "HTTPPort": port(n.HTTPAddr),
		"TLSDir": filepath.Join(c.Dir, "tls"), "Failover": c.Failover, "Replication": c.Replication, "Witness": witness,
		"Programme": c.Programme,
	})
	if err != nil {
		return fmt.Errorf("render config for %s: %w", n.ID, err)
	}
	if err := os.MkdirAll(filepath.Dir(n.ConfigPath), 0o700); err != nil {
		return err
	}
	return os.WriteFile(n.ConfigPath, buf.Bytes(), 0o600)
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func host(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// Start starts every node that is not running.
func (c *Cluster) Start() error {
	for _, n := range c.Nodes {
		if !n.Running() {
			if err := c.StartNode(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// StartNode starts one server process, appending to its log file. The
// config is rewritten first, so Multiplier and Failover take effect.
func (c *Cluster) StartNode(n *Node) error {
	if err := c.writeConfig(n); err != nil {
		return err
	}
	name, args := c.Bin, []string{"server", "--config", n.ConfigPath}
	if c.Wrap != nil {
		name, args = c.Wrap(n.ID, name, args)
	}
	return n.start("server "+n.ID, n.LogPath, nil, name, args...)
}

// Kill sends SIGKILL and waits for the process to exit.
func (c *Cluster) Kill(n *Node) error { return n.signal("server "+n.ID, syscall.SIGKILL) }

// Stop sends SIGTERM (a graceful shutdown) and waits for the exit.
func (c *Cluster) Stop(n *Node) error { return n.signal("server "+n.ID, syscall.SIGTERM) }

// Close kills every process: agents, the services their process drivers
// started (which outlive an agent by design), and servers. It is safe to
// call more than once.
func (c *Cluster) Close() {
	for _, a := range c.Agents {
		_ = a.Kill()
		a.killServices()
	}
	for _, n := range c.Nodes {
		_ = c.Kill(n)
	}
	c.clients.close()
}

// Env is the environment for CLI commands against node n.
func (c *Cluster) Env(n *Node) []string {
	tlsDir := filepath.Join(c.Dir, "tls")
	return append(withFastRaceExit(os.Environ()),
		"DRPLANE_ADDR="+n.GRPCAddr,
		"DRPLANE_CACERT="+filepath.Join(tlsDir, "ca.pem"),
		"DRPLANE_CLIENT_CERT="+filepath.Join(tlsDir, "operator.pem"),
		"DRPLANE_CLIENT_KEY="+filepath.Join(tlsDir, "operator-key.pem"),
	)
}

// CLI runs a drplane command against node n and returns its stdout; the
// error carries stderr.
func (c *Cluster) CLI(ctx context.Context, n *Node, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Env = c.Env(n)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("drplane %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (c *Cluster) run(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, c.Bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("drplane %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Node returns the node with the given id, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// WaitForLeader polls the running nodes until one reports a leader that
// is not in exclude, and returns its id.
func (c *Cluster) WaitForLeader(ctx context.Context, poll time.Duration, exclude ...string) (string, error) {
	var lastErr error
	for {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			id, err := c.nodeLeader(qctx, n)
			cancel()
			if err == nil && id != "" && !contains(exclude, id) {
				return id, nil
			}
			if err != nil {
				lastErr = err
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no leader: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(poll):
		}
	}
}

// nodeLeader asks n for its view of the leader from local state, which is
// cheap and works while an election is in progress.
func (c *Cluster) nodeLeader(ctx context.Context, n *Node) (string, error) {
	out, err := c.CLI(ctx, n, "status", "--json", "--stale")
	if err != nil {
		return "", err
	}
	var st leaderView
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return "", err
	}
	return st.LeaderID, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// WaitForMembers polls `members --json` on via until every node of the
// cluster that is running reports itself leader or follower with its site
// recorded.
func (c *Cluster) WaitForMembers(ctx context.Context, via *Node, poll time.Duration) error {
	var lastErr error
	for {
		lastErr = c.membersReady(ctx, via)
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("members not ready: %w (last: %v)", ctx.Err(), lastErr)
		case <-time.After(poll):
		}
	}
}

func (c *Cluster) membersReady(ctx context.Context, via *Node) error {
	out, err := c.CLI(ctx, via, "members", "--json")
	if err != nil {
		return err
	}
	var resp membersView
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return fmt.Errorf("decode members --json: %w: %q", err, out)
	}
	state := map[string]memberView{}
	for _, m := range resp.Servers {
		state[m.ID] = m
	}
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		m, ok := state[n.ID]
		if !ok || m.Site == "" || (m.State != "leader" && m.State != "follower") {
			return fmt.Errorf("%s is not a ready member yet: %+v", n.ID, m)
		}
	}
	return nil
}
