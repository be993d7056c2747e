package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testing/netns"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// backupStatus is what `drplane status --json` says of block pg on host.
func backupStatus(t testing.TB, d *netns.Deployment, host string) (cli.BackupStatusJSON, error) {
	var st cli.StatusJSON
	if err := json.Unmarshal([]byte(d.MustCLI("status", "--json")), &st); err != nil {
		return cli.BackupStatusJSON{}, err
	}
	for _, b := range st.Backups {
		if b.HostID == host && b.Name == "pg" {
			return b, nil
		}
	}
	return cli.BackupStatusJSON{}, fmt.Errorf("no backup block pg reported by %s", host)
}

// waitBackupStatus waits until host reports block pg as cond wants.
func waitBackupStatus(t testing.TB, d *netns.Deployment, host, what string, cond func(cli.BackupStatusJSON) bool) cli.BackupStatusJSON {
	t.Helper()
	var b cli.BackupStatusJSON
	testutil.WaitForResult(t, 3*time.Minute, func() (bool, error) {
		var err error
		if b, err = backupStatus(t, d, host); err != nil {
			return false, err
		}
		return cond(b), fmt.Errorf("%s: not yet %s: %+v", host, what, b)
	})
	return b
}

// TestNetns_Backups_FollowTheSwitchover: both database hosts declare one
// backup block into a shared repository. The primary's agent archives
// and takes the first full backup by itself; an operator's incremental
// backup runs there. After a switchover to dr, db-2's agent archives
// into the same stanza, and its backup builds on db-1's: one history.
// The newest backup restores, starts and answers (verify), and the CLI
// lists every backup. Last, a restore at dr to a time between two rows
// written after the switchover: its base is db-1's backup, from before
// the switchover, so the recovery replays db-1's timeline and then
// db-2's (point-in-time recovery across the switchover).
func TestNetns_Backups_FollowTheSwitchover(t *testing.T) {
	pgtest.RequirePgBackRest(t)
	d := netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Backup: &config.BackupConfig{FullEvery: time.Hour}})

	first := waitBackupStatus(t, d, "db-1", "archiving with a full backup", func(b cli.BackupStatusJSON) bool {
		return b.Archiving && b.Scheduled && b.NewestFull != nil
	})
	require.Empty(t, first.Warnings)
	standby, err := backupStatus(t, d, "db-2")
	require.NoError(t, err)
	require.False(t, standby.Archiving, "a standby does not archive")

	// The restore drill: db-2, at dr, restores the newest backup into a
	// scratch copy, starts and queries it; production is untouched.
	require.NoError(t, d.PG["db-1"].Exec(context.Background(), "CREATE TABLE drill_marker (id int)"))
	out := d.MustCLI("drill", "--plan", "restore", "--yes")
	require.Contains(t, out, "succeeded", out)
	drill := d.LastExecution()
	require.Equal(t, "drill", drill.Kind)
	require.Equal(t, "restore", drill.Plan)
	require.Equal(t, "succeeded", drill.Step("verify-backup:postgres@db-2").State)
	require.NotNil(t, drill.RTOSeconds)
	require.Nil(t, drill.RPOSeconds, "a drill does not know what a restore would lose: %s", drill.RPODetail)
	require.Equal(t, "false", inRecovery(t, d, "db-1"), "production is untouched")
	require.Equal(t, "true", inRecovery(t, d, "db-2"))
	waitStreaming(t, d, "db-2", 0)
	verified := waitBackupStatus(t, d, "db-2", "verified by the drill", func(b cli.BackupStatusJSON) bool { return b.Verification != nil })
	require.True(t, verified.Verification.OK, verified.Verification.Reason)
	require.Contains(t, d.MustCLI("report"), "restore")
	t.Logf("restore drill at dr: %s", drill.Measured())

	out = d.MustCLI("backup", "create", "--kind", "incr")
	require.Contains(t, out, "on db-1", "the command runs where the database is primary")
	var sets []cli.BackupSetJSON
	require.NoError(t, json.Unmarshal([]byte(d.MustCLI("backup", "list", "--json")), &sets))
	require.Len(t, sets, 1)
	require.Equal(t, "db-1", sets[0].Status.HostID)
	require.Len(t, sets[0].Backups, 2)
	incr := sets[0].Backups[1]
	require.Equal(t, "incr", incr.Kind)
	require.Equal(t, first.NewestFull.Label, incr.Prior)

	out = d.MustCLI("switchover", "--to", "dr", "--yes")
	require.Contains(t, out, "succeeded")
	waitBackupStatus(t, d, "db-2", "archiving after the switchover", func(b cli.BackupStatusJSON) bool { return b.Archiving && b.Scheduled })
	waitBackupStatus(t, d, "db-1", "standing by after the switchover", func(b cli.BackupStatusJSON) bool { return !b.Archiving })
	ctx := context.Background()
	pg2 := d.PG["db-2"]
	require.NoError(t, pg2.Exec(ctx, "CREATE TABLE trades (id int PRIMARY KEY)"))
	require.NoError(t, pg2.Exec(ctx, "INSERT INTO trades VALUES (1)"))
	time.Sleep(1500 * time.Millisecond)
	between := time.Now()
	time.Sleep(1500 * time.Millisecond)
	require.NoError(t, pg2.Exec(ctx, "INSERT INTO trades VALUES (2)"))

	out = d.MustCLI("backup", "create", "--kind", "incr")
	require.Contains(t, out, "on db-2")
	require.NoError(t, json.Unmarshal([]byte(d.MustCLI("backup", "list", "--json")), &sets))
	require.Equal(t, "db-2", sets[0].Status.HostID)
	require.Len(t, sets[0].Backups, 3, "one history: db-1's backups and db-2's")
	require.Equal(t, incr.Label, sets[0].Backups[2].Prior, "db-2's backup builds on db-1's")

	out = d.MustCLI("backup", "verify")
	require.Contains(t, out, "restored, started and answered")
	newest := sets[0].Backups[2].Label
	b := waitBackupStatus(t, d, "db-2", "verified", func(b cli.BackupStatusJSON) bool { return b.Verification != nil && b.Verification.Label == newest })
	require.True(t, b.Verification.OK, b.Verification.Reason)
	require.Equal(t, sets[0].Backups[2].Label, b.Verification.Label)

	text := d.MustCLI("status")
	require.Contains(t, text, "pg (service postgres) on db-2: archiving, takes the scheduled backups")
	require.True(t, strings.Contains(text, "last verification: backup "+b.Verification.Label+" passed"), text)

	out = d.MustCLI("restore", "--service", "postgres", "--to-time", between.UTC().Format(time.RFC3339Nano), "--yes")
	require.Contains(t, out, "succeeded", out)
	ex := d.LastExecution()
	require.Equal(t, "restore", ex.Kind)
	require.Equal(t, "succeeded", ex.Result, out)
	require.Equal(t, "succeeded", ex.Step("restore:postgres@db-2").State)
	rows, err := pg2.QueryString(ctx, "SELECT string_agg(id::text, ',') FROM trades")
	require.NoError(t, err)
	require.Equal(t, "1", rows, "the row written after the switchover and before the target is back, the later one is not")
	require.Equal(t, "false", inRecovery(t, d, "db-2"))
	d.WaitForAgent("db-1", time.Minute, netns.HasRole("postgres", "standby"))
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		s, err := d.PG["db-1"].QueryString(ctx, `SELECT (pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'))::text
			|| ' ' || (SELECT string_agg(id::text, ',') FROM trades)`)
		return s == "true 1", fmt.Errorf("db-1: streaming and rows: %q (%v)", s, err)
	})
	t.Logf("restore at dr to %s, from %s (before the switchover): %s", between.UTC().Format(time.RFC3339Nano), incr.Label, ex.Measured())
}

