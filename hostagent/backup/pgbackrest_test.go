package backup

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// testTimeout bounds one test's pgBackRest and PostgreSQL work.
const testTimeout = 3 * time.Minute

// testEnv is a pgtest pair whose primary archives into a fresh repository
// through an engine, with its stanza created and archiving checked.
type testEnv struct {
	pair   *pgtest.Pair
	engine *PgBackRest
	// dir is a directory the postgres user may traverse, for the
	// repository, the configuration and restores.
	dir string
	ctx context.Context
}

// newTestEnv builds a testEnv. It skips like pgtest does (not root, no
// PostgreSQL 15, -short), and when pgbackrest is missing, except under
// CI=true, where it fails: a suite that skips in CI tests nothing.
func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	pair := pgtest.NewPair(t)
	pgtest.RequirePgBackRest(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	env := &testEnv{pair: pair, dir: pgtest.TempDir(t), ctx: ctx}
	p := pair.Primary
	e, err := NewPgBackRest(PgBackRestConfig{
		Stanza: t.Name(), Repository: filepath.Join(env.dir, "repo"), ConfigDir: filepath.Join(env.dir, "conf"),
		DataDir: p.DataDir, Port: p.Port, SocketDir: p.SocketDir, RunAs: pgtest.RunAs, BinDir: pgtest.BinDir,
	}, testLogger(t))
	require.NoError(t, err)
	env.engine = e

	require.NoError(t, e.Configure(ctx))
	require.NoError(t, e.StanzaCreate(ctx))
	require.NoError(t, e.StanzaCreate(ctx), "stanza-create is idempotent")
	env.enableArchiving(t)
	require.NoError(t, e.Check(ctx))
	return env
}

// enableArchiving points the primary's archive_command at the engine and
// restarts it when archive_mode needs it.
func (env *testEnv) enableArchiving(t testing.TB) {
	t.Helper()
	conn, err := pgx.Connect(env.ctx, env.pair.Primary.ConnString())
	require.NoError(t, err)
	restart, err := ConfigureArchiving(env.ctx, conn, env.engine.ArchiveCommand())
	require.NoError(t, conn.Close(env.ctx))
	require.NoError(t, err)
	require.True(t, restart, "a pgtest primary starts with archive_mode off")
	env.pair.Stop(t, env.pair.Primary)
	env.pair.Start(t, env.pair.Primary)

	// Once archiving runs, configuring it again changes nothing.
	conn, err = pgx.Connect(env.ctx, env.pair.Primary.ConnString())
	require.NoError(t, err)
	defer conn.Close(env.ctx)
	restart, err = ConfigureArchiving(env.ctx, conn, env.engine.ArchiveCommand())
	require.NoError(t, err)
	require.False(t, restart)
}

// progress logs progress lines through t.
func progress(t *testing.T) Progress {
	return func(format string, args ...any) { t.Logf("progress: "+format, args...) }
}

// TestPgBackRest_BackupList takes a full and an incremental backup and
// lists them, then checks that bad restore and verify requests are
// refused before anything is touched.
func TestPgBackRest_BackupList(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	e, ctx, primary := env.engine, env.ctx, env.pair.Primary

	start := time.Now()
	full, err := e.Backup(ctx, Full, progress(t))
	require.NoError(t, err)
	t.Logf("full backup of a fresh cluster took %s", time.Since(start))
	require.Equal(t, Full, full.Kind)
	require.Empty(t, full.Prior)

	env.pair.Exec(t, primary, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS id")
	incr, err := e.Backup(ctx, Incr, nil)
	require.NoError(t, err)
	require.Equal(t, Incr, incr.Kind)
	require.Equal(t, full.Label, incr.Prior)
	require.Less(t, incr.BackupSize, full.BackupSize)

	info, err := e.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, []Backup{full, incr}, info.Backups)
	require.NotEmpty(t, info.WALMax)
	require.GreaterOrEqual(t, info.WALMax, incr.WALStop)
	require.Equal(t, incr.Stop, info.RestorableUntil)
	require.Equal(t, full.Stop.Add(time.Second), info.RestorableFrom)

	t.Run("bad input refused", func(t *testing.T) {
		target := filepath.Join(env.dir, "never")
		notEmpty := pgtest.TempDir(t)
		require.NoError(t, os.WriteFile(filepath.Join(notEmpty, "PG_VERSION"), []byte("15\n"), 0o600))
		cases := []struct {
			name   string
			target RestoreTarget
			dir    string
			is     error
			msg    string
		}{
			{"unknown label", RestoreTarget{Label: "20000101-000000F"}, target, ErrUnknownLabel,
				`unknown backup label "20000101-000000F": the repository holds ` + full.Label + ", " + incr.Label},
			{"time before the oldest backup", RestoreTarget{Time: full.Start.Add(-time.Hour)}, target, ErrNoBackup,
				"no backup ends before " + full.Start.Add(-time.Hour).Format(time.RFC3339Nano) + "; the oldest ends at " + full.Stop.Format(time.RFC3339)},
			{"no target", RestoreTarget{}, target, ErrInvalid, "exactly one of latest, label and time"},
			{"relative data dir", RestoreTarget{Latest: true}, "pgdata", ErrInvalid, `data_dir "pgdata"`},
			{"data dir not empty", RestoreTarget{Latest: true}, notEmpty, ErrInvalid, "is not empty"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				err := e.Restore(ctx, tc.target, tc.dir, progress(t))
				require.ErrorIs(t, err, tc.is)
				require.ErrorContains(t, err, tc.msg)
				require.NoDirExists(t, target)
			})
		}

		_, err := e.Verify(ctx, filepath.Join(primary.DataDir, "verify"), pgtest.FreePort(t), nil)
		require.ErrorIs(t, err, ErrInvalid)
		require.ErrorContains(t, err, "overlaps")
		require.NoDirExists(t, filepath.Join(primary.DataDir, "verify"))
	})
}

