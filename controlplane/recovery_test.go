package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Two sites without a witness: two servers at each, so neither site
// holds a quorum alone (DESIGN.md section 5).
var twoSiteServers = []string{"primary", "primary", "dr", "dr"}

// twoSiteFailover configures two data sites, fast timings, and the
// STONITH hook when stonithLog is set: a command that records its call.
func twoSiteFailover(automatic bool, stonithLog string) func(*config.ServerConfig) {
	return func(cfg *config.ServerConfig) {
		fastFailover(automatic)(cfg)
		// Leases long enough to outlive the elections of a two-voter
		// cluster forming on a loaded machine (a lapsed lease fences).
		cfg.Failover.LeaseTTL = 2 * time.Second
		cfg.Failover.FailoverTimeout = 3 * time.Second
		cfg.Failover.QuorumLossTimeout = 3 * time.Second
		cfg.Sites = []config.SiteConfig{{Name: "primary", Kind: "data", Active: true}, {Name: "dr", Kind: "data"}}
		if stonithLog != "" {
			cfg.Failover.Stonith = []config.StonithConfig{{Site: "primary", Timeout: 10 * time.Second,
				Command: []string{"/bin/sh", "-c", `echo "$DRPLANE_STONITH_SITE by $DRPLANE_NODE_ID" >> ` + stonithLog}}}
		}
	}
}

// serviceRestarts restarts in place every live server that asked for it,
// as `drplane server` does, and returns their ids.
func (c *testCluster) serviceRestarts() []string {
	c.t.Helper()
	var ids []string
	for _, ts := range c.servers {
		if ts.dead {
			continue
		}
		select {
		case <-ts.RestartRequested():
		default:
			continue
		}
		require.NoError(c.t, ts.Shutdown(context.Background()))
		c.restart(ts)
		ids = append(ids, ts.cfg.NodeID)
	}
	return ids
}

// loseSite kills a site's servers and stops its agents, as a power cut.
func (ts *twoSites) loseSite(t *testing.T, site string) {
	t.Helper()
	ts.losePrimaryAgents(t)
	for _, s := range ts.c.servers {
		if s.cfg.Site == site {
			ts.c.kill(s)
		}
	}
}

// waitRecoveredFailover services restarts until the recovered leader's
// failover ends, and returns it with that leader.
func (ts *twoSites) waitRecoveredFailover(t *testing.T) (*pb.Execution, *testServer) {
	t.Helper()
	var ex *pb.Execution
	var leader *testServer
	testutil.WaitForResult(t, 90*time.Second, func() (bool, error) {
		ts.c.serviceRestarts()
		leader = nil
		for _, s := range ts.c.servers {
			if !s.dead && s.removedReason() == "" && s.IsLeader() {
				leader = s
			}
		}
		if leader == nil {
			return false, fmt.Errorf("no leader")
		}
		resp, err := ts.c.client(leader).ListExecutions(testCtx(t), &pb.ListExecutionsRequest{})
		if err != nil {
			return false, err
		}
		for _, e := range resp.GetExecutions() {
			if e.GetKind() == "failover" {
				ex = e
			}
		}
		if ex == nil {
			return false, fmt.Errorf("leader %s started no failover", leader.cfg.NodeID)
		}
		return ex.GetState() != pb.ExecutionState_EXECUTION_STATE_RUNNING, fmt.Errorf("failover %s is %s", ex.GetId(), ex.GetState())
	})
	return ex, leader
}

// voters returns the leader's Raft voters.
func voters(t *testing.T, s *testServer) []string {
	t.Helper()
	f := s.raft.GetConfiguration()
	require.NoError(t, f.Error())
	var ids []string
	for _, srv := range f.Configuration().Servers {
		ids = append(ids, string(srv.ID))
	}
	slices.Sort(ids)
	return ids
}

// waitVoters services restarts until the leader's configuration is want.
func (ts *twoSites) waitVoters(t *testing.T, want ...string) *testServer {
	t.Helper()
	var leader *testServer
	testutil.WaitForResult(t, 60*time.Second, func() (bool, error) {
		ts.c.serviceRestarts()
		for _, s := range ts.c.servers {
			if !s.dead && s.removedReason() == "" && s.IsLeader() {
				leader = s
				got := voters(t, s)
				return slices.Equal(got, want), fmt.Errorf("voters %v, want %v", got, want)
			}
		}
		return false, fmt.Errorf("no leader")
	})
	return leader
}

