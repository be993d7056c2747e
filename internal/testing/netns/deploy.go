package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/grpc"
)

// Options configures a Deployment.
type Options struct {
	// Bin is the drplane binary under test.
	Bin string
	// Failover is written in full as the servers' failover block (start
	// from config.DefaultServerConfig().Failover); nil keeps the servers'
	// defaults, automatic failover off.
	Failover *config.FailoverConfig
	// Replication is written as the servers' replication block; nil
	// keeps async replication.
	Replication *config.ReplicationConfig
	// LeaderIn, when set, makes a server of one of these sites the first
	// leader: before any agent starts, the other servers are frozen
	// (SIGSTOP) until one of these leads, then continued, and they rejoin
	// as followers. The remaining servers must be a quorum.
	LeaderIn []string
	// TwoSites leaves the witness out: servers s1, s2 at primary and s3,
	// s4 at dr, so neither site holds a quorum alone.
	TwoSites bool
	// Backup, when set, is a backup block both database agents declare
	// for their "postgres" service (its name, engine and service are
	// filled in), into one repository on the shared filesystem
	// (BackupRepository); the databases start with archive_mode on, as
	// a DBA prepares a cluster for pgBackRest.
	Backup *config.BackupConfig
	// EngineState gives each application host a snapshot block
	// "engine-state" of the engine's state directory (EngineStateDir),
	// declared as the engine's (service = "engine").
	EngineState bool
}

// Deployment is drplane on a StandardLayout topology: a server on each
// of s1..s5, an agent on db-1, db-2, app-1 and app-2, a PostgreSQL 15
// primary on db-1 streaming to a standby on db-2 (each its agent's
// "postgres" service), and on each application host an "engine" that
// depends on the site's database. The CLI runs on the ops host.
type Deployment struct {
	Topo    *Topology
	Cluster *devcluster.Cluster
	// Dir holds everything on disk; it is removed at cleanup.
	Dir string
	// PG is the database of each database host (db-1, db-2).
	PG map[string]*Postgres
	// Failover is the servers' effective failover block.
	Failover config.FailoverConfig
	// backup is Options.Backup, completed.
	backup      *config.BackupConfig
	engineState bool

	t   testing.TB
	ops *Host

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	tls   *tlsutil.Material
	lb    *HAProxy
}

// DataSites are the sites that run services, and their hosts.
var DataSites = map[string]struct{ DB, App string }{
	"primary": {DB: "db-1", App: "app-1"},
	"dr":      {DB: "db-2", App: "app-2"},
}

// engineDrillPort is the port of a database's drill copy; every host has
// its own address, so one port serves both.
const engineDrillPort = 15432

// NewDeployment builds the topology, the databases and the drplane
// processes, and waits until a leader probes every agent and the
// databases have their roles. Everything is torn down in t.Cleanup, and
// every process's log is printed when the test failed.
func NewDeployment(t testing.TB, opts Options) *Deployment {
	t.Helper()
	Require(t)
	start := time.Now()
	// A short directory of its own: unix socket paths (PostgreSQL's and
	// its drill copies') must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "dpn-")
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// After the topology's teardown killed what was left: a killed
	// postmaster leaves a shared memory segment behind.
	t.Cleanup(func() { RemoveStaleSegments(dir) })
	// PostgreSQL runs as its own user and must traverse it.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatalf("netns: %v", err)
	}
	d := &Deployment{t: t, Dir: dir, PG: map[string]*Postgres{}, conns: map[string]*grpc.ClientConn{},
		Failover: config.DefaultServerConfig().Failover, engineState: opts.EngineState}
	if opts.Backup != nil {
		b := *opts.Backup
		b.Name, b.Engine, b.Service, b.Repository = "pg", "pgbackrest", "postgres", filepath.Join(dir, "pgbackrest")
		d.backup = &b
	}
	if opts.Failover != nil {
		d.Failover = *opts.Failover
	}
	var phases []string
	phase := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("netns: %s: %v", name, err)
		}
		phases = append(phases, fmt.Sprintf("%s %s", name, time.Since(start).Round(time.Millisecond)))
	}
	d.Topo = NewTopology(t, StandardLayout())
	if err := d.Topo.Own(dir); err != nil {
		t.Fatalf("netns: %v", err)
	}
	d.ops = d.Topo.Host("ops")
	t.Cleanup(d.cleanup)
	phase("topology", nil)
	// The databases and the control plane do not need each other yet:
	// one mostly computes, the other mostly waits for an election.
	var wg sync.WaitGroup
	var dbErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		dbErr = d.setUpDatabases()
	}()
	serversErr := d.setUpServers(opts)
	wg.Wait()
	phase("databases", dbErr)
	phase("servers", serversErr)
	phase("agents", d.setUpAgents())
	d.WaitForAgent("db-1", time.Minute, HasRole("postgres", "primary"))
	d.WaitForAgent("db-2", time.Minute, HasRole("postgres", "standby"))
	d.WaitForAgent("app-1", time.Minute, HasRole("engine", "primary"))
	phase("roles", nil)
	t.Logf("netns: deployment %s up (servers s1-s5, agents db-1 db-2 app-1 app-2, PostgreSQL db-1 -> db-2); at %s",
		d.Topo.Prefix, strings.Join(phases, ", "))
	return d
}