// TestPgBackRest_RestoreToTime restores to a time between two committed
// rows: the first is there, the second is not.
func TestPgBackRest_RestoreToTime(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	e, ctx, primary := env.engine, env.ctx, env.pair.Primary

	env.pair.Exec(t, primary, "CREATE TABLE pitr (name text)")
	full, err := e.Backup(ctx, Full, progress(t))
	require.NoError(t, err)
	// Stop is truncated to the second: a target must lie after that
	// second to start from this backup.
	testutil.WaitForResult(t, 3*time.Second, func() (bool, error) {
		return time.Now().After(full.earliestTarget()), nil
	})
	env.pair.Exec(t, primary, "INSERT INTO pitr VALUES ('a')")
	micros, err := strconv.ParseInt(env.pair.QueryString(t, primary,
		"SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint::text"), 10, 64)
	require.NoError(t, err)
	target := time.UnixMicro(micros)
	env.pair.Exec(t, primary, "INSERT INTO pitr VALUES ('b')")
	// check switches WAL and waits until the segment with b's commit is
	// archived: recovery must see a commit after the target to stop.
	require.NoError(t, e.Check(ctx))

	sc := newScratch(filepath.Join(env.dir, "pitr"), pgtest.FreePort(t))
	require.NoError(t, mkdirOwned(e.user, sc.dir, 0o700))
	t.Cleanup(func() { require.NoError(t, e.removeScratch(context.Background(), sc, progress(t))) })
	require.NoError(t, e.Restore(ctx, RestoreTarget{Time: target}, sc.data, progress(t)))
	require.NoError(t, e.startScratch(ctx, sc, progress(t)))

	conn, err := pgx.Connect(ctx, e.scratchConnString(sc))
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT name FROM pitr ORDER BY name")
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, names)
}

// TestPgBackRest_Verify verifies a good backup, then the same backup with
// a file missing from the repository.
func TestPgBackRest_Verify(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	e, ctx := env.engine, env.ctx

	b, err := e.Backup(ctx, Full, nil)
	require.NoError(t, err)
	scratchDir := filepath.Join(env.dir, "verify")

	res, err := e.Verify(ctx, scratchDir, pgtest.FreePort(t), progress(t))
	require.NoError(t, err)
	require.True(t, res.OK, res.Reason)
	require.Equal(t, b.Label, res.Label)
	t.Logf("verification of a good backup took %s", res.Duration)
	require.NoDirExists(t, scratchDir)

	// Without pg_control the backup cannot be restored.
	files, err := filepath.Glob(filepath.Join(e.cfg.Repository, "backup", e.cfg.Stanza, b.Label, "pg_data", "global", "pg_control*"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	require.NoError(t, os.Remove(files[0]))

	res, err = e.Verify(ctx, scratchDir, pgtest.FreePort(t), progress(t))
	require.ErrorIs(t, err, ErrVerifyFailed)
	require.False(t, res.OK)
	require.Equal(t, b.Label, res.Label)
	require.Contains(t, res.Reason, "restore")
	require.NotEmpty(t, res.LogTail)
	t.Logf("failed verification: %s", res.Reason)
	require.NoDirExists(t, scratchDir)
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Debug, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
