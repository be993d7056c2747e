package controlplane

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/calendar"
	"github.com/drplane/drplane/internal/kpi"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
)

// BenchmarkFSMApply measures committed commands per second through the
// whole write path: gRPC with mutual TLS to the leader of a 3-server
// cluster, Raft replication to a quorum, and FSM.Apply.
func BenchmarkFSMApply(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := newTestCluster(b, 3)
			leader := c.waitForLeader()
			// Each client registers its own host again and again (an agent
			// may register only itself): every call is a new Raft entry.
			cls := make([]testClient, clients)
			for i := range cls {
				cls[i] = c.agentClient(leader, fmt.Sprintf("h%d", i))
			}
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for h, cl := range cls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						_, err := cl.RegisterAgent(b.Context(), &pb.RegisterAgentRequest{
							Agent: &pb.Agent{HostId: fmt.Sprintf("h%d", h), Site: "primary", Address: fmt.Sprintf("127.0.0.1:%d", i%60000+1)},
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cmds/s")
		})
	}
}

// BenchmarkKPIs_YearOfMinutes computes the KPIs as GetKPIs does over a
// year of availability minutes (a down minute every day, so 730 runs)
// with New York's trading hours, 100 drills and 20 incidents: the cost
// of `drplane report` on a year-old deployment.
func BenchmarkKPIs_YearOfMinutes(b *testing.B) {
	us, err := calendar.NewTradingHours("us-equities", "America/New_York", []string{"mon", "tue", "wed", "thu", "fri"}, "09:30", "16:00")
	require.NoError(b, err)
	now := time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC)
	start := now.AddDate(-1, 0, 0)
	var m kpi.Minutes
	for at := start; at.Before(now); at = at.Add(time.Minute) {
		state := kpi.MinuteUp
		if at.Hour() == 15 && at.Minute() == 0 {
			state = kpi.MinuteDown
		}
		m.Record(at, state)
	}
	var drills []kpi.Drill
	for i := range 100 {
		drills = append(drills, kpi.Drill{ID: fmt.Sprint(i), FinishedAt: start.Add(time.Duration(i) * 80 * time.Hour), Succeeded: true, RTO: kpi.RTOMet})
	}
	var incidents []kpi.Incident
	for i := range 20 {
		d := time.Duration(i+1) * time.Minute
		incidents = append(incidents, kpi.Incident{ID: fmt.Sprint(i), FinishedAt: start.Add(time.Duration(i) * 400 * time.Hour), Recovery: &d})
	}
	o := kpi.Objectives{DrillSuccessRate: 0.95, Availability: 0.995, AvailabilityTradingHours: 0.999, MTTR: 15 * time.Minute, Window: 365 * 24 * time.Hour}
	for b.Loop() {
		res := kpi.Compute(o, now, m, (&sessionMemo{cal: calendar.Calendar{us}}).inside, drills, incidents)
		if !res[2].Known {
			b.Fatal(res[2].Detail)
		}
	}
	b.ReportMetric(float64(len(m.Runs)), "runs")
}