func (d *Deployment) setUpDatabases() error {
	ctx := context.Background()
	for _, h := range []string{"db-1", "db-2"} {
		p, err := NewPostgres(d.Topo.Host(h), filepath.Join(d.Dir, h))
		if err != nil {
			return err
		}
		d.PG[h] = p
	}
	primary, standby := d.PG["db-1"], d.PG["db-2"]
	if err := primary.InitPrimary(); err != nil {
		return err
	}
	if d.backup != nil {
		// The standby's copy carries it: either archives once primary.
		if err := appendFile(filepath.Join(primary.DataDir, "postgresql.conf"), "archive_mode = on\n"); err != nil {
			return err
		}
	}
	if err := primary.Start(); err != nil {
		return err
	}
	if err := primary.Exec(ctx, HistoryTableSQL); err != nil {
		return err
	}
	if err := standby.CloneFrom(primary); err != nil {
		return err
	}
	return standby.Start()
}

func (d *Deployment) setUpServers(opts Options) error {
	sites := []string{"primary", "primary", "dr", "dr", "witness"}
	if opts.TwoSites {
		sites = sites[:4]
	}
	c, err := devcluster.NewInProcessTLS(opts.Bin, filepath.Join(d.Dir, "cp"), sites)
	if err != nil {
		return err
	}
	d.Cluster = c
	c.Wrap = d.Topo.hostNetns
	c.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.ops.DialContext(ctx, "tcp", addr) }
	c.Failover = &d.Failover
	c.Replication = opts.Replication
	for _, n := range c.Nodes {
		if err := placeServer(n, d.Topo.Host(n.ID).IP); err != nil {
			return err
		}
	}
	if err := c.Start(); err != nil {
		return err
	}
	if err := d.waitFor(time.Minute, func(st *pb.GetStatusResponse) error {
		if st.GetLeaderId() == "" {
			return errors.New("no leader")
		}
		return nil
	}); err != nil {
		return err
	}
	if len(opts.LeaderIn) > 0 {
		return d.electLeaderIn(opts.LeaderIn)
	}
	return nil
}

