package e2e

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// idsSQL lists the rows of the test table in order.
const idsSQL = "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM trades"

// TestAgentPostgres_AdoptReplicatePromoteRejoin runs a real PostgreSQL
// primary and streaming standby, each owned by its own agent process, and
// switches them over the way a plan will: the agents adopt the running
// servers without restarting them, the standby's agent reports its
// replication position, the old primary is fenced once its site is no
// longer active, the standby is promoted with the new epoch, and the old
// primary is rewound with pg_rewind and follows the new one.
func TestAgentPostgres_AdoptReplicatePromoteRejoin(t *testing.T) {
	pair := pgtest.NewPair(t)
	// The driver starts a server with its socket in the data directory's
	// parent (its default socket dir), which PostgreSQL must be able to
	// write, as it can /var/lib/postgresql/15 on a packaged install.
	pgDir := filepath.Dir(pair.Primary.DataDir)
	giveToPostgres(t, pgDir)
	pidPrimary, pidStandby := pair.Primary.PostmasterPID(), pair.Standby.PostmasterPID()

	c := newAgentCluster(t, "primary")
	ctx := testContext(t, 3*time.Minute)
	dbA := startAgent(t, c, devcluster.AgentSpec{HostID: "db-a", Site: "primary", Services: []config.ServiceConfig{pgService(pair.Primary)}})
	dbB := startAgent(t, c, devcluster.AgentSpec{HostID: "db-b", Site: "dr", Services: []config.ServiceConfig{pgService(pair.Standby)}})

	// Adoption: once a leader granted db-a a lease (a boot lease has epoch
	// 0), its primary is safe from boot fencing; neither server was
	// restarted.
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		resp, err := probe(ctx, c, dbA, 1, "primary")
		if err != nil {
			return false, err
		}
		l := resp.GetLease()
		return l.GetValid() && l.GetEpoch() >= 1, fmt.Errorf("db-a has no lease granted by a leader yet: %v", l)
	})
	waitForAgent(t, c, "db-a", 30*time.Second, hasRole("postgres", "primary", false))
	waitForAgent(t, c, "db-b", 30*time.Second, hasRole("postgres", "standby", false))
	require.Equal(t, pidPrimary, pair.Primary.PostmasterPID(), "the agent must adopt the running primary, not restart it")
	require.Equal(t, pidStandby, pair.Standby.PostmasterPID(), "the agent must adopt the running standby, not restart it")

	// Rows written on the primary reach the standby, and the standby's
	// agent reports a replay position at least as far.
	pair.Exec(t, pair.Primary, "CREATE TABLE trades (id int PRIMARY KEY)")
	pair.Exec(t, pair.Primary, "INSERT INTO trades SELECT generate_series(1, 3)")
	written := parseLSN(t, pair.QueryString(t, pair.Primary, "SELECT pg_current_wal_lsn()::text"))
	pair.WaitFor(t, pair.Standby, "1,2,3", idsSQL)
	waitForAgent(t, c, "db-b", 30*time.Second, replayedAtLeast("postgres", written))

	// The dr site becomes active: the epoch moves on and db-a's lease is
	// no longer renewed, so its agent fences (stops) the old primary.
	epoch, err := c.SetActiveSite(ctx, "dr", "e2e: switch over to the dr standby")
	require.NoError(t, err)
	require.Equal(t, uint64(2), epoch)
	switchedAt := time.Now()
	testutil.WaitForResult(t, leaseTTL+15*time.Second, func() (bool, error) {
		pid := pair.Primary.PostmasterPID()
		return pid == 0, fmt.Errorf("the old primary still runs as pid %d", pid)
	})
	t.Logf("old primary fenced %s after the active site changed (lease_ttl %s)", time.Since(switchedAt).Round(time.Millisecond), leaseTTL)
	waitForAgent(t, c, "db-a", 30*time.Second, hasRole("postgres", "fenced", true))
	waitForAgent(t, c, "db-b", 30*time.Second, func(as cli.AgentJSON) error {
		if as.Epoch != epoch || !as.LeaseValid {
			return fmt.Errorf("epoch %d, lease valid %v; want epoch %d with a lease", as.Epoch, as.LeaseValid, epoch)
		}
		return nil
	})

	// A leader of the old epoch may no longer promote.
	_, _, err = c.Execute(ctx, dbB, promoteStep("stale-promote", epoch-1))
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	require.Equal(t, "true", pair.QueryString(t, pair.Standby, "SELECT pg_is_in_recovery()::text"))

	lines, res, err := c.Execute(ctx, dbB, promoteStep("promote-db-b", epoch))
	require.NoError(t, err)
	require.True(t, res.GetOk(), "promote: %s\n%s", res.GetMessage(), strings.Join(lines, "\n"))
	require.NotEmpty(t, res.GetOutputs()["position"])
	require.Equal(t, pidStandby, pair.Standby.PostmasterPID(), "promotion happens in place")
	pair.Exec(t, pair.Standby, "INSERT INTO trades VALUES (4)")
	waitForAgent(t, c, "db-b", 30*time.Second, hasRole("postgres", "primary", false))

	// The old primary is rewound onto the new primary's timeline and
	// follows it; rows written on the new primary replicate back.
	lines, res, err = c.Execute(ctx, dbA, &pb.ExecuteRequest{
		ExecutionId: "e2e-switchover", StepId: "rejoin-db-a", Epoch: epoch, Action: pb.StepAction_STEP_ACTION_DEMOTE, Target: "postgres",
		Args: map[string]string{"upstream_host": "127.0.0.1", "upstream_port": strconv.Itoa(pair.Standby.Port)},
	})
	require.NoError(t, err)
	progress := strings.Join(lines, "\n")
	require.True(t, res.GetOk(), "demote: %s\n%s", res.GetMessage(), progress)
	require.Contains(t, progress, "rewound", "the old primary must be rewound, not re-cloned")
	pair.Exec(t, pair.Standby, "INSERT INTO trades VALUES (5)")
	written = parseLSN(t, pair.QueryString(t, pair.Standby, "SELECT pg_current_wal_lsn()::text"))
	// The driver restarted the old primary with its socket in pgDir.
	rejoined := *pair.Primary
	rejoined.SocketDir = pgDir
	pair.WaitFor(t, &rejoined, "1,2,3,4,5", idsSQL)
	pair.WaitFor(t, &rejoined, "true", "SELECT pg_is_in_recovery()::text")
	waitForAgent(t, c, "db-a", 30*time.Second, replayedAtLeast("postgres", written))
	waitForAgent(t, c, "db-a", 30*time.Second, hasRole("postgres", "standby", false))
}

