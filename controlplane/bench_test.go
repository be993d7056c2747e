package controlplane

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/drplane/drplane/proto/drplane/v1"
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