// electLeaderIn makes a server of sites the leader while no lease is at
// stake (no agent runs yet). The servers elsewhere are frozen, but for as
// many as a quorum needs; while one of those leads, it is frozen in turn
// and another continued, so that the next election has other candidates.
func (d *Deployment) electLeaderIn(sites []string) error {
	var wanted, others []*devcluster.Node
	for _, n := range d.Cluster.Nodes {
		if slices.Contains(sites, n.Site) {
			wanted = append(wanted, n)
		} else {
			others = append(others, n)
		}
	}
	keep := max(0, len(d.Cluster.Nodes)/2+1-len(wanted))
	if keep > len(others) {
		return fmt.Errorf("sites %v have no server", sites)
	}
	frozen := map[*devcluster.Node]bool{}
	defer func() {
		for n := range frozen {
			_ = ThawProcess(n.Pid())
		}
	}()
	freeze := func(n *devcluster.Node, on bool) error {
		var err error
		if on {
			err = FreezeProcess(n.Pid())
		} else {
			err = ThawProcess(n.Pid())
		}
		if err == nil {
			frozen[n] = on
		}
		return err
	}
	for _, n := range others[keep:] {
		if err := freeze(n, true); err != nil {
			return err
		}
	}
	for range 10 {
		var leader *devcluster.Node
		err := d.waitFor(time.Minute, func(st *pb.GetStatusResponse) error {
			leader = d.Cluster.Node(st.GetLeaderId())
			if leader == nil || frozen[leader] {
				return fmt.Errorf("no leader among the running servers (%q)", st.GetLeaderId())
			}
			return nil
		})
		if err != nil {
			return err
		}
		if slices.Contains(wanted, leader) {
			return nil
		}
		for _, n := range others {
			if frozen[n] {
				if err := freeze(n, false); err != nil {
					return err
				}
				break
			}
		}
		if err := freeze(leader, true); err != nil {
			return err
		}
	}
	return fmt.Errorf("no server of %v became leader", sites)
}

