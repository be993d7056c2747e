package controlplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// leaseWatcher reads an agent's lease the way another server would (an
// observe-only probe), so a test sees when the agent's last renewal
// arrived: the lease expires lease_ttl after it.
type leaseWatcher struct {
	client pb.HostAgentClient
	ttl    time.Duration
}

func newLeaseWatcher(t *testing.T, c *testCluster, hostID string, ttl time.Duration) *leaseWatcher {
	t.Helper()
	var addr string
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		a, _, err := agentStatus(t, c, hostID)
		if err != nil {
			return false, err
		}
		addr = a.GetAddress()
		return addr != "", fmt.Errorf("agent %s has no address", hostID)
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(c.material("s1").ClientCredentials(tlsutil.RoleAgent)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &leaseWatcher{client: pb.NewHostAgentClient(conn), ttl: ttl}
}

// lastRenewal is when the agent's current lease was granted, on this
// machine's clock (agent and test share it).
func (w *leaseWatcher) lastRenewal(ctx context.Context) (time.Time, error) {
	resp, err := w.client.Probe(ctx, &pb.ProbeRequest{ObserveOnly: true})
	if err != nil {
		return time.Time{}, err
	}
	l := resp.GetLease()
	if !l.GetValid() {
		return time.Time{}, fmt.Errorf("lease lapsed (epoch %d)", l.GetEpoch())
	}
	return l.GetExpiresAt().AsTime().Add(-w.ttl), nil
}

// TestLeader_RenewsRightAfterElection kills the leader three times and
// measures, on the agent, the gap between the last renewal before the
// kill and the first after it: the new leader renews as soon as it has
// passed its Barrier, not one probe_interval later, so the gap is the
// election plus a probe, far below lease_ttl, and the active site's
// primary is never fenced. A long probe_interval makes a first renewal
// that waits for the prober's ticker show.
func TestLeader_RenewsRightAfterElection(t *testing.T) {
	const ttl, interval = 7 * time.Second, 2 * time.Second
	c := newTestClusterWith(t, 3, func(cfg *config.ServerConfig) {
		cfg.Failover.ProbeInterval, cfg.Failover.LeaseTTL, cfg.Failover.FailoverTimeout = interval, ttl, 9*time.Second
	})
	fakes := startTestAgent(t, c, "db-1", "primary", ttl, map[string]driver.Role{"postgres": driver.RolePrimary})
	w := newLeaseWatcher(t, c, "db-1", ttl)
	ctx := testCtx(t)
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		r, err := w.lastRenewal(ctx)
		return err == nil && time.Since(r) < time.Second, fmt.Errorf("no recent renewal (last %s): %v", r, err)
	})

	for i := range 3 {
		before, err := w.lastRenewal(ctx)
		require.NoError(t, err)
		leader := c.waitForLeader()
		killedAt := time.Now()
		c.kill(leader)
		var after time.Time
		testutil.WaitForResult(t, ttl, func() (bool, error) {
			after, err = w.lastRenewal(ctx)
			return err == nil && after.After(killedAt), fmt.Errorf("no renewal since the leader was killed %s ago (last %s): %v", time.Since(killedAt), after, err)
		})
		next := c.waitForLeader()
		since := next.leaderSinceTime()
		gap := after.Sub(before)
		t.Logf("kill %d: leader %s killed; %s leads %s after the kill and renewed %s later; the lease was renewed %s after the previous renewal (lease_ttl %s)",
			i+1, leader.cfg.NodeID, next.cfg.NodeID, since.Sub(killedAt).Round(time.Millisecond), after.Sub(since).Round(time.Millisecond), gap.Round(time.Millisecond), ttl)
		require.Less(t, after.Sub(since), interval, "the new leader's first renewal waited for the prober's ticker")
		require.Less(t, gap, ttl, "the lease would have lapsed")
		require.Equal(t, driver.RolePrimary, fakes["postgres"].Role(), "the active site's primary was fenced")
		c.restart(leader)
		c.waitForLeader()
	}
}
