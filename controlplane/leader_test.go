package controlplane

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

func TestTermTasks_WaitDrainsAndRefusesAfter(t *testing.T) {
	g := &termTasks{}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{}, 3)
	for range 3 {
		require.True(t, g.goFunc(func() {
			<-ctx.Done()
			ended <- struct{}{}
		}))
	}
	require.Equal(t, 3, g.count())
	waited := make(chan struct{})
	go func() {
		g.wait()
		close(waited)
	}()
	// Once wait began, nothing starts while it drains (until then, a
	// started goroutine is counted and waited for too).
	testutil.WaitForResult(t, 5*time.Second, func() (bool, error) {
		ok := g.goFunc(func() { <-ctx.Done() })
		return !ok, fmt.Errorf("goroutines still start")
	})
	select {
	case <-waited:
		t.Fatal("wait returned while its goroutines ran")
	default:
	}
	cancel()
	<-waited
	require.Len(t, ended, 3)
	require.Zero(t, g.count())

	var none *termTasks
	require.False(t, none.goFunc(func() {}), "no term, no goroutine")
	none.wait()
}

// leaderOnlyFuncs are the functions that run only in goroutines of a term
// of leadership.
var leaderOnlyFuncs = []string{
	"controlplane.(*Server).runProber", "controlplane.(*Server).probeLoop", "controlplane.(*Server).probeOnce",
	"controlplane.(*Server).notifyRemovedLoop", "controlplane.(*Server).judgeActiveSite",
	"controlplane.(*Server).restartInPlace", "controlplane.(*executor).run", "controlplane.(*executor).runStep",
}

// leaderGoroutines returns the stacks of the goroutines in this process
// that run leader-only work.
func leaderGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range leaderOnlyFuncs {
			if strings.Contains(g, f+"(") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// TestLeader_RevokeWaitsForEveryTermGoroutine makes a leader that probes
// an agent of the active site lose leadership, and checks that when
// revokeLeadership has returned no goroutine of the term runs any more
// and nothing of the term is left in the lease table: a probe landing
// later would count a lease in the next term's table.
func TestLeader_RevokeWaitsForEveryTermGoroutine(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.waitForLeader()
	startTestAgent(t, c, "db-1", "primary", 3*time.Second, map[string]driver.Role{"postgres": driver.RolePrimary})
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		_, ok := s.probes.get("db-1")
		return ok, fmt.Errorf("db-1 not probed yet")
	})
	require.NotEmpty(t, leaderGoroutines(), "the term runs its prober and its removed-server notifier")
	term := s.termTasks()
	require.NotNil(t, term)
	require.GreaterOrEqual(t, term.count(), 2, "the prober and the removed-server notifier are term goroutines")

	// Raft reports the leadership lost, as it does to a deposed leader.
	s.raftNotifyCh <- false
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		return s.leaderContext() == nil, fmt.Errorf("leadership not revoked")
	})
	require.Zero(t, term.count(), "a counted goroutine of the term still runs")
	require.Empty(t, leaderGoroutines(), "a goroutine of the term outlived revokeLeadership")
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	require.Empty(t, s.leases.until, "a renewal of the old term is still counted")
	require.True(t, s.leases.electedAt.IsZero())
}