// waitFor polls the status until check accepts it.
func (d *Deployment) waitFor(timeout time.Duration, check func(*pb.GetStatusResponse) error) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := d.Status(context.Background())
		if err == nil {
			err = check(st)
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *Deployment) setUpAgents() error {
	c := d.Cluster
	var agents []*devcluster.Agent
	for site, hosts := range DataSites {
		db, app := d.Topo.Host(hosts.DB), d.Topo.Host(hosts.App)
		specs := []devcluster.AgentSpec{
			{HostID: db.Name, Site: site, Services: []config.ServiceConfig{d.PG[db.Name].Service(engineDrillPort)}},
			{HostID: app.Name, Site: site, Services: []config.ServiceConfig{d.engine(app.Name)}},
		}
		if d.backup != nil {
			specs[0].Backups = []config.BackupConfig{*d.backup}
		}
		if d.engineState {
			if err := os.MkdirAll(d.EngineStateDir(app.Name), 0o755); err != nil {
				return err
			}
			specs[1].Snapshots = []config.SnapshotConfig{{Name: "engine-state", Paths: []string{d.EngineStateDir(app.Name)}, Service: "engine"}}
		}
		for _, spec := range specs {
			spec.LeaseTTL = d.Failover.LeaseTTL
			if err := placeAgent(&spec, d.Topo.Host(spec.HostID).IP); err != nil {
				return err
			}
			a, err := c.AddAgent(spec)
			if err != nil {
				return err
			}
			agents = append(agents, a)
		}
	}
	if err := os.WriteFile(d.engineReadyFile(), nil, 0o600); err != nil {
		return err
	}
	for _, a := range agents {
		// A drill clones the standby into the agent's data dir, which
		// the postgres user must reach.
		if err := os.MkdirAll(a.DataDir, 0o700); err != nil {
			return err
		}
		if err := traversable(a.DataDir, d.Dir); err != nil {
			return err
		}
		if err := a.Start(); err != nil {
			return err
		}
	}
	var epoch uint64
	err := d.waitFor(time.Minute, func(st *pb.GetStatusResponse) error {
		epoch = st.GetEpoch()
		for _, a := range agents {
			if err := findAgent(st, a.HostID, AtCurrentEpoch); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Production runs: the primary site's database and engine were
	// started by the deployment's first plan, here steps sent as a leader
	// would send them. From then on the leader's lease renewals keep them
	// running. The database already runs and is adopted; the start step
	// vouches for it, so that a first probe slower than the boot window
	// on a loaded machine (which fences it) does not fail the setup: the
	// step starts it again.
	primary := DataSites["primary"]
	for _, st := range []struct{ host, service string }{{primary.DB, "postgres"}, {primary.App, "engine"}} {
		if err := d.startService(c.Agent(st.host), st.service, epoch); err != nil {
			return err
		}
	}
	return nil
}

// startService sends a start step for service to a, as a leader would.
func (d *Deployment) startService(a *devcluster.Agent, service string, epoch uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, res, err := d.Cluster.Execute(ctx, a, &pb.ExecuteRequest{
		ExecutionId: "netns-setup", StepId: "start-" + service, Epoch: epoch, Action: pb.StepAction_STEP_ACTION_START, Target: service})
	if err != nil {
		return fmt.Errorf("start %s on %s: %w", service, a.HostID, err)
	}
	if !res.GetOk() {
		return fmt.Errorf("start %s on %s: %s", service, a.HostID, res.GetMessage())
	}
	return nil
}

// findAgent applies checks to host's agent in st.
func findAgent(st *pb.GetStatusResponse, host string, checks ...AgentCheck) error {
	for _, a := range st.GetAgents() {
		if a.GetHostId() != host {
			continue
		}
		for _, check := range checks {
			if err := check(a, st); err != nil {
				return fmt.Errorf("agent %s: %w", host, err)
			}
		}
		return nil
	}
	return fmt.Errorf("agent %s is not registered", host)
}

// engine is an application host's service: it records every start in
// EngineStarts' file ("live" or, for a drill copy, "drill") and is healthy
// while the ready file exists (HoldEngine, ReleaseEngine).
func (d *Deployment) engine(host string) config.ServiceConfig {
	return config.ServiceConfig{
		Name: "engine", Driver: config.DriverProcess, DependsOn: []string{"postgres"},
		Command:     []string{"/bin/sh", "-c", `echo "$MODE" >> "$STARTS"; exec /bin/sleep 86400`},
		Env:         map[string]string{"MODE": "live", "STARTS": d.engineStartsFile(host)},
		StopTimeout: 5 * time.Second,
		Health:      &config.HealthConfig{Exec: []string{"/bin/test", "-f", d.engineReadyFile()}, Interval: 500 * time.Millisecond, Timeout: 500 * time.Millisecond},
		Drill:       &config.DrillConfig{Env: map[string]string{"MODE": "drill"}},
	}
}

func (d *Deployment) engineStartsFile(host string) string {
	return filepath.Join(d.Dir, "engine-starts-"+host)
}

// EngineStateDir is the engine's state directory on host (Options.EngineState).
func (d *Deployment) EngineStateDir(host string) string {
	return filepath.Join(d.Dir, "engine-state-"+host)
}

func (d *Deployment) engineReadyFile() string { return filepath.Join(d.Dir, "engine-ready") }

// HoldEngine makes every engine's health check fail, so that a plan
// waits at its start:engine step (until the step's timeout).
func (d *Deployment) HoldEngine() error { return os.Remove(d.engineReadyFile()) }

// ReleaseEngine makes the engines healthy again.
func (d *Deployment) ReleaseEngine() error { return os.WriteFile(d.engineReadyFile(), nil, 0o600) }

// EngineStarts counts the starts of the engine on host, by mode ("live"
// or "drill").
func (d *Deployment) EngineStarts(host, mode string) int {
	b, err := os.ReadFile(d.engineStartsFile(host))
	if err != nil {
		return 0
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if strings.TrimSpace(line) == mode {
			n++
		}
	}
	return n
}

// traversable gives everyone search (o+x) permission on dir and its
// parents up to top, as /var/lib is on a real host.
func traversable(dir, top string) error {
	for p := dir; strings.HasPrefix(p, top) && p != "/"; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
			return err
		}
	}
	return nil
}

// Server returns the server on host (s1..s5).
func (d *Deployment) Server(host string) *devcluster.Node {
	n := d.Cluster.Node(host)
	if n == nil {
		d.t.Fatalf("netns: no server on %s", host)
	}
	return n
}

// Agent returns the agent of host.
func (d *Deployment) Agent(host string) *devcluster.Agent {
	a := d.Cluster.Agent(host)
	if a == nil {
		d.t.Fatalf("netns: no agent on %s", host)
	}
	return a
}

// serversByReach lists the servers, those the ops host reaches first
// (as far as the topology's links and frozen hosts go). It reads nothing
// a test changes, so the checker's poller may call it any time.
func (d *Deployment) serversByReach() []*devcluster.Node {
	var near, far []*devcluster.Node
	for _, n := range d.Cluster.Nodes {
		if d.Topo.Reachable(d.ops, d.Topo.Host(n.ID)) {
			near = append(near, n)
		} else {
			far = append(far, n)
		}
	}
	return append(near, far...)
}

// CLI runs a drplane command on the ops host, with DRPLANE_ADDR listing
// every running server (those the topology lets it reach first), and
// returns its stdout; the error carries stderr.
func (d *Deployment) CLI(ctx context.Context, args ...string) (string, error) {
	var servers []*devcluster.Node
	for _, n := range d.serversByReach() {
		if n.Running() {
			servers = append(servers, n)
		}
	}
	if len(servers) == 0 {
		return "", errors.New("no server runs")
	}
	addrs := make([]string, len(servers))
	for i, n := range servers {
		addrs[i] = n.GRPCAddr
	}
	name, argv := inNetns(d.ops.NS, d.Cluster.Bin, args)
	cmd := exec.CommandContext(ctx, name, argv...)
	// The last value of a key wins.
	cmd.Env = append(d.Cluster.Env(servers[0]), "DRPLANE_ADDR="+strings.Join(addrs, ","))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("drplane %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// MustCLI is CLI that fails the test on error, with the output.
func (d *Deployment) MustCLI(args ...string) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := d.CLI(ctx, args...)
	if err != nil {
		d.t.Fatalf("netns: %v\n%s", err, out)
	}
	return out
}

// controlPlane returns an Operator client holding the operator's
// certificate, connected to n from the ops host.
func (d *Deployment) controlPlane(n *devcluster.Node) (pb.OperatorClient, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == nil {
		return nil, errors.New("the deployment is torn down")
	}
	if d.tls == nil {
		tlsDir := filepath.Join(d.Cluster.Dir, "tls")
		m, err := tlsutil.Load(filepath.Join(tlsDir, tlsutil.CACertFile), filepath.Join(tlsDir, "operator.pem"), filepath.Join(tlsDir, "operator-key.pem"))
		if err != nil {
			return nil, err
		}
		d.tls = m
	}
	conn, ok := d.conns[n.GRPCAddr]
	if !ok {
		var err error
		conn, err = grpc.NewClient(n.GRPCAddr,
			grpc.WithTransportCredentials(d.tls.ClientCredentials(tlsutil.RoleServer)),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return d.ops.DialContext(ctx, "tcp", addr)
			}))
		if err != nil {
			return nil, err
		}
		d.conns[n.GRPCAddr] = conn
	}
	return pb.NewOperatorClient(conn), nil
}

