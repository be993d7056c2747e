package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/testing/clustertest"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// planSites is a real deployment for plan tests: three servers (primary,
// dr, witness), a PostgreSQL primary and streaming standby each owned by
// its agent, and an application host per site whose engine depends on
// the database and whose gateway depends on the engine.
type planSites struct {
	c          *clustertest.Cluster
	pair       *pgtest.Pair
	pgDir      string
	db1, db2   *devcluster.Agent
	app1, app2 *devcluster.Agent
}

func newPlanSites(t testing.TB) *planSites {
	t.Helper()
	return newPlanSitesWith(t, nil)
}

// newPlanSitesWith is newPlanSites with edit applied to the postgres
// service of each database host before its agent starts.
func newPlanSitesWith(t testing.TB, edit func(hostID string, svc *config.ServiceConfig)) *planSites {
	t.Helper()
	ps := &planSites{pair: pgtest.NewPair(t)}
	ps.pgDir = filepath.Dir(ps.pair.Primary.DataDir)
	giveToPostgres(t, ps.pgDir)
	ps.c = newAgentCluster(t, "primary", "dr", "witness")
	pg := func(n *pgtest.Node) config.ServiceConfig {
		svc := pgService(n)
		svc.Drill = &config.DrillConfig{Port: freeTCPPort(t)}
		if edit != nil {
			host := "db-1"
			if n == ps.pair.Standby {
				host = "db-2"
			}
			edit(host, &svc)
		}
		return svc
	}
	engine := config.ServiceConfig{
		Name: "engine", Driver: config.DriverProcess, DependsOn: []string{"postgres"},
		Command: []string{"/bin/sleep", "86400"}, StopTimeout: 5 * time.Second,
		Drill: &config.DrillConfig{Env: map[string]string{"MODE": "drill"}},
	}
	ps.db1 = startAgent(t, ps.c, devcluster.AgentSpec{HostID: "db-1", Site: "primary", Services: []config.ServiceConfig{pg(ps.pair.Primary)}})
	ps.db2 = startAgent(t, ps.c, devcluster.AgentSpec{HostID: "db-2", Site: "dr", Services: []config.ServiceConfig{pg(ps.pair.Standby)}})
	gateway := engine
	gateway.Name, gateway.DependsOn = "gateway", []string{"engine"}
	apps := []config.ServiceConfig{engine, gateway}
	ps.app1 = startAgent(t, ps.c, devcluster.AgentSpec{HostID: "app-1", Site: "primary", Services: apps})
	ps.app2 = startAgent(t, ps.c, devcluster.AgentSpec{HostID: "app-2", Site: "dr", Services: apps})
	// A drill clones the standby into the agent's data dir, where
	// PostgreSQL (run_as) must be able to reach it.
	traversable(t, ps.db2.DataDir)
	traversable(t, ps.db1.DataDir)
	waitForAgent(t, ps.c, "db-1", 30*time.Second, hasRole("postgres", "primary", false))
	waitForAgent(t, ps.c, "db-2", 30*time.Second, hasRole("postgres", "standby", false))
	ps.pair.Exec(t, ps.pair.Primary, "CREATE TABLE trades (id int PRIMARY KEY)")
	return ps
}

// cli runs a drplane command against the first running server.
func (ps *planSites) cli(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return cliAny(t, ps.c, args...)
}

// node is pgtest's view of a cluster the driver may have restarted, whose
// socket then lives in the data directory's parent.
func (ps *planSites) node(n *pgtest.Node) *pgtest.Node {
	c := *n
	c.SocketDir = ps.pgDir
	return &c
}

// writer inserts numbered rows into whichever node is given until stopped
// and remembers which inserts were acknowledged.
type writer struct {
	mu    sync.Mutex
	acked []int
	stop  chan struct{}
	done  chan struct{}
}

func startWriter(t testing.TB, n *pgtest.Node) *writer {
	t.Helper()
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		ctx := context.Background()
		var conn *pgx.Conn
		for id := 1; ; id++ {
			select {
			case <-w.stop:
				if conn != nil {
					_ = conn.Close(ctx)
				}
				return
			default:
			}
			if conn == nil {
				c, err := pgx.Connect(ctx, n.ConnString())
				if err != nil {
					time.Sleep(20 * time.Millisecond) // the database is down; retry
					continue
				}
				conn = c
			}
			if _, err := conn.Exec(ctx, "INSERT INTO trades VALUES ($1)", id); err != nil {
				_ = conn.Close(ctx)
				conn = nil
				continue
			}
			w.mu.Lock()
			w.acked = append(w.acked, id)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) finish() []int {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// requireRows asserts every id in acked is a row on n.
func requireRows(t testing.TB, pair *pgtest.Pair, n *pgtest.Node, acked []int) {
	t.Helper()
	have := map[string]bool{}
	for _, id := range strings.Split(pair.QueryString(t, n, idsSQL), ",") {
		have[id] = true
	}
	var lost []int
	for _, id := range acked {
		if !have[fmt.Sprint(id)] {
			lost = append(lost, id)
		}
	}
	require.Empty(t, lost, "acknowledged rows missing on the new primary (%d acknowledged)", len(acked))
}

// lastExecution returns the newest execution with its steps.
func (ps *planSites) lastExecution(t testing.TB) cli.ExecutionJSON {
	t.Helper()
	out, err := ps.cli(t, "history", "--json")
	require.NoError(t, err)
	var list []cli.ExecutionJSON
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.NotEmpty(t, list)
	out, err = ps.cli(t, "history", list[len(list)-1].ID, "--json")
	require.NoError(t, err)
	var ex cli.ExecutionJSON
	require.NoError(t, json.Unmarshal([]byte(out), &ex))
	return ex
}

// traversable gives everyone search (o+x) permission on dir and its
// parents, as /var/lib is on a real host.
func traversable(t testing.TB, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	for p := dir; p != "/" && p != "."; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(p, fi.Mode().Perm()|0o001))
	}
}

