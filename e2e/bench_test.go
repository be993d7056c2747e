package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// BenchmarkReelection measures how long three server processes on
// loopback with default timeouts take to elect a new leader after the
// leader is killed with SIGKILL: from the kill to the first survivor that
// reports a new leader. Run with -benchtime 1x -count N; make bench prints
// the median.
func BenchmarkReelection(b *testing.B) {
	c := newProcessCluster(b, "primary", "dr", "witness")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var total time.Duration
	for b.Loop() {
		leader, err := c.WaitForLeader(ctx, 50*time.Millisecond)
		if err != nil {
			b.Fatal(err)
		}
		killedAt := time.Now()
		if err := c.Kill(c.Node(leader)); err != nil {
			b.Fatal(err)
		}
		if _, err := c.WaitForLeader(ctx, 10*time.Millisecond, leader); err != nil {
			b.Fatal(err)
		}
		total += time.Since(killedAt)
		b.StopTimer()
		if err := c.StartNode(c.Node(leader)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/election")
}

// BenchmarkSwitchover measures a switchover to dr of a real PostgreSQL
// primary/standby plus two dependent application services on loopback:
// the execution's RTO (the command to the last health gate passing at
// dr), and the command's wall time. Run with -benchtime 1x -count N.
func BenchmarkSwitchover(b *testing.B) {
	benchmarkPlan(b, []string{"switchover", "--to", "dr", "--yes"}, nil)
}

// BenchmarkFailover measures a failover to dr after the primary database
// was killed (SIGKILL), as BenchmarkSwitchover does.
func BenchmarkFailover(b *testing.B) {
	benchmarkPlan(b, []string{"failover", "--to", "dr", "--yes"}, func(ps *planSites) {
		if err := syscall.Kill(ps.pair.Primary.PostmasterPID(), syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkRestart measures `drplane restart`: the primary site's
// PostgreSQL, engine and gateway stopped in reverse dependency order and
// started in order, each health-gated, as BenchmarkSwitchover does.
func BenchmarkRestart(b *testing.B) {
	benchmarkPlan(b, []string{"restart", "--yes"}, nil)
}

func benchmarkPlan(b *testing.B, args []string, before func(*planSites)) {
	var rto, wall time.Duration
	for b.Loop() {
		b.StopTimer()
		ps := newPlanSites(b)
		ps.pair.Exec(b, ps.pair.Primary, "INSERT INTO trades SELECT generate_series(1, 1000)")
		if before != nil {
			before(ps)
		}
		b.StartTimer()
		start := time.Now()
		if out, err := ps.cli(b, args...); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		wall += time.Since(start)
		b.StopTimer()
		ex := ps.lastExecution(b)
		if ex.RTOSeconds == nil {
			b.Fatalf("execution %s recorded no RTO", ex.ID)
		}
		rto += time.Duration(*ex.RTOSeconds * float64(time.Second))
		b.StartTimer()
	}
	b.ReportMetric(rto.Seconds()/float64(b.N), "rto_s")
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall_s")
}
