package driver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// commitWithin is how long a commit that waits for no standby may take.
const commitWithin = 5 * time.Second

// newPostgresDriverAs is the driver of node whose standbys stream as
// applicationName, as the agent of that host id builds it.
func newPostgresDriverAs(t *testing.T, node *pgtest.Node, applicationName string) *driver.Postgres {
	t.Helper()
	cfg := pgtest.PostgresConfig(node)
	cfg.ApplicationName = applicationName
	logger := hclog.New(&hclog.LoggerOptions{Name: node.Name, Output: testWriter{t}, Level: hclog.Debug})
	d, err := driver.NewPostgres(cfg, logger)
	require.NoError(t, err)
	return d
}

// execWithin runs sql on n with a deadline: a commit that waits for a
// standby that never confirms it fails instead of hanging the test.
func execWithin(n *pgtest.Node, timeout time.Duration, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.ConnString())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// standbyNamed returns the standby the primary's status lists as name.
func standbyNamed(st driver.Status, name string) (driver.StandbyReplication, bool) {
	for _, s := range st.Replication.Standbys {
		if s.ApplicationName == name {
			return s, true
		}
	}
	return driver.StandbyReplication{}, false
}

// waitStandbyState polls the primary's status until it lists the standby
// name with syncState.
func waitStandbyState(ctx context.Context, t *testing.T, primary *driver.Postgres, name, syncState string) driver.StandbyReplication {
	t.Helper()
	var found driver.StandbyReplication
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		st := requireRole(ctx, t, primary, driver.RolePrimary)
		s, ok := standbyNamed(st, name)
		found = s
		return ok && s.State == "streaming" && s.SyncState == syncState,
			fmt.Errorf("standby %q not streaming %s: %+v", name, syncState, st.Replication.Standbys)
	})
	return found
}

// TestPostgres_SyncStandbys: a standby made by Demote streams under the
// driver's application name, which both sides report; the primary then
// waits for it once SetSyncStandbys names it, reports the setting in the
// canonical format, and stops waiting when it is reset. A standby made
// by pg_basebackup -R streams as "walreceiver".
func TestPostgres_SyncStandbys(t *testing.T) {
	t.Parallel()
	pair := pgtest.NewPair(t)
	ctx := testContext(t)
	progress := &progressLog{t: t}
	primary, standby := newPostgresDriver(t, pair.Primary), newPostgresDriverAs(t, pair.Standby, "db-2")

	require.Equal(t, "walreceiver", requireRole(ctx, t, standby, driver.RoleStandby).Replication.ApplicationName)
	waitStandbyState(ctx, t, primary, "walreceiver", "async")

	// Demote re-points the stopped standby at the primary, as it would
	// after a failover; it now streams as db-2.
	require.NoError(t, standby.Stop(ctx, progress.add))
	require.NoError(t, standby.Demote(ctx, driver.Upstream{Host: "127.0.0.1", Port: pair.Primary.Port}, progress.add))
	require.Equal(t, "db-2", requireRole(ctx, t, standby, driver.RoleStandby).Replication.ApplicationName)
	s := waitStandbyState(ctx, t, primary, "db-2", "async")
	require.Equal(t, "127.0.0.1", s.ClientAddr)
	require.NotEmpty(t, s.FlushPosition)
	require.NotEmpty(t, s.ReplayPosition)
	require.Empty(t, requireRole(ctx, t, primary, driver.RolePrimary).Replication.SynchronousStandbyNames)

	pos, err := primary.SetSyncStandbys(ctx, []string{"db-2"}, progress.add)
	require.NoError(t, err)
	setAt, err := driver.ParseLSN(pos)
	require.NoError(t, err)
	require.Equal(t, `FIRST 1 ("db-2")`, requireRole(ctx, t, primary, driver.RolePrimary).Replication.SynchronousStandbyNames)
	waitStandbyState(ctx, t, primary, "db-2", "sync")
	require.NoError(t, execWithin(pair.Primary, commitWithin, "CREATE TABLE t (id int)"), "the sync standby confirms commits")
	// What the leader waits for before it counts the standby synchronous.
	// Polled: the checkpointer, which decides whether commits wait, may
	// take the reloaded setting a moment after new sessions see it.
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		s := waitStandbyState(ctx, t, primary, "db-2", "sync")
		flushed, err := driver.ParseLSN(s.FlushPosition)
		return err == nil && flushed > setAt, fmt.Errorf("standby flushed %q, not past %s (%v)", s.FlushPosition, pos, err)
	})

	// Setting it again changes nothing and reports the position again.
	progress.reset()
	again, err := primary.SetSyncStandbys(ctx, []string{"db-2"}, progress.add)
	require.NoError(t, err)
	require.NotEmpty(t, again)
	require.True(t, progress.has("synchronous_standby_names is already"), "progress: %v", progress.lines)

	// Only a primary takes the setting; an invalid name changes nothing.
	_, err = standby.SetSyncStandbys(ctx, nil, progress.add)
	require.ErrorIs(t, err, driver.ErrPostgresStandby)
	_, err = primary.SetSyncStandbys(ctx, []string{`db-2", "x`}, progress.add)
	require.ErrorContains(t, err, "invalid standby application name")
	require.Equal(t, `FIRST 1 ("db-2")`, requireRole(ctx, t, primary, driver.RolePrimary).Replication.SynchronousStandbyNames)

	_, err = primary.SetSyncStandbys(ctx, nil, progress.add)
	require.NoError(t, err)
	require.Empty(t, requireRole(ctx, t, primary, driver.RolePrimary).Replication.SynchronousStandbyNames)
	waitStandbyState(ctx, t, primary, "db-2", "async")
}