// freeTCPPort is a free port no deployment of this test process was
// handed before.
func freeTCPPort(t testing.TB) int {
	t.Helper()
	ports, err := devcluster.FreePorts(1)
	require.NoError(t, err)
	return ports[0]
}

// TestPlans_SwitchoverUnderWrites_ThenFailback switches over to dr while a
// writer commits rows, checks that every acknowledged row is on the new
// primary and the old one rejoined as its standby, then fails back.
func TestPlans_SwitchoverUnderWrites_ThenFailback(t *testing.T) {
	ps := newPlanSites(t)
	pair := ps.pair

	out, err := ps.cli(t, "plan", "show", "failover", "--to", "dr")
	require.NoError(t, err, out)
	require.Contains(t, out, "promote:postgres@db-2")
	t.Logf("plan show:\n%s", out)

	w := startWriter(t, pair.Primary)
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		return w.count() >= 50, fmt.Errorf("%d rows written", w.count())
	})
	out, err = ps.cli(t, "switchover", "--to", "dr", "--yes")
	acked := w.finish()
	require.NoError(t, err, out)
	require.Contains(t, out, "succeeded")
	t.Logf("switchover:\n%s", out)

	require.Equal(t, "false", pair.QueryString(t, pair.Standby, "SELECT pg_is_in_recovery()::text"), "dr is the primary")
	requireRows(t, pair, pair.Standby, acked)
	ex := ps.lastExecution(t)
	require.Equal(t, "succeeded", ex.Result)
	require.NotNil(t, ex.RPOSeconds)
	require.Zero(t, *ex.RPOSeconds, "a switchover loses nothing")
	// The old primary was reprotected: it follows the new one.
	pair.Exec(t, pair.Standby, "INSERT INTO trades VALUES (1000000)")
	pair.WaitFor(t, ps.node(pair.Primary), "true", "SELECT pg_is_in_recovery()::text")
	pair.WaitFor(t, ps.node(pair.Primary), "1", "SELECT count(*) FROM trades WHERE id = 1000000")
	waitForAgent(t, ps.c, "app-2", 30*time.Second, hasRole("engine", "primary", false))

	out, err = ps.cli(t, "failback", "--yes")
	require.NoError(t, err, out)
	t.Logf("failback:\n%s", out)
	primary := ps.node(pair.Primary)
	require.Equal(t, "false", pair.QueryString(t, primary, "SELECT pg_is_in_recovery()::text"), "the original site is primary again")
	requireRows(t, pair, primary, append(acked, 1000000))
	pair.Exec(t, primary, "INSERT INTO trades VALUES (1000001)")
	pair.WaitFor(t, ps.node(pair.Standby), "1", "SELECT count(*) FROM trades WHERE id = 1000001")
	waitForAgent(t, ps.c, "app-1", 30*time.Second, hasRole("engine", "primary", false))
	waitForAgent(t, ps.c, "app-2", 30*time.Second, hasRole("engine", "stopped", false))
}

