package driver_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// progressLog collects a driver's progress lines, as the agent streams
// them to the leader.
type progressLog struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
}

// add is a driver.Progress.
func (l *progressLog) add(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	l.t.Log("progress: " + line)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

// has reports whether a line starting with prefix was reported.
func (l *progressLog) has(prefix string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// reset forgets the lines seen so far.
func (l *progressLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = nil
}

// newPostgresDriver is one agent's driver of node.
func newPostgresDriver(t *testing.T, node *pgtest.Node) *driver.Postgres {
	t.Helper()
	logger := hclog.New(&hclog.LoggerOptions{Name: node.Name, Output: testWriter{t}, Level: hclog.Debug})
	d, err := driver.NewPostgres(pgtest.PostgresConfig(node), logger)
	require.NoError(t, err)
	return d
}

// testWriter sends log output through t.Log, shown only on failure.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// testContext is a context for one test's driver calls.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// requireRole checks what Status reports for d.
func requireRole(ctx context.Context, t *testing.T, d *driver.Postgres, want driver.Role) driver.Status {
	t.Helper()
	st, err := d.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, want, st.Role, st.Message)
	return st
}

// TestPostgres_Failover runs a switchover the way the agents would:
// replicate, stop the primary, promote the standby, rejoin the old
// primary with pg_rewind and replicate back. The old primary is made to
// diverge first (a write the standby never received), so the rewind
// has real work to do.
func TestPostgres_Failover(t *testing.T) {
	t.Parallel()
	pair := pgtest.NewPair(t)
	ctx := testContext(t)
	oldPrimary, oldStandby := newPostgresDriver(t, pair.Primary), newPostgresDriver(t, pair.Standby)
	progress := &progressLog{t: t}

	// Rows written on the primary reach the standby.
	pair.Exec(t, pair.Primary, "CREATE TABLE t (id int PRIMARY KEY, note text)")
	pair.Exec(t, pair.Primary, "INSERT INTO t VALUES (1, 'before failover')")
	pair.WaitFor(t, pair.Standby, "1", "SELECT count(*)::text FROM t")

	st := requireRole(ctx, t, oldPrimary, driver.RolePrimary)
	require.NotEmpty(t, st.Replication.Position)
	requireStandbyLag(ctx, t, pair, oldStandby)

	// Cut the standby off, then write what it will never see.
	pair.Exec(t, pair.Standby, "ALTER SYSTEM SET primary_conninfo = ''")
	pair.Exec(t, pair.Standby, "SELECT pg_reload_conf()")
	pair.WaitFor(t, pair.Standby, "0", "SELECT count(*)::text FROM pg_stat_wal_receiver")
	pair.Exec(t, pair.Primary, "INSERT INTO t VALUES (2, 'lost in failover')")

	require.NoError(t, oldPrimary.Stop(ctx, progress.add))
	requireRole(ctx, t, oldPrimary, driver.RoleStopped)

	lsn, err := oldStandby.Promote(ctx, driver.PromoteOptions{}, progress.add)
	require.NoError(t, err)
	require.Regexp(t, `^[0-9A-F]+/[0-9A-F]+$`, lsn)
	requireRole(ctx, t, oldStandby, driver.RolePrimary)
	pair.Exec(t, pair.Standby, "INSERT INTO t VALUES (3, 'after failover')")

	// Promote on a primary reports where it is and changes nothing.
	again, err := oldStandby.Promote(ctx, driver.PromoteOptions{}, progress.add)
	require.NoError(t, err)
	require.NotEmpty(t, again)

	up := driver.Upstream{Host: "127.0.0.1", Port: pair.Standby.Port}
	progress.reset()
	require.NoError(t, oldPrimary.Demote(ctx, up, progress.add))
	require.True(t, progress.has("pg_rewind from 127.0.0.1:"), "progress: %v", progress.lines)
	require.False(t, progress.has("rewind failed"), "progress: %v", progress.lines)
	requireRole(ctx, t, oldPrimary, driver.RoleStandby)

	// The rewound node has the new primary's history: row 2 is gone, and
	// new rows replicate to it.
	pair.Exec(t, pair.Standby, "INSERT INTO t VALUES (4, 'replicated back')")
	pair.WaitFor(t, pair.Primary, "1,3,4", "SELECT string_agg(id::text, ',' ORDER BY id) FROM t")

	// Demote to the upstream it already follows is a no-op.
	pid := pair.Primary.PostmasterPID()
	progress.reset()
	require.NoError(t, oldPrimary.Demote(ctx, up, progress.add))
	require.True(t, progress.has("already a standby"), "progress: %v", progress.lines)
	require.Equal(t, pid, pair.Primary.PostmasterPID())
}

// requireStandbyLag pauses replay on the standby so received WAL waits
// unreplayed, and checks that Status reports the positions and the lag,
// then resumes replay and checks the lag is gone.
func requireStandbyLag(ctx context.Context, t *testing.T, pair *pgtest.Pair, standby *driver.Postgres) {
	t.Helper()
	pair.Exec(t, pair.Standby, "SELECT pg_wal_replay_pause()")
	pair.Exec(t, pair.Primary, "INSERT INTO t SELECT g, 'lagging' FROM generate_series(100, 1099) g")
	pair.WaitFor(t, pair.Standby, "true", "SELECT (pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn())::text")

	st := requireRole(ctx, t, standby, driver.RoleStandby)
	r := st.Replication
	require.NotEmpty(t, r.Position)
	require.NotEmpty(t, r.ReceivePosition)
	require.NotZero(t, r.LagBytes)
	require.Positive(t, r.Lag)
	require.False(t, r.LastReplayAt.IsZero())

	pair.Exec(t, pair.Standby, "SELECT pg_wal_replay_resume()")
	pair.WaitFor(t, pair.Standby, "1000", "SELECT count(*)::text FROM t WHERE note = 'lagging'")
	st = requireRole(ctx, t, standby, driver.RoleStandby)
	require.Zero(t, st.Replication.LagBytes)
	require.Zero(t, st.Replication.Lag)
	pair.Exec(t, pair.Primary, "DELETE FROM t WHERE note = 'lagging'")
}

// TestPostgres_AdoptStartStop checks that a driver created while the
// cluster runs adopts it without a restart, and that Start and Stop are
// idempotent.
func TestPostgres_AdoptStartStop(t *testing.T) {
	t.Parallel()
	pair := pgtest.NewPair(t)
	ctx := testContext(t)
	progress := &progressLog{t: t}
	primary, standby := newPostgresDriver(t, pair.Primary), newPostgresDriver(t, pair.Standby)

	pid := pair.Primary.PostmasterPID()
	requireRole(ctx, t, primary, driver.RolePrimary)
	requireRole(ctx, t, standby, driver.RoleStandby)
	require.NoError(t, primary.Start(ctx, progress.add))
	require.True(t, progress.has("already running"), "progress: %v", progress.lines)
	require.Equal(t, pid, pair.Primary.PostmasterPID(), "adopting must not restart")

	for range 2 {
		require.NoError(t, primary.Stop(ctx, progress.add))
		requireRole(ctx, t, primary, driver.RoleStopped)
		require.Zero(t, pair.Primary.PostmasterPID())
	}
	for range 2 {
		require.NoError(t, primary.Start(ctx, progress.add))
		requireRole(ctx, t, primary, driver.RolePrimary)
	}
	restarted := pair.Primary.PostmasterPID()
	require.NotZero(t, restarted)
	require.NotEqual(t, pid, restarted)

	// The standby reconnects to the restarted primary; Fence stops it.
	pair.WaitStreaming(t, pair.Standby)
	require.NoError(t, standby.Fence(ctx))
	requireRole(ctx, t, standby, driver.RoleStopped)
	_, err := standby.Promote(ctx, driver.PromoteOptions{}, progress.add)
	require.ErrorIs(t, err, driver.ErrPostgresNotRunning)
}

// TestPostgres_DemoteFallsBackToBasebackup breaks the old primary's data
// so pg_rewind cannot work (its pg_control is gone): Demote must re-clone
// it with pg_basebackup. Before that, a demote to an unreachable upstream
// fails both ways and must put the old data directory back.
func TestPostgres_DemoteFallsBackToBasebackup(t *testing.T) {
	t.Parallel()
	pair := pgtest.NewPair(t)
	ctx := testContext(t)
	progress := &progressLog{t: t}
	oldPrimary, oldStandby := newPostgresDriver(t, pair.Primary), newPostgresDriver(t, pair.Standby)
	pair.Exec(t, pair.Primary, "CREATE TABLE t (id int)")

	require.NoError(t, oldPrimary.Stop(ctx, progress.add))
	require.NoError(t, os.Remove(filepath.Join(pair.Primary.DataDir, "global", "pg_control")))

	dead := driver.Upstream{Host: "127.0.0.1", Port: closedPort(t)}
	require.Error(t, oldPrimary.Demote(ctx, dead, progress.add))
	require.True(t, progress.has("clone failed; restoring"), "progress: %v", progress.lines)
	require.FileExists(t, filepath.Join(pair.Primary.DataDir, "PG_VERSION"))
	requireNoAsideDirs(t, pair.Primary.DataDir)

	_, err := oldStandby.Promote(ctx, driver.PromoteOptions{}, progress.add)
	require.NoError(t, err)
	pair.Exec(t, pair.Standby, "INSERT INTO t VALUES (7)")

	progress.reset()
	up := driver.Upstream{Host: "127.0.0.1", Port: pair.Standby.Port}
	require.NoError(t, oldPrimary.Demote(ctx, up, progress.add))
	require.True(t, progress.has("rewind failed"), "progress: %v", progress.lines)
	require.True(t, progress.has("pg_basebackup from 127.0.0.1:"), "progress: %v", progress.lines)
	requireRole(ctx, t, oldPrimary, driver.RoleStandby)
	requireNoAsideDirs(t, pair.Primary.DataDir)

	pair.Exec(t, pair.Standby, "INSERT INTO t VALUES (8)")
	pair.WaitFor(t, pair.Primary, "7,8", "SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
}

// closedPort returns a port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// requireNoAsideDirs checks that no moved-aside data directory is left.
func requireNoAsideDirs(t *testing.T, dataDir string) {
	t.Helper()
	aside, err := filepath.Glob(dataDir + ".drplane-old-*")
	require.NoError(t, err)
	require.Empty(t, aside)
}

// TestPostgres_StandbyRemembersWhenItLastHeardFromItsPrimary: once the
// primary is gone, pg_stat_wal_receiver no longer says when the standby
// last heard from it, but the driver does: the control plane bounds the
// outage's start by it after a change of leader.
func TestPostgres_StandbyRemembersWhenItLastHeardFromItsPrimary(t *testing.T) {
	t.Parallel()
	pair := pgtest.NewPair(t)
	ctx := testContext(t)
	primary, standby := newPostgresDriver(t, pair.Primary), newPostgresDriver(t, pair.Standby)
	pair.Exec(t, pair.Primary, "CREATE TABLE t (id int)")
	pair.Exec(t, pair.Primary, "INSERT INTO t VALUES (1)")
	pair.WaitFor(t, pair.Standby, "1", "SELECT count(*)::text FROM t")
	heard := requireRole(ctx, t, standby, driver.RoleStandby).Replication.LastReceivedAt
	require.False(t, heard.IsZero(), "a streaming standby says when it last heard from its primary")

	require.NoError(t, primary.Stop(ctx, func(string, ...any) {}))
	stoppedAt := time.Now()
	pair.WaitFor(t, pair.Standby, "0", "SELECT count(*)::text FROM pg_stat_wal_receiver WHERE status = 'streaming'")
	st := requireRole(ctx, t, standby, driver.RoleStandby)
	require.False(t, st.Replication.LastReceivedAt.IsZero(), "the time is kept once the receiver stopped")
	require.False(t, st.Replication.LastReceivedAt.Before(heard))
	require.False(t, st.Replication.LastReceivedAt.After(stoppedAt), "nothing was heard after the primary stopped")

	_, err := standby.Promote(ctx, driver.PromoteOptions{}, func(string, ...any) {})
	require.NoError(t, err)
	require.True(t, requireRole(ctx, t, standby, driver.RolePrimary).Replication.LastReceivedAt.IsZero(), "a primary hears from no one")
}