// TestPostgres_PromoteReplacesInheritedSyncStandbys: a standby's
// postgresql.auto.conf, copied from its primary, names synchronous
// standbys (here itself). Promoted without sync standbys it takes writes
// at once; promoted in strict mode ("*") Promote still returns, and
// commits then wait for a standby.
func TestPostgres_PromoteReplacesInheritedSyncStandbys(t *testing.T) {
	cases := []struct {
		name    string
		sync    []string
		setting string
	}{
		{"none", nil, ""},
		{"strict", []string{"*"}, "*"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pair := pgtest.NewPair(t)
			ctx := testContext(t)
			progress := &progressLog{t: t}
			primary, standby := newPostgresDriver(t, pair.Primary), newPostgresDriver(t, pair.Standby)
			pair.Exec(t, pair.Standby, `ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ("walreceiver")'`)
			pair.Exec(t, pair.Standby, "SELECT pg_reload_conf()")
			require.NoError(t, primary.Stop(ctx, progress.add))

			_, err := standby.Promote(ctx, driver.PromoteOptions{SyncStandbys: tc.sync}, progress.add)
			require.NoError(t, err)
			within := commitWithin
			if tc.setting != "" {
				within = time.Second // long enough for a commit that does not wait
			}
			err = execWithin(pair.Standby, within, "CREATE TABLE t (id int)")
			if tc.setting == "" {
				require.NoError(t, err, "the new primary waits for no standby")
			} else {
				// No standby streams from it: the commit waits for one.
				require.ErrorIs(t, err, context.DeadlineExceeded)
			}
			st := requireRole(ctx, t, standby, driver.RolePrimary)
			require.Equal(t, tc.setting, st.Replication.SynchronousStandbyNames)
		})
	}
}

// TestPostgres_DrillWaitsForNoStandby: the drill copy of a primary that
// waits for a synchronous standby starts waiting for none, so its writes
// commit although no standby streams from it.
func TestPostgres_DrillWaitsForNoStandby(t *testing.T) {
	t.Parallel()
	pair := pgtest.NewPair(t)
	ctx := testContext(t)
	progress := &progressLog{t: t}
	primary := newPostgresDriver(t, pair.Primary)
	_, err := primary.SetSyncStandbys(ctx, []string{"walreceiver"}, progress.add)
	require.NoError(t, err)

	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o711)) // run_as reaches the copy
	d := driver.Drill{ID: "d1", Dir: filepath.Join(dir, "pg"), Port: closedPort(t)}
	t.Cleanup(func() { _, _ = primary.StopDrill(context.Background(), d, nil) })
	require.NoError(t, primary.StartDrill(ctx, d, progress.add))

	copyNode := &pgtest.Node{Name: "drill", Port: d.Port, SocketDir: "127.0.0.1"}
	require.Equal(t, "", pair.QueryString(t, copyNode, "SHOW synchronous_standby_names"))
	require.NoError(t, execWithin(copyNode, commitWithin, "CREATE TABLE t (id int)"))
}