// TestPlans_DrillThenFailoverAfterPrimaryLoss runs a drill next to
// production, then kills the primary database and fails over by command.
func TestPlans_DrillThenFailoverAfterPrimaryLoss(t *testing.T) {
	ps := newPlanSites(t)
	pair := ps.pair
	pair.Exec(t, pair.Primary, "INSERT INTO trades SELECT generate_series(1, 10)")
	pidPrimary := pair.Primary.PostmasterPID()

	out, err := ps.cli(t, "drill", "--yes")
	require.NoError(t, err, out)
	t.Logf("drill:\n%s", out)
	// Production is untouched: same primary process, same epoch, the
	// standby still streams.
	require.Equal(t, pidPrimary, pair.Primary.PostmasterPID())
	pair.Exec(t, pair.Primary, "INSERT INTO trades VALUES (11)")
	pair.WaitFor(t, pair.Standby, "11", "SELECT count(*) FROM trades")
	st, err := ps.c.Status(testContext(t, time.Minute))
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.Epoch)
	entries, err := os.ReadDir(filepath.Join(ps.db2.DataDir, "drill"))
	if err == nil {
		for _, e := range entries {
			sub, _ := os.ReadDir(filepath.Join(ps.db2.DataDir, "drill", e.Name()))
			require.Empty(t, sub, "the drill copy of %s was torn down", e.Name())
		}
	}

	// The primary database dies; the operator fails over.
	require.NoError(t, syscall.Kill(pair.Primary.PostmasterPID(), syscall.SIGKILL))
	out, err = ps.cli(t, "failover", "--to", "dr", "--yes")
	require.NoError(t, err, out)
	t.Logf("failover:\n%s", out)
	require.Equal(t, "false", pair.QueryString(t, pair.Standby, "SELECT pg_is_in_recovery()::text"))
	require.Equal(t, "11", pair.QueryString(t, pair.Standby, "SELECT count(*) FROM trades"), "every committed row was replicated before the loss")
	waitForAgent(t, ps.c, "app-2", 30*time.Second, hasRole("engine", "primary", false))

	out, err = ps.cli(t, "report", "--markdown")
	require.NoError(t, err, out)
	t.Logf("report:\n%s", out)
	require.Contains(t, out, "| drill at dr |")
	require.Contains(t, out, "| failover primary -> dr |")
}

// TestPlans_Restart_CrashedApplications: the engine and gateway of the
// primary site are not running (a failed application host), and the
// database takes writes. `drplane restart --service engine` refuses an
// unknown service before anything stops, then restarts the engine and the
// gateway that depends on it, in order, each health-gated, leaving the
// database's postmaster alone; a full `drplane restart` restarts the
// database too, and no acknowledged row is lost.
func TestPlans_Restart_CrashedApplications(t *testing.T) {
	ps := newPlanSites(t)
	pair := ps.pair
	for _, svc := range []string{"engine", "gateway"} {
		pid, err := ps.app1.ServicePID(svc)
		require.NoError(t, err)
		require.Zero(t, pid, "%s does not run yet", svc)
	}
	postmaster := pair.Primary.PostmasterPID()
	require.NotZero(t, postmaster)

	out, err := ps.cli(t, "restart", "--service", "engin", "--yes")
	require.Error(t, err)
	require.Contains(t, out+err.Error(), `declares service "engin"; did you mean "engine"?`)

	// Over TCP: a restarted postmaster puts its socket elsewhere.
	tcp := *pair.Primary
	tcp.SocketDir = "127.0.0.1"
	w := startWriter(t, &tcp)
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		return w.count() >= 20, fmt.Errorf("%d rows written", w.count())
	})
	out, err = ps.cli(t, "restart", "--service", "engine", "--yes")
	require.NoError(t, err, out)
	t.Logf("restart --service engine:\n%s", out)
	ex := ps.lastExecution(t)
	require.Equal(t, "succeeded", ex.Result, ex.Message)
	require.Equal(t, "restart", ex.Kind)
	require.NotNil(t, ex.RTOSeconds)
	require.NotNil(t, ex.RPOSeconds)
	require.Zero(t, *ex.RPOSeconds)
	started := map[string]time.Time{}
	for _, st := range ex.Steps {
		if st.Action == "start" {
			require.NotNil(t, st.Ended, st.ID)
			started[st.ID] = *st.Ended
		}
		require.NotEqual(t, "postgres", st.Target, "postgres is not restarted by --service engine")
	}
	require.Len(t, started, 2)
	require.True(t, started["start:engine@app-1"].Before(started["start:gateway@app-1"]), "the gateway starts after the engine it depends on")
	for _, svc := range []string{"engine", "gateway"} {
		pid, err := ps.app1.ServicePID(svc)
		require.NoError(t, err)
		require.NotZero(t, pid, "%s runs", svc)
	}
	require.Equal(t, postmaster, pair.Primary.PostmasterPID(), "the database kept running")

	out, err = ps.cli(t, "restart", "--yes")
	require.NoError(t, err, out)
	ex = ps.lastExecution(t)
	require.Equal(t, "succeeded", ex.Result, ex.Message)
	primary := ps.node(pair.Primary)
	require.NotEqual(t, postmaster, primary.PostmasterPID(), "a full restart restarts the database")
	waitForAgent(t, ps.c, "db-1", 30*time.Second, hasRole("postgres", "primary", false))
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		n := w.count()
		time.Sleep(200 * time.Millisecond)
		return w.count() > n, fmt.Errorf("the writer is not writing again (%d rows)", n)
	})
	acked := w.finish()
	requireRows(t, pair, primary, acked)
	t.Logf("full restart: %s; RTO %.2fs, RPO %.2fs; %d acknowledged rows, none lost", ex.Message, *ex.RTOSeconds, *ex.RPOSeconds, len(acked))
}
