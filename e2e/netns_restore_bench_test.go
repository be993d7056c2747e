package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testing/netns"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/stretchr/testify/require"
)

// restoreBenchMB is the size of BenchmarkRestorePlan's table, in MB;
// DRPLANE_BENCH_PGBACKREST_MB overrides it (as for the pgBackRest
// throughput benchmark).
const restoreBenchMB = 1024

// BenchmarkRestorePlan measures the restore plan on a database of at
// least 1 GB: db-1 (streaming to db-2) is filled, a full backup taken,
// two rows committed 3 s apart, and `drplane restore --to-time` a time
// between them runs: stop the engine, restoration point (an incremental
// backup), stop both databases, a delta restore of db-1 in place,
// recovery to the time, start the engine, verify, and db-2 rejoined. The
// earlier row must be back and the later one gone. Figures, per run:
//
//	s/rto             the execution's RTO: the command to the last health gate
//	s/restore         the command's wall time (it returns after the rejoin)
//	s/restore-point   the restoration point's backup step
//	s/restore-step    the restore-backup step: the delta restore, the
//	                  recovery to the target and the promotion
//	s/reprotect       db-2's rejoin (pg_rewind, or a new clone)
//	cluster-MB        the size of db-1's databases
//
// Run with -benchtime 1x: each run builds its own deployment.
func BenchmarkRestorePlan(b *testing.B) {
	pgtest.RequirePgBackRest(b)
	mb := restoreBenchMB
	if v := os.Getenv("DRPLANE_BENCH_PGBACKREST_MB"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err)
		mb = n
	}
	benchmarkNetns(b, func(t testing.TB, m netnsMetrics) {
		d := netns.NewDeployment(t, netns.Options{Bin: drplaneBin, Backup: &config.BackupConfig{FullEvery: time.Hour}})
		waitBackupStatus(t, d, "db-1", "a full backup", func(b cli.BackupStatusJSON) bool { return b.NewestFull != nil })
		ctx := context.Background()
		pg := d.PG["db-1"]
		// Rows of about 130 bytes on disk: 8,000 per MB, in chunks that
		// each commit within the harness's statement deadline.
		require.NoError(t, pg.Exec(ctx, "CREATE TABLE fill (id int, pad text)"))
		const chunk = 200_000
		for from := 1; from <= mb*8000; from += chunk {
			require.NoError(t, pg.Exec(ctx, fmt.Sprintf(
				"INSERT INTO fill SELECT g, md5(g::text) || repeat('x', 60) FROM generate_series(%d, %d) g", from, min(from+chunk-1, mb*8000))))
		}
		size, err := pg.QueryString(ctx, "SELECT (sum(pg_database_size(datname)) / 1048576)::bigint::text FROM pg_database")
		require.NoError(t, err)
		clusterMB, err := strconv.ParseFloat(size, 64)
		require.NoError(t, err)
		d.MustCLI("backup", "create", "--kind", "full")

		require.NoError(t, pg.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY)"))
		require.NoError(t, pg.Exec(ctx, "INSERT INTO orders VALUES (1)"))
		time.Sleep(1500 * time.Millisecond)
		between := time.Now()
		time.Sleep(1500 * time.Millisecond)
		require.NoError(t, pg.Exec(ctx, "INSERT INTO orders VALUES (2)"))

		out, took := timed(t, d, "restore", "--service", "postgres", "--to-time", between.UTC().Format(time.RFC3339Nano), "--yes")
		ex := d.LastExecution()
		require.Equal(t, "succeeded", ex.Result, out)
		require.Equal(t, "restore", ex.Kind)
		rows, err := pg.QueryString(ctx, "SELECT string_agg(id::text, ',') FROM orders")
		require.NoError(t, err)
		require.Equal(t, "1", rows, "the earlier row is back, the later one is not")
		require.NotNil(t, ex.RTOSeconds)
		m.add("s/rto", *ex.RTOSeconds)
		m.add("s/restore", took.Seconds())
		m.add("cluster-MB", clusterMB)
		for unit, id := range map[string]string{"s/restore-point": "backup:postgres@db-1", "s/restore-step": "restore:postgres@db-1", "s/reprotect": "demote:postgres@db-2"} {
			st := ex.Step(id)
			require.NotNil(t, st, id)
			require.Equal(t, "succeeded", st.State, "%s: %s", id, st.Message)
			require.False(t, st.Started == nil || st.Ended == nil, "%s has no start or end", id)
			m.add(unit, st.Ended.Sub(*st.Started).Seconds())
		}
		t.Logf("restore of %.0f MB to %s: %s; restore-point %.2fs, restore step %.2fs, reprotect %.2fs, command %.2fs",
			clusterMB, between.UTC().Format(time.RFC3339Nano), ex.Measured(), m.last("s/restore-point"), m.last("s/restore-step"),
			m.last("s/reprotect"), took.Seconds())
	})
}
