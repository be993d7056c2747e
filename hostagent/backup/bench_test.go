package backup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchDatabaseMB is the size of BenchmarkPgBackRest_Throughput's
// database, in MB; DRPLANE_BENCH_PGBACKREST_MB overrides it.
const benchDatabaseMB = 1024

// BenchmarkPgBackRest_Throughput fills a database of at least
// benchDatabaseMB (1 GB), then measures a full pgBackRest backup of it
// and a restore of that backup into an empty directory, each as the
// database's size over the wall time: backup-MB/s and restore-MB/s,
// with process_max 2 and lz4, as the agent configures it. Run with
// -benchtime 1x: each run builds its own database.
func BenchmarkPgBackRest_Throughput(b *testing.B) {
	mb := benchDatabaseMB
	if v := os.Getenv("DRPLANE_BENCH_PGBACKREST_MB"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err)
		mb = n
	}
	for range b.N {
		b.StopTimer()
		env := newTestEnv(b)
		// The standby would stream every byte of the fill; the benchmark
		// is about the repository.
		env.pair.Stop(b, env.pair.Standby)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		// Rows of about 130 bytes on disk: 8,000 per MB.
		env.pair.Exec(b, env.pair.Primary, fmt.Sprintf(
			"CREATE TABLE fill AS SELECT g AS id, md5(g::text) || repeat('x', 60) AS pad FROM generate_series(1, %d) g", mb*8000))
		size, err := strconv.ParseInt(env.pair.QueryString(b, env.pair.Primary, "SELECT pg_database_size('postgres')::text"), 10, 64)
		require.NoError(b, err)
		b.StartTimer()

		start := time.Now()
		full, err := env.engine.Backup(ctx, Full, nil)
		backupTook := time.Since(start)
		require.NoError(b, err)
		dir := filepath.Join(env.dir, "restored")
		start = time.Now()
		require.NoError(b, env.engine.Restore(ctx, RestoreTarget{Label: full.Label}, dir, nil))
		restoreTook := time.Since(start)
		b.StopTimer()
		cancel()

		total := float64(full.DatabaseSize) / (1 << 20)
		b.ReportMetric(total, "cluster-MB")
		b.ReportMetric(float64(size)/(1<<20), "table-db-MB")
		b.ReportMetric(total/backupTook.Seconds(), "backup-MB/s")
		b.ReportMetric(total/restoreTook.Seconds(), "restore-MB/s")
		b.ReportMetric(float64(full.RepositorySize)/float64(full.DatabaseSize), "stored/size")
		b.Logf("cluster %.0f MB: full backup %s (%.0f MB stored), restore %s", total, backupTook.Round(time.Millisecond),
			float64(full.RepositorySize)/(1<<20), restoreTook.Round(time.Millisecond))
	}
}
