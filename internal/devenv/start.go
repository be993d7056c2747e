package devenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/devcluster"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// start brings the deployment up phase by phase and prints the ready
// line. The pid files are refreshed after every phase, so that a start
// interrupted half way is still a set of processes a script can see.
func (e *env) start(ctx context.Context) error {
	e.say("==> drplane dev: a local deployment in %s", e.dir)
	if err := e.layout(); err != nil {
		return err
	}
	// PostgreSQL is set up while the certificates are made and the
	// servers elect a leader. Its goroutine touches nothing but the
	// PostgreSQL directories, and is always waited for, so that cleanup
	// finds every server it started.
	pgDone := make(chan error, 1)
	if e.pg != nil {
		e.say("==> Starting PostgreSQL 15 as the %s user: primary on db-1 (port %d), streaming standby on db-2 (port %d)",
			pgRunAs, e.pg.primary.Port, e.pg.standby.Port)
		go func() { pgDone <- e.pg.start(ctx) }()
	} else {
		pgDone <- nil
	}
	err := e.startServers()
	if pgErr := <-pgDone; err == nil {
		err = pgErr
	}
	e.refreshPIDs()
	if err != nil {
		return err
	}
	if err := e.waitForServers(ctx); err != nil {
		return err
	}
	if err := e.startAgents(ctx); err != nil {
		return err
	}
	if err := e.startApplication(ctx); err != nil {
		return err
	}
	if err := e.waitReady(ctx); err != nil {
		return err
	}
	e.refreshPIDs()
	if err := e.writeInfo(); err != nil {
		return err
	}
	e.sayReady()
	return nil
}

// layout creates the hosts' directories and decides what can run here:
// PostgreSQL (installed, its user exists, we are root) and mount
// namespaces (root), without which the sample application's state is
// not synced.
func (e *env) layout() error {
	user, why := lookupPostgres()
	if user == nil {
		e.say("    PostgreSQL: not used (%s); the sample application keeps its state file only", why)
	} else if err := traversable(e.dir, e.opts.Logger); err != nil {
		return err
	}
	if err := mkdirMode(filepath.Join(e.dir, "hosts"), 0o711); err != nil {
		return err
	}
	if err := devcluster.MountNamespaces(); err != nil {
		e.say("    state sync: off (%v); each app host keeps its own state directory", err)
	} else {
		e.mounts = true
	}
	if user != nil {
		ports, err := devcluster.FreePorts(4)
		if err != nil {
			return err
		}
		if e.pg, err = newPGPair(user, e.hostDir("db-1"), e.hostDir("db-2"), ports); err != nil {
			return err
		}
		// Backups with point-in-time recovery when pgBackRest is there
		// (scripts/prerequisites demo installs it).
		_, err = exec.LookPath("pgbackrest")
		e.pg.backups = err == nil
	}
	e.hosts = []*host{{ID: "db-1", Site: SitePrimary}, {ID: "db-2", Site: SiteDR}, {ID: "app-1", Site: SitePrimary}, {ID: "app-2", Site: SiteDR}}
	if e.pg != nil {
		e.hosts[0].pg, e.hosts[1].pg = e.pg.primary, e.pg.standby
	}
	for _, h := range e.hosts[2:] {
		app, err := e.newAppHost(h.ID)
		if err != nil {
			return err
		}
		h.app = app
	}
	return nil
}

// hostDir is where a host's own files live: its disk.
func (e *env) hostDir(id string) string { return filepath.Join(e.dir, "hosts", id) }

// programme is the dev deployment's DR programme: the KPI objectives,
// New York's equity trading hours and an annual restore drill on New
// Year's Day, when the markets are closed (a slot that never comes while
// a dev deployment's own commands run).
const programme = `objectives {
  rto                        = "15m"
  drill_success_rate         = 0.95
  availability               = 0.995
  availability_trading_hours = 0.999
  mttr                       = "15m"
}
trading_hours "us-equities" {
  timezone = "America/New_York"
  days     = ["mon", "tue", "wed", "thu", "fri"]
  open     = "09:30"
  close    = "16:00"
}
schedule "annual-restore-drill" { plan = "restore"  drill = true  cron = "0 6 1 1 *"  timezone = "America/New_York" }
`

// startServers writes the certificates and configs of the three servers
// and starts them; the first one listens on opts.Port.
func (e *env) startServers() error {
	c, err := devcluster.New(e.opts.Bin, e.dir, []string{SitePrimary, SiteDR, SiteWitness})
	if err != nil {
		return fmt.Errorf("lay out the servers: %w", err)
	}
	e.c = c
	c.Failover = failover()
	c.Replication = e.opts.Replication
	c.Programme = programme
	if e.opts.Port != 0 {
		// StartNode writes every config from these addresses.
		c.Nodes[0].GRPCAddr = fmt.Sprintf("127.0.0.1:%d", e.opts.Port)
	}
	if err := e.writeEnvFile(); err != nil {
		return err
	}
	var names []string
	for _, n := range c.Nodes {
		names = append(names, fmt.Sprintf("%s (%s) %s", n.ID, n.Site, n.GRPCAddr))
	}
	e.say("==> Starting 3 servers: %s", strings.Join(names, ", "))
	if err := c.Start(); err != nil {
		return err
	}
	e.refreshPIDs()
	return nil
}

