package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// commitSamples is how many single-row inserts one run of a commit
// latency benchmark times.
const commitSamples = 2000

// BenchmarkCommitLatency_Loopback times single-row INSERT commits on a
// PostgreSQL 15 primary with a standby streaming from it over loopback,
// with the primary waiting for no standby (async) and for the standby
// (sync: synchronous_standby_names as drplane's leader sets it, the
// default synchronous_commit = on, i.e. the standby's flush). It reports
// the median and p99 in milliseconds. fsync is off in these test
// clusters, so the figures are the replication round trip's, not a
// disk's.
func BenchmarkCommitLatency_Loopback(b *testing.B) {
	for _, mode := range []string{"async", "sync"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				p := pgtest.NewPair(b)
				setting := ""
				if mode == "sync" {
					setting = structs.SyncStandbyNames([]string{structs.SyncAnyStandby})
				}
				p.Exec(b, p.Primary, fmt.Sprintf("ALTER SYSTEM SET synchronous_standby_names = '%s'", setting))
				p.Exec(b, p.Primary, "SELECT pg_reload_conf()")
				want := map[bool]string{true: "sync", false: "async"}[mode == "sync"]
				p.WaitFor(b, p.Primary, want, "SELECT sync_state FROM pg_stat_replication LIMIT 1")
				b.StartTimer()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				conn, err := pgx.Connect(ctx, p.Primary.ConnString())
				require.NoError(b, err)
				median, p99 := commitLatencies(ctx, b, conn)
				conn.Close(context.Background())
				cancel()
				b.ReportMetric(median.Seconds()*1000, "ms/commit-median")
				b.ReportMetric(p99.Seconds()*1000, "ms/commit-p99")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// commitLatencies inserts commitSamples rows one commit at a time over
// conn and returns the median and 99th percentile latency.
func commitLatencies(ctx context.Context, b testing.TB, conn *pgx.Conn) (median, p99 time.Duration) {
	b.Helper()
	_, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS commit_bench (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
	require.NoError(b, err)
	took := make([]time.Duration, 0, commitSamples)
	for range commitSamples {
		start := time.Now()
		_, err := conn.Exec(ctx, "INSERT INTO commit_bench DEFAULT VALUES")
		require.NoError(b, err)
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	return took[len(took)/2], took[len(took)*99/100]
}