func TestQuorumLoss_StonithConfirms_AutomaticFailover_OldServersRefuseUntilRejoined(t *testing.T) {
	stonithLog := filepath.Join(t.TempDir(), "stonith.log")
	ts := newTwoSitesOn(t, twoSiteServers, twoSiteFailover(true, stonithLog))
	before := ts.c.waitForLeader().fsm.view().Epoch

	ts.loseSite(t, "primary")
	ex, leader := ts.waitRecoveredFailover(t)
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.Equal(t, "automatic", structs.TriggerName(ex.GetTrigger()))
	require.Equal(t, "dr", ex.GetTo())
	require.Contains(t, ex.GetRpoDetail(), "quorum lost; stonith hook for site primary confirmed the fence")
	require.Contains(t, ex.GetRpoDetail(), "its STONITH hook confirmed primary fenced at ", "the RPO counts up to the STONITH confirmation")
	// The confirmed STONITH is the fence of every primary host and ends
	// the wait for their leases: none of them is contacted.
	for _, id := range []string{"fence@db-1", "fence@app-1", "lease-wait:primary"} {
		st := stepOf(t, ex, id)
		require.Equal(t, structs.StepSucceeded, structs.StepStateName(st.GetState()), "%s: %s", id, st.GetMessage())
		require.Contains(t, st.GetMessage(), "the STONITH hook of site primary confirmed its fence at ", id)
		require.Less(t, st.GetEndedAt().AsTime().Sub(st.GetStartedAt().AsTime()), time.Second, "%s waited for nothing", id)
	}
	// The hook ran once, on the one server that acted.
	calls, err := os.ReadFile(stonithLog)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(calls), "primary by "), string(calls))
	st := leader.fsm.view()
	require.Equal(t, "dr", st.ActiveSite)
	require.Greater(t, st.Epoch, before)
	require.Equal(t, driver.RolePrimary, ts.db2["postgres"].Role())
	require.Equal(t, driver.RolePrimary, ts.app2["engine"].Role())

	// The other DR server wiped its state and rejoined the recovered one.
	leader = ts.waitVoters(t, "s3", "s4")

	// A server of the lost site comes back with its old configuration: it
	// is told it was removed and refuses to serve.
	s1 := ts.c.servers[0]
	ts.c.restart(s1)
	testutil.WaitForResult(t, 60*time.Second, func() (bool, error) {
		ts.c.serviceRestarts()
		return s1.removedReason() != "", fmt.Errorf("s1 still serves")
	})
	_, err = ts.c.client(s1).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "drplane server rejoin")
	info, err := ts.c.client(s1).NodeInfo(testCtx(t), &pb.NodeInfoRequest{})
	require.NoError(t, err)
	require.Equal(t, "removed", info.GetState())
	require.Equal(t, []string{"s3", "s4"}, voters(t, leader), "a removed server must not rejoin by itself")

	// `drplane server rejoin` wipes it; it restarts and joins as a voter.
	moved, err := WipeForRejoin(s1.cfg.DataDir)
	require.NoError(t, err)
	require.DirExists(t, moved, "the old state is kept aside")
	ts.waitVoters(t, "s1", "s3", "s4")
}