// waitForServers waits until a leader is elected and every server is a
// voter that knows its site.
func (e *env) waitForServers(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	// These poll through the CLI, so not as often as the gRPC polls.
	leader, err := e.c.WaitForLeader(wctx, cliPollInterval)
	if err != nil {
		return e.withLogs(fmt.Errorf("servers: %w", err))
	}
	if err := e.c.WaitForMembers(wctx, e.c.Nodes[0], cliPollInterval); err != nil {
		return e.withLogs(fmt.Errorf("servers: %w", err))
	}
	e.say("    leader: %s", leader)
	return nil
}

// startAgents adds, starts and waits for the four agents. The servers
// must have a leader first: an agent fences a primary it adopts unless a
// leader renews its lease within lease_ttl of its start.
func (e *env) startAgents(ctx context.Context) error {
	var agents []*devcluster.Agent
	for _, h := range e.hosts {
		a, err := e.c.AddAgent(e.agentSpec(h))
		if err != nil {
			return err
		}
		// A drill clones PostgreSQL into the agent's data dir, which the
		// postgres user must be able to reach.
		for _, d := range []string{filepath.Dir(a.Dir), a.Dir, a.DataDir} {
			if err := os.MkdirAll(d, 0o711); err != nil {
				return fmt.Errorf("agent %s: %w", h.ID, err)
			}
			if err := os.Chmod(d, 0o711); err != nil {
				return fmt.Errorf("agent %s: %w", h.ID, err)
			}
		}
		h.agent = a
		agents = append(agents, a)
	}
	e.say("==> Starting 4 agents: db-1, app-1 (primary); db-2, app-2 (dr)")
	for _, a := range agents {
		if err := a.Start(); err != nil {
			return err
		}
	}
	e.refreshPIDs()
	if err := e.pollStatus(ctx, "the agents registered and probed", e.agentsReady); err != nil {
		return err
	}
	if e.pg == nil {
		return nil
	}
	// db-1's agent fences the primary it adopted unless a leader renewed
	// its lease within lease_ttl of the agent's start, which a loaded
	// machine can miss. Like an operator, start it again through the
	// agent, which now holds a lease.
	fenced := false
	err := e.pollStatus(ctx, "the agents adopting PostgreSQL", func(st *pb.GetStatusResponse) error {
		if a, err := probed(st, "db-1"); err == nil && a.GetProbe().GetFenced() {
			fenced = true
			return nil
		}
		return e.postgresRolesReady(st)
	})
	if err != nil || !fenced {
		return err
	}
	e.say("    db-1's agent fenced the primary it adopted (no lease renewal within lease_ttl of its start); starting it again through the agent")
	if err := e.startService(ctx, e.host("db-1"), ServicePostgres); err != nil {
		return err
	}
	e.refreshPIDs()
	return e.pollStatus(ctx, "PostgreSQL on db-1 started again", e.postgresRolesReady)
}

// startApplication starts the sample application on app-1. An agent
// never starts a service on its own, and the active site's application
// has to run before the first plan.
func (e *env) startApplication(ctx context.Context) error {
	e.say("==> Starting %s on app-1 (the active site's application host) with a start step, as the leader would", ServiceApp)
	if err := e.startService(ctx, e.host("app-1"), ServiceApp); err != nil {
		return err
	}
	e.refreshPIDs()
	return nil
}

// startService starts service on h the way the leader's plans do: a
// start step sent to its agent (with a server certificate) at the
// current epoch, which renews the agent's lease, starts the service and
// waits for its health check.
func (e *env) startService(ctx context.Context, h *host, service string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	st, err := e.status(ctx)
	if err != nil {
		return err
	}
	e.steps++
	lines, res, err := e.c.Execute(ctx, h.agent, &pb.ExecuteRequest{
		ExecutionId: "dev-bootstrap", StepId: fmt.Sprintf("start-%s-%s-%d", service, h.ID, e.steps), Epoch: st.GetEpoch(),
		Action: pb.StepAction_STEP_ACTION_START, Target: service, TimeoutMs: uint64(time.Minute.Milliseconds()),
	})
	if err != nil {
		return e.withLogs(fmt.Errorf("start %s on %s: %w", service, h.ID, err))
	}
	if !res.GetOk() {
		return e.withLogs(fmt.Errorf("start %s on %s: %s\n%s", service, h.ID, res.GetMessage(), strings.Join(lines, "\n")))
	}
	return nil
}

// host returns the host with the given id.
func (e *env) host(id string) *host {
	for _, h := range e.hosts {
		if h.ID == id {
			return h
		}
	}
	panic("devenv: no host " + id)
}

// sayReady prints the ready line and how to use the deployment.
func (e *env) sayReady() {
	what := "postgres primary db-1 streaming to standby db-2, " + ServiceApp + " on app-1 writing rows"
	if e.pg == nil {
		what = ServiceApp + " on app-1 (no PostgreSQL)"
	}
	e.say("ready: 3 servers, 4 agents, %s; env: %s", what, e.envFile())
	e.say(`
    source %s            # DRPLANE_ADDR lists every server; the CLI tries them in turn
    drplane status
    drplane drill --yes
    drplane switchover --to dr --yes
    kill -9 $(cat %s/pids/primary/*.pid)     # a primary site outage: automatic failover follows
    drplane report --markdown

    Ctrl-C stops everything%s.`, e.envFile(), e.dir, map[bool]string{false: " and removes " + e.dir, true: "; " + e.dir + " is kept"}[e.keep])
}