// pgService declares node as the agent's "postgres" service.
func pgService(n *pgtest.Node) config.ServiceConfig {
	return config.ServiceConfig{
		Name: "postgres", Driver: config.DriverPostgres, DataDir: n.DataDir, Port: n.Port,
		BinDir: pgtest.BinDir, RunAs: pgtest.RunAs, StopTimeout: 10 * time.Second,
	}
}

func promoteStep(stepID string, epoch uint64) *pb.ExecuteRequest {
	return &pb.ExecuteRequest{ExecutionId: "e2e-switchover", StepId: stepID, Epoch: epoch, Action: pb.StepAction_STEP_ACTION_PROMOTE, Target: "postgres",
		TimeoutMs: uint64((2 * time.Minute).Milliseconds())}
}

// replayedAtLeast is a waitForAgent check: service is a standby whose
// reported position is at or past lsn.
func replayedAtLeast(service string, lsn uint64) func(cli.AgentJSON) error {
	return func(as cli.AgentJSON) error {
		if role := as.Roles[service]; role != "standby" {
			return fmt.Errorf("%s is %q, not a standby", service, role)
		}
		lag, ok := as.Lag[service]
		if !ok {
			return fmt.Errorf("no replication reported for %s", service)
		}
		pos, err := lsnValue(lag.Position)
		if err != nil {
			return err
		}
		if pos < lsn {
			return fmt.Errorf("%s replayed up to %s, behind %X/%X (lag %d bytes, %d ms)", service, lag.Position, lsn>>32, uint32(lsn), lag.LagBytes, lag.LagMs)
		}
		return nil
	}
}

// parseLSN reads a PostgreSQL LSN ("16/B374D848") as a number.
func parseLSN(t testing.TB, s string) uint64 {
	t.Helper()
	v, err := lsnValue(s)
	require.NoError(t, err)
	return v
}

func lsnValue(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not an LSN", s)
	}
	return h<<32 | l, nil
}

// giveToPostgres hands dir to the PostgreSQL user.
func giveToPostgres(t testing.TB, dir string) {
	t.Helper()
	u, err := user.Lookup(pgtest.RunAs)
	require.NoError(t, err)
	uid, err := strconv.Atoi(u.Uid)
	require.NoError(t, err)
	gid, err := strconv.Atoi(u.Gid)
	require.NoError(t, err)
	require.NoError(t, os.Chown(dir, uid, gid))
}