func TestQuorumLoss_NoStonith_WaitsForOperator(t *testing.T) {
	ts := newTwoSitesOn(t, twoSiteServers, twoSiteFailover(false, ""))
	ts.loseSite(t, "primary")
	s3 := ts.c.servers[2]

	// The DR servers report why they wait instead of acting.
	testutil.WaitForResult(t, 60*time.Second, func() (bool, error) {
		_, err := ts.c.client(s3).GetStatus(testCtx(t), &pb.GetStatusRequest{})
		if err == nil {
			return false, fmt.Errorf("status answered without a quorum")
		}
		return strings.Contains(err.Error(), "quorum lost; primary state unknown"), err
	})
	for _, s := range ts.c.servers[2:] {
		select {
		case <-s.RestartRequested():
			t.Fatalf("%s acts on quorum loss without stonith or an operator", s.cfg.NodeID)
		default:
		}
	}

	// Without the operator's confirmation, nothing happens.
	_, err := ts.c.client(s3).RecoverQuorum(testCtx(t), &pb.RecoverQuorumRequest{To: "dr"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	_, err = ts.c.client(s3).RecoverQuorum(testCtx(t), &pb.RecoverQuorumRequest{To: "primary", ConfirmPrimaryDown: true})
	require.Error(t, err)

	// With it, the DR site recovers and fails over.
	resp, err := ts.c.client(s3).RecoverQuorum(testCtx(t), &pb.RecoverQuorumRequest{To: "dr", ConfirmPrimaryDown: true, Note: "INC-7 primary DC dark"})
	require.NoError(t, err)
	require.NotEmpty(t, resp.GetId())
	ex, leader := ts.waitRecoveredFailover(t)
	require.Equal(t, "succeeded", structs.ExecStateName(ex.GetState()), ex.GetMessage())
	require.Equal(t, "manual", structs.TriggerName(ex.GetTrigger()))
	require.Equal(t, "INC-7 primary DC dark", ex.GetNote(), "the operator's note is kept across the recovery's restart")
	require.Equal(t, "dr", leader.fsm.view().ActiveSite)
	// Nothing but the operator's word bounds when the old primary stopped
	// acknowledging writes (its servers may have kept leading): the RPO
	// counts up to the confirmation.
	require.Contains(t, ex.GetRpoDetail(), "confirmed primary down at ")
	require.Contains(t, ex.GetRpoDetail(), "(no STONITH hook)")
	ts.waitVoters(t, "s3", "s4")
}

func TestRecoverQuorum_RefusedWhileALeaderOrTheActiveSiteAnswers(t *testing.T) {
	ts := newTwoSitesOn(t, twoSiteServers, twoSiteFailover(false, ""))
	s3 := ts.c.servers[2]
	_, err := ts.c.client(s3).RecoverQuorum(testCtx(t), &pb.RecoverQuorumRequest{To: "dr", ConfirmPrimaryDown: true})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "leads")
	// A leaderless moment with the active site's servers answering is a
	// partition or an election, not a site loss.
	ts.c.kill(ts.c.servers[3])
	ts.c.kill(ts.c.servers[0])
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		_, err := ts.c.client(s3).RecoverQuorum(testCtx(t), &pb.RecoverQuorumRequest{To: "dr", ConfirmPrimaryDown: true})
		return err != nil && strings.Contains(err.Error(), "server s2 of the active site primary answers"), fmt.Errorf("%v", err)
	})
	select {
	case <-s3.RestartRequested():
		t.Fatal("s3 recovered while a server of the active site answers")
	default:
	}
}

// TestNotifyRemoved_LeaderUnknownToABehindServer checks that a server of
// the recovering site rejoins when the recovered leader tells it so, even
// when its own log is too far behind to know that leader: the request
// names the leader's site. A server of another site refuses to serve.
func TestNotifyRemoved_LeaderUnknownToABehindServer(t *testing.T) {
	c := newTestClusterOf(t, []string{"dr"}, nil)
	s := c.waitForLeader()
	ep := &peerEndpoint{srv: s.Server}
	epoch := s.fsm.view().Epoch
	_, known := s.fsm.view().Servers["s9"]
	require.False(t, known, "the test needs a leader this server does not know")

	resp, err := ep.NotifyRemoved(testCtx(t), &pb.NotifyRemovedRequest{LeaderId: "s9", LeaderSite: "dr", Epoch: epoch + 1, Voters: []string{"s9"}})
	require.NoError(t, err)
	require.True(t, resp.GetAccepted())
	require.Equal(t, "rejoining", resp.GetReason())
	select {
	case <-s.RestartRequested():
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not restart to rejoin")
	}
}

func TestNotifyRemoved_LeaderOfAnotherSite_Removes(t *testing.T) {
	c := newTestClusterOf(t, []string{"primary"}, nil)
	s := c.waitForLeader()
	ep := &peerEndpoint{srv: s.Server}
	resp, err := ep.NotifyRemoved(testCtx(t), &pb.NotifyRemovedRequest{LeaderId: "s9", LeaderSite: "dr", Epoch: s.fsm.view().Epoch + 1, Voters: []string{"s9"}})
	require.NoError(t, err)
	require.Equal(t, "removed", resp.GetReason())
	require.FileExists(t, filepath.Join(s.cfg.DataDir, removedFileName), "the removal is recorded for the restart")
	select {
	case <-s.RestartRequested():
	case <-time.After(10 * time.Second):
		t.Fatal("the removed server did not restart to refuse serving")
	}
}