// TestNetns_Restore_ToTimeBetweenTwoRows: a restore plan to a time
// between two committed rows, through the CLI. Bad targets are refused
// before anything stops. Then the engine (the database's dependent) is
// stopped, a restoration point taken, the database and its standby
// stopped, the database restored (the earlier row back, the later one
// gone) and the engine's state directory too (the snapshot taken with
// the earlier row, not the later one), the engine started again, and the
// standby re-cloned from the restored primary and streaming. The RPO
// recorded is the target's distance from the command.
func TestNetns_Restore_ToTimeBetweenTwoRows(t *testing.T) {
	pgtest.RequirePgBackRest(t)
	d := netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Backup: &config.BackupConfig{FullEvery: time.Hour}, EngineState: true})
	first := waitBackupStatus(t, d, "db-1", "a full backup", func(b cli.BackupStatusJSON) bool { return b.NewestFull != nil })
	ctx := context.Background()
	pg := d.PG["db-1"]
	state := filepath.Join(d.EngineStateDir("app-1"), "positions")
	snapshotState := func(content string) {
		require.NoError(t, os.WriteFile(state, []byte(content), 0o600))
		d.MustCLI("snapshot", "create", "--host", "app-1", "--name", "engine-state")
	}
	// pgBackRest records a backup's end to the second: a second later
	// the repository can restore to any time, and no snapshot exists yet.
	time.Sleep(1100 * time.Millisecond)
	beforeSnapshots := time.Now()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, pg.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY)"))
	require.NoError(t, pg.Exec(ctx, "INSERT INTO orders VALUES (1)"))
	snapshotState("position after order 1")
	time.Sleep(1500 * time.Millisecond)
	between := time.Now()
	time.Sleep(1500 * time.Millisecond)
	require.NoError(t, pg.Exec(ctx, "INSERT INTO orders VALUES (2)"))
	snapshotState("position after order 2")
	require.NoError(t, os.WriteFile(state, []byte("position after order 3"), 0o600))

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--service", "postgre"}, `did you mean "postgres"?`},
		{[]string{"--service", "engine"}, `service "engine" is not a data service`},
		{[]string{"--service", "postgres", "--backup", "20200101-000000F"}, `backup "20200101-000000F" is not in the repository of block pg; it holds ` + first.NewestFull.Label},
		{[]string{"--service", "postgres", "--to-time", first.NewestFull.StartedAt.Add(-time.Hour).Format(time.RFC3339)}, "is before the oldest backup of block pg ended: the earliest restorable time is"},
		{[]string{"--service", "postgres", "--to-time", "2026-12-03 09:00:00"}, "is not a time with its zone"},
		{[]string{"--service", "postgres", "--to-time", beforeSnapshots.UTC().Format(time.RFC3339Nano)},
			"snapshot block engine-state on app-1 holds no snapshot taken at or before"},
	} {
		out, err := d.CLI(ctx, append([]string{"restore", "--yes"}, tc.args...)...)
		require.Error(t, err, out)
		require.Contains(t, out+err.Error(), tc.want)
	}
	require.Empty(t, executionsOfKind(t, d, "restore"), "nothing started")
	d.WaitForAgent("app-1", 10*time.Second, netns.HasRole("engine", "primary"))

	start := time.Now()
	out := d.MustCLI("restore", "--service", "postgres", "--to-time", between.UTC().Format("2006-01-02 15:04:05.999999-07"), "--yes")
	require.Contains(t, out, "succeeded", out)
	ex := d.LastExecution()
	require.Equal(t, "restore", ex.Kind)
	require.Equal(t, "succeeded", ex.Result, out)
	rows, err := pg.QueryString(ctx, "SELECT string_agg(id::text, ',') FROM orders")
	require.NoError(t, err)
	require.Equal(t, "1", rows, "the earlier row is back, the later one is not")
	content, err := os.ReadFile(state)
	require.NoError(t, err)
	require.Equal(t, "position after order 1", string(content), "the engine's state is the snapshot of the database's time")
	require.Equal(t, "false", inRecovery(t, d, "db-1"))
	require.NotNil(t, ex.RPOSeconds)
	require.GreaterOrEqual(t, *ex.RPOSeconds, start.Sub(between).Seconds()-0.5, ex.RPODetail)
	require.NotNil(t, ex.RTOSeconds)
	for _, id := range []string{"stop:engine@app-1", "backup:postgres@db-1", "snapshot:engine-state@app-1", "stop:postgres@db-2", "restore:postgres@db-1",
		"restore-snapshot:engine-state@app-1", "start:engine@app-1", "demote:postgres@db-2"} {
		st := ex.Step(id)
		require.NotNil(t, st, id)
		require.Equal(t, "succeeded", st.State, "%s: %s", id, st.Message)
	}
	d.WaitForAgent("app-1", 30*time.Second, netns.HasRole("engine", "primary"))
	d.WaitForAgent("db-2", time.Minute, netns.HasRole("postgres", "standby"))
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		s, err := d.PG["db-2"].QueryString(ctx, `SELECT (pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'))::text
			|| ' ' || (SELECT string_agg(id::text, ',') FROM orders)`)
		return s == "true 1", fmt.Errorf("db-2: streaming and rows: %q (%v)", s, err)
	})
	t.Logf("restore to %s: %s; %s", between.UTC().Format(time.RFC3339Nano), ex.Measured(), ex.RPODetail)
}

// executionsOfKind lists the executions of kind.
func executionsOfKind(t *testing.T, d *netns.Deployment, kind string) []netns.Execution {
	t.Helper()
	list, err := d.Executions(context.Background())
	require.NoError(t, err)
	var out []netns.Execution
	for _, ex := range list {
		if ex.Kind == kind {
			out = append(out, ex)
		}
	}
	return out
}