// Status asks the control plane for its status (what `drplane status`
// shows: a consistent read through the leader), from the ops host,
// trying the servers it reaches first.
func (d *Deployment) Status(ctx context.Context) (*pb.GetStatusResponse, error) {
	var errs []error
	for _, n := range d.serversByReach() {
		client, err := d.controlPlane(n)
		if err == nil {
			actx, cancel := context.WithTimeout(ctx, 3*time.Second)
			var resp *pb.GetStatusResponse
			resp, err = client.GetStatus(actx, &pb.GetStatusRequest{})
			cancel()
			if err == nil {
				return resp, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", n.ID, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("status: %w", errors.Join(errs...))
}

// EpochAndSite is the control plane's epoch and active site, for the
// checker.
func (d *Deployment) EpochAndSite(ctx context.Context) (uint64, string, error) {
	st, err := d.Status(ctx)
	if err != nil {
		return 0, "", err
	}
	return st.GetEpoch(), st.GetActiveSite(), nil
}

// AgentCheck judges the leader's view of an agent.
type AgentCheck func(a *pb.Agent, st *pb.GetStatusResponse) error

// HasRole is an AgentCheck: the leader reaches the agent and its service
// has role.
func HasRole(service, role string) AgentCheck {
	return func(a *pb.Agent, _ *pb.GetStatusResponse) error {
		p := a.GetProbe()
		if !p.GetReachable() {
			return fmt.Errorf("not reachable: %s", p.GetError())
		}
		for _, s := range p.GetServices() {
			if s.GetName() == service {
				if got := structs.RoleName(s.GetRole()); got != role {
					return fmt.Errorf("%s is %q, want %q", service, got, role)
				}
				return nil
			}
		}
		return fmt.Errorf("no service %s reported", service)
	}
}

// AtCurrentEpoch is an AgentCheck: the leader reaches the agent and it
// knows the cluster's epoch.
func AtCurrentEpoch(a *pb.Agent, st *pb.GetStatusResponse) error {
	p := a.GetProbe()
	if !p.GetReachable() {
		return fmt.Errorf("not reachable: %s", p.GetError())
	}
	if p.GetEpoch() != st.GetEpoch() {
		return fmt.Errorf("at epoch %d, the cluster at %d", p.GetEpoch(), st.GetEpoch())
	}
	return nil
}

// WaitForAgent polls the status until every check accepts the leader's
// view of host's agent.
func (d *Deployment) WaitForAgent(host string, timeout time.Duration, checks ...AgentCheck) {
	d.t.Helper()
	testutil.WaitForResult(d.t, timeout, func() (bool, error) {
		st, err := d.Status(context.Background())
		if err != nil {
			return false, err
		}
		err = findAgent(st, host, checks...)
		return err == nil, err
	})
}

// Execution is one entry of `drplane history [ID] --json`, decoded into
// the CLI's own type so that a field the CLI renames fails to decode here
// instead of reading as zero.
type Execution struct {
	cli.ExecutionJSON
}

// Step is one step of an Execution.
type Step = cli.StepJSON

// Step returns the step with the given id, or nil.
func (ex *Execution) Step(id string) *Step {
	for i := range ex.Steps {
		if ex.Steps[i].ID == id {
			return &ex.Steps[i]
		}
	}
	return nil
}

// Measured formats the execution's RTO and RPO for a log.
func (ex *Execution) Measured() string {
	f := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.2fs", *v)
	}
	return fmt.Sprintf("RTO %s, RPO %s", f(ex.RTOSeconds), f(ex.RPOSeconds))
}

// decodeStrict decodes the CLI's --json output into v, refusing a field v
// does not know: the harness reads the CLI's own types, so an unknown field
// means the binary under test and this code disagree about the contract.
func decodeStrict(out string, v any) error {
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("more than one JSON value")
	}
	return nil
}

// Executions lists every execution, oldest first (`drplane history
// --json`), without steps.
func (d *Deployment) Executions(ctx context.Context) ([]Execution, error) {
	out, err := d.CLI(ctx, "history", "--json")
	if err != nil {
		return nil, err
	}
	var list []Execution
	if err := decodeStrict(out, &list); err != nil {
		return nil, fmt.Errorf("decode history --json: %w: %q", err, out)
	}
	return list, nil
}

// Execution returns one execution with its steps (`drplane history ID
// --json`).
func (d *Deployment) Execution(ctx context.Context, id string) (*Execution, error) {
	out, err := d.CLI(ctx, "history", id, "--json")
	if err != nil {
		return nil, err
	}
	var ex Execution
	if err := decodeStrict(out, &ex); err != nil {
		return nil, fmt.Errorf("decode history %s --json: %w: %q", id, err, out)
	}
	return &ex, nil
}

// LastExecution returns the newest execution with its steps, failing the
// test when there is none.
func (d *Deployment) LastExecution() *Execution {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := d.Executions(ctx)
	if err != nil || len(list) == 0 {
		d.t.Fatalf("netns: no execution: %v", err)
	}
	ex, err := d.Execution(ctx, list[len(list)-1].ID)
	if err != nil {
		d.t.Fatalf("netns: %v", err)
	}
	return ex
}

// WaitForExecution polls until an execution satisfying match exists and
// has ended, and returns it with its steps.
func (d *Deployment) WaitForExecution(timeout time.Duration, match func(Execution) bool) *Execution {
	d.t.Helper()
	var found Execution
	testutil.WaitForResult(d.t, timeout, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		list, err := d.Executions(ctx)
		if err != nil {
			return false, err
		}
		for _, ex := range slices.Backward(list) {
			if match(ex) {
				found = ex
				return ex.Result != "running", fmt.Errorf("execution %s is %s", ex.ID, ex.Result)
			}
		}
		// What the leader's detector thinks is what explains a missing
		// automatic execution.
		why := ""
		if st, err := d.Status(ctx); err == nil {
			why = "; detector: " + st.GetAutomation().GetReason()
		}
		return false, fmt.Errorf("no matching execution among %d%s", len(list), why)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ex, err := d.Execution(ctx, found.ID)
	if err != nil {
		d.t.Fatalf("netns: %v", err)
	}
	return ex
}

// Leader returns the server the control plane names leader.
func (d *Deployment) Leader() *devcluster.Node {
	d.t.Helper()
	var leader *devcluster.Node
	testutil.WaitForResult(d.t, time.Minute, func() (bool, error) {
		st, err := d.Status(context.Background())
		if err != nil {
			return false, err
		}
		leader = d.Cluster.Node(st.GetLeaderId())
		return leader != nil, fmt.Errorf("leader %q", st.GetLeaderId())
	})
	return leader
}

// KillHost SIGKILLs every process of host (its server or agent, its
// services, its PostgreSQL), as a crash of the machine would.
func (d *Deployment) KillHost(host string) error {
	return d.Topo.Host(host).KillAll(10 * time.Second)
}

// KillSite kills every process of every host of site at once: they are
// all frozen first, so that none notices the others die.
func (d *Deployment) KillSite(site string) error {
	hosts := d.Topo.Site(site).Hosts
	for _, h := range hosts {
		if _, err := h.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
	}
	for _, h := range hosts {
		if err := h.KillAll(10 * time.Second); err != nil {
			return err
		}
	}
	return nil
}

// FreezeAgent stops (SIGSTOP) host's agent process alone, as a GC pause,
// stuck I/O or a paused VM would: its services and its lease guard run
// on. Cleanup continues it.
func (d *Deployment) FreezeAgent(host string) error {
	a := d.Cluster.Agent(host)
	if a == nil || a.Pid() == 0 {
		return fmt.Errorf("no agent runs on %s", host)
	}
	return FreezeProcess(a.Pid())
}

// ThawAgent continues (SIGCONT) host's frozen agent.
func (d *Deployment) ThawAgent(host string) error {
	a := d.Cluster.Agent(host)
	if a == nil || a.Pid() == 0 {
		return fmt.Errorf("no agent runs on %s", host)
	}
	return ThawProcess(a.Pid())
}

// FreezeProcess stops (SIGSTOP) one process; ThawProcess continues it.
func FreezeProcess(pid int) error { return syscall.Kill(pid, syscall.SIGSTOP) }

// ThawProcess continues (SIGCONT) a frozen process.
func ThawProcess(pid int) error { return syscall.Kill(pid, syscall.SIGCONT) }

// RestartHost starts the drplane processes of host again (its server or
// its agent) after KillHost; with database, a database host first starts
// its PostgreSQL as the machine's init system would at boot, before the
// agent, which then finds it running.
func (d *Deployment) RestartHost(host string, database bool) error {
	if database {
		p, ok := d.PG[host]
		if !ok {
			return fmt.Errorf("%s has no database", host)
		}
		if err := p.Start(); err != nil {
			return err
		}
	}
	if n := d.Cluster.Node(host); n != nil {
		return d.Cluster.StartNode(n)
	}
	if a := d.Cluster.Agent(host); a != nil {
		return a.Start()
	}
	return fmt.Errorf("no drplane process on %s", host)
}

// Rows returns the ids in the history table of host's database.
func (d *Deployment) Rows(ctx context.Context, host string) (map[int64]bool, error) {
	p := d.PG[host]
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := p.Connect(ctx, p.Host)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT id FROM history")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// StartChecker starts a history checker writing to both data sites'
// databases from their application hosts, following the control plane's
// status; it is stopped at cleanup if the test does not stop it.
func (d *Deployment) StartChecker() *Checker {
	d.t.Helper()
	return d.startChecker(nil)
}

// StartCheckerBehind starts a history checker as StartChecker does, with
// a third writer going through the load balancer lb.
func (d *Deployment) StartCheckerBehind(lb *HAProxy) *Checker {
	d.t.Helper()
	return d.startChecker(&ProxyTarget{Addr: lb.Addr, From: lb.From})
}

func (d *Deployment) startChecker(proxy *ProxyTarget) *Checker {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var targets []Target
	for _, site := range []string{"primary", "dr"} {
		targets = append(targets, Target{Site: site, DB: d.PG[DataSites[site].DB], From: d.Topo.Host(DataSites[site].App)})
	}
	c, err := StartChecker(ctx, CheckerConfig{Targets: targets, Status: d.EpochAndSite, Proxy: proxy})
	if err != nil {
		d.t.Fatalf("netns: %v", err)
	}
	d.t.Cleanup(func() { c.Stop() })
	return c
}

// WaitForAcks waits until the checker counted n more writes acknowledged
// by site's database than when called.
func (d *Deployment) WaitForAcks(c *Checker, site string, n int, timeout time.Duration) {
	d.t.Helper()
	base := c.Stats().AckedBySite[site]
	testutil.WaitForResult(d.t, timeout, func() (bool, error) {
		got := c.Stats().AckedBySite[site] - base
		return got >= n, fmt.Errorf("%d of %d writes acknowledged by %s", got, n, site)
	})
}

// LogTails prints the end of every log: servers, agents, databases.
func (d *Deployment) LogTails() {
	const n = 12 << 10
	if d.Cluster != nil {
		for _, s := range d.Cluster.Nodes {
			d.t.Logf("--- end of server %s log %s ---\n%s", s.ID, s.LogPath, devcluster.Tail(s.LogPath, n))
		}
		for _, a := range d.Cluster.Agents {
			d.t.Logf("--- end of agent %s log %s ---\n%s", a.HostID, a.LogPath, devcluster.Tail(a.LogPath, n))
		}
	}
	for _, h := range []string{"db-1", "db-2"} {
		if p := d.PG[h]; p != nil {
			d.t.Logf("--- end of PostgreSQL %s log %s ---\n%s", h, p.LogFile, devcluster.Tail(p.LogFile, 6<<10))
		}
	}
	d.mu.Lock()
	lb := d.lb
	d.mu.Unlock()
	if lb != nil {
		d.t.Logf("--- end of HAProxy log %s ---\n%s", lb.LogFile, devcluster.Tail(lb.LogFile, 6<<10))
	}
}

// cleanup prints the logs when the test failed, then stops every drplane
// process and every PostgreSQL server; the topology's teardown kills
// whatever is left.
func (d *Deployment) cleanup() {
	if d.t.Failed() {
		d.LogTails()
	}
	d.mu.Lock()
	for _, conn := range d.conns {
		_ = conn.Close()
	}
	d.conns = nil
	d.mu.Unlock()
	// Frozen processes cannot die of SIGKILL until continued.
	for _, h := range d.Topo.Hosts() {
		_, _ = h.Signal(syscall.SIGCONT)
	}
	if d.Cluster != nil {
		d.Cluster.Close()
	}
	if err := StopAllUnder(d.Dir); err != nil {
		d.t.Logf("netns: stop PostgreSQL: %v", err)
	}
}
