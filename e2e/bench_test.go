package e2e

import (
	"context"
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
