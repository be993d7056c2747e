package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestCluster_Election(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d servers", n), func(t *testing.T) {
			c := newTestCluster(t, n)
			leader := c.waitForLeader()

			resp, err := c.client(c.follower()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
			require.NoError(t, err)
			require.Equal(t, leader.cfg.NodeID, resp.GetLeaderId())
			require.Equal(t, uint64(1), resp.GetEpoch())
			require.Equal(t, "primary", resp.GetActiveSite())
			require.Len(t, resp.GetServers(), n)
			leaders := 0
			for _, s := range resp.GetServers() {
				require.True(t, s.GetVoter())
				require.NotEmpty(t, s.GetSite(), "server %s has no site recorded", s.GetId())
				require.Contains(t, []string{"leader", "follower"}, s.GetState())
				if s.GetState() == "leader" {
					leaders++
				}
			}
			require.Equal(t, 1, leaders)
		})
	}
}

func TestCluster_LeaderLoss_Reelection(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d servers", n), func(t *testing.T) {
			c := newTestCluster(t, n)
			old := c.waitForLeader()
			c.kill(old)
			leader := c.waitForLeader()
			require.NotEqual(t, old.cfg.NodeID, leader.cfg.NodeID)

			// The new leader accepts writes and reports the dead server.
			resp, err := c.standIn(c.follower()).SetActiveSite(testCtx(t), &pb.SetActiveSiteRequest{Site: "dr", ExpectedEpoch: 1, Reason: "test"})
			require.NoError(t, err)
			require.Equal(t, uint64(2), resp.GetEpoch())
			members, err := c.client(leader).ListMembers(testCtx(t), &pb.ListMembersRequest{})
			require.NoError(t, err)
			for _, m := range members.GetServers() {
				if m.GetId() == old.cfg.NodeID {
					require.Equal(t, stateUnreachable, m.GetState())
				}
			}
		})
	}
}

func TestCluster_Forwarding_FromFollower(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitForLeader()
	follower := c.follower()

	resp, err := c.agentClient(follower, "db-1").RegisterAgent(testCtx(t), &pb.RegisterAgentRequest{
		Write: &pb.WriteOptions{RequestId: "reg-1"},
		Agent: &pb.Agent{HostId: "db-1", Site: "primary", Address: "127.0.0.1:7500", Services: []*pb.Service{{Name: "postgres", Driver: "postgres"}}},
	})
	require.NoError(t, err)
	require.Equal(t, leader.cfg.NodeID, resp.GetMeta().GetServedBy(), "the write is applied by the leader")
	require.Equal(t, uint64(1), resp.GetEpoch())

	require.Len(t, leader.fsm.view().Agents, 1)
	audit, err := c.client(leader).ListAudit(testCtx(t), &pb.ListAuditRequest{})
	require.NoError(t, err)
	last := audit.GetEntries()[len(audit.GetEntries())-1]
	require.Equal(t, "register-agent", last.GetAction())
	require.Equal(t, "agent:db-1", last.GetActor(), "the leader records the original caller, not the forwarding server")
}

func TestCluster_RetriedRequest_AppliedOnce(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitForLeader()
	req := &pb.SetActiveSiteRequest{Write: &pb.WriteOptions{RequestId: "flip-1"}, Site: "dr", ExpectedEpoch: 1}

	first, err := c.standIn(c.follower()).SetActiveSite(testCtx(t), req)
	require.NoError(t, err)
	// The retry goes to another server, as a client does after an
	// ambiguous error; it gets the recorded answer, not a second flip or
	// a CAS failure.
	second, err := c.standIn(leader).SetActiveSite(testCtx(t), req)
	require.NoError(t, err)
	require.Equal(t, first.GetEpoch(), second.GetEpoch())
	require.Equal(t, first.GetMeta().GetIndex(), second.GetMeta().GetIndex())
	require.Equal(t, uint64(2), leader.fsm.view().Epoch)
}

func TestCluster_CompareAndSet_Rejected(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitForLeader()
	_, err := c.standIn(c.follower()).SetActiveSite(testCtx(t), &pb.SetActiveSiteRequest{Site: "dr", ExpectedEpoch: 7})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "epoch is 1, not 7")
}

func TestCluster_Restart_StateIntact(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitForLeader()
	_, err := c.agentClient(c.follower(), "app-1").RegisterAgent(testCtx(t), &pb.RegisterAgentRequest{
		Agent: &pb.Agent{HostId: "app-1", Site: "dr", Address: "127.0.0.1:7510"},
	})
	require.NoError(t, err)

	for _, ts := range c.servers {
		c.kill(ts)
	}
	for _, ts := range c.servers {
		c.restart(ts)
	}
	c.waitForLeader()
	for _, ts := range c.servers {
		testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
			v := ts.fsm.view()
			if len(v.Agents) != 1 || v.Agents[0].HostID != "app-1" {
				return false, fmt.Errorf("%s has agents %v", ts.cfg.NodeID, v.Agents)
			}
			return true, nil
		})
	}
}

func TestCluster_Snapshot_RestartRestores(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitForLeader()
	follower := c.follower()
	for i := range 5 {
		_, err := c.agentClient(follower, fmt.Sprintf("h%d", i)).RegisterAgent(testCtx(t), &pb.RegisterAgentRequest{
			Agent: &pb.Agent{HostId: fmt.Sprintf("h%d", i), Site: "primary", Address: "127.0.0.1:7500"},
		})
		require.NoError(t, err)
	}
	ts := c.follower()
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		return len(ts.fsm.view().Agents) == 5, nil
	})
	want := ts.fsm.view()
	require.NoError(t, ts.raft.Snapshot().Error())
	c.kill(ts)
	c.restart(ts)
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		got := ts.fsm.view()
		return len(got.Agents) == 5, fmt.Errorf("restored %d agents", len(got.Agents))
	})
	got := ts.fsm.view()
	require.Equal(t, want.Agents, got.Agents)
	require.Equal(t, want.Epoch, got.Epoch)
	require.Equal(t, want.Sites, got.Sites)
}

func TestCluster_NoLeader_ExplainsQuorum(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitForLeader()
	survivor := c.servers[0]
	for _, ts := range c.servers[1:] {
		c.kill(ts)
	}
	_, err := c.client(survivor).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "no leader: 1 of 3 servers reachable; quorum needs 2")

	// A stale read still answers from local state.
	resp, err := c.client(survivor).GetStatus(testCtx(t), &pb.GetStatusRequest{Read: &pb.ReadOptions{Stale: true}})
	require.NoError(t, err)
	require.True(t, resp.GetMeta().GetStale())
	require.Equal(t, uint64(1), resp.GetEpoch())
}

func TestCluster_RemoveMember_Refusals(t *testing.T) {
	t.Run("last server", func(t *testing.T) {
		c := newTestCluster(t, 1)
		_, err := c.client(c.servers[0]).RemoveMember(testCtx(t), &pb.RemoveMemberRequest{Id: "s1"})
		require.Equal(t, codes.FailedPrecondition, status.Code(err))
		require.Contains(t, status.Convert(err).Message(), "last server")
	})
	t.Run("would lose quorum", func(t *testing.T) {
		c := newTestCluster(t, 5)
		leader := c.waitForLeader()
		var dead, live []*testServer
		for _, ts := range c.servers {
			if ts != leader && len(dead) < 2 {
				dead = append(dead, ts)
			} else if ts != leader {
				live = append(live, ts)
			}
		}
		for _, ts := range dead {
			c.kill(ts)
		}
		cl := c.client(leader)
		_, err := cl.RemoveMember(testCtx(t), &pb.RemoveMemberRequest{Id: live[0].cfg.NodeID})
		require.Equal(t, codes.FailedPrecondition, status.Code(err))
		require.Contains(t, status.Convert(err).Message(), "would leave 2 healthy voters of 4; a quorum needs 3")

		// Removing a dead server is what an operator should do instead.
		_, err = cl.RemoveMember(testCtx(t), &pb.RemoveMemberRequest{Id: dead[0].cfg.NodeID})
		require.NoError(t, err)
		members, err := cl.ListMembers(testCtx(t), &pb.ListMembersRequest{})
		require.NoError(t, err)
		require.Len(t, members.GetServers(), 4)
	})
	t.Run("unknown server", func(t *testing.T) {
		c := newTestCluster(t, 3)
		_, err := c.client(c.servers[0]).RemoveMember(testCtx(t), &pb.RemoveMemberRequest{Id: "s9"})
		require.Equal(t, codes.NotFound, status.Code(err))
	})
}

func TestCluster_Permissions(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitForLeader()
	agent := c.agentClient(c.servers[0], "db-1")

	_, err := agent.ListMembers(testCtx(t), &pb.ListMembersRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "an agent certificate may not manage the cluster")
	_, err = agent.RegisterAgent(testCtx(t), &pb.RegisterAgentRequest{Agent: &pb.Agent{HostId: "db-2", Site: "primary", Address: "127.0.0.1:1"}})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "an agent may register only its own host")
	_, err = agent.RegisterAgent(testCtx(t), &pb.RegisterAgentRequest{Agent: &pb.Agent{HostId: "db-1", Site: "primary", Address: "127.0.0.1:1"}})
	require.NoError(t, err)
	_, err = c.client(c.servers[0]).JoinCluster(testCtx(t), &pb.JoinClusterRequest{Id: "evil", Address: "127.0.0.1:1", RaftAddress: "127.0.0.1:2"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "only servers may join")
}

// TestCluster_Permissions_OnlyPlansSetTheActiveSite: an operator's
// certificate may not set the active site, at the leader or through a
// follower; and a server certificate that forwards a request is checked as
// the caller it names, so it cannot carry an operator's or an agent's call
// past methodRoles.
func TestCluster_Permissions_OnlyPlansSetTheActiveSite(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitForLeader()
	for _, ts := range []*testServer{leader, c.follower()} {
		_, err := c.client(ts).SetActiveSite(testCtx(t), &pb.SetActiveSiteRequest{Site: "dr", ExpectedEpoch: 1, Reason: "test"})
		require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
		require.Contains(t, status.Convert(err).Message(), "a cli certificate (ops) may not call /drplane.v1.Operator/SetActiveSite")
	}
	require.Equal(t, uint64(1), leader.fsm.view().Epoch)
	require.Equal(t, "primary", leader.fsm.view().ActiveSite)

	asForwarded := func(role tlsutil.Role, name string) context.Context {
		return metadata.AppendToOutgoingContext(testCtx(t), mdForwarded, "stand-in", mdCallerRole, string(role), mdCallerName, name)
	}
	standIn := c.standIn(leader)
	_, err := standIn.SetActiveSite(asForwarded(tlsutil.RoleCLI, "ops"), &pb.SetActiveSiteRequest{Site: "dr", ExpectedEpoch: 1})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "a forwarded operator's call is checked as the operator's")
	_, err = standIn.StartExecution(testCtx(t), &pb.StartExecutionRequest{Kind: "failover", To: "dr"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "a server certificate is no operator's")
	_, err = standIn.RegisterAgent(asForwarded(tlsutil.RoleAgent, "db-1"), &pb.RegisterAgentRequest{Agent: &pb.Agent{HostId: "db-2", Site: "primary", Address: "127.0.0.1:1"}})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "a forwarded agent may register only its own host")
	_, err = standIn.GetStatus(asForwarded(tlsutil.RoleCLI, "ops"), &pb.GetStatusRequest{})
	require.NoError(t, err, "a forwarded operator's read is served")
	require.Equal(t, uint64(1), leader.fsm.view().Epoch)
}

func TestCluster_TLS_RefusesForeignAndMissingCerts(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitForLeader()
	addr := c.servers[0].grpcAddr

	otherCA := t.TempDir()
	require.NoError(t, tlsutil.CreateCA(otherCA))
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: otherCA, Name: "intruder", Role: tlsutil.RoleCLI})
	require.NoError(t, err)
	foreign, err := tlsutil.Load(filepath.Join(otherCA, "ca.pem"), filepath.Join(otherCA, "intruder.pem"), filepath.Join(otherCA, "intruder-key.pem"))
	require.NoError(t, err)
	// The intruder trusts the real CA, so only its own certificate is wrong.
	trusting := c.material("ops").ClientConfig(tlsutil.RoleServer)
	trusting.Certificates = foreign.ClientConfig(tlsutil.RoleServer).Certificates

	noCert := c.material("ops").ClientConfig(tlsutil.RoleServer)
	noCert.Certificates = nil

	for name, cfg := range map[string]*tls.Config{"foreign CA": trusting, "no certificate": noCert} {
		t.Run(name, func(t *testing.T) {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
			require.NoError(t, err)
			defer conn.Close()
			_, err = pb.NewOperatorClient(conn).GetStatus(testCtx(t), &pb.GetStatusRequest{Read: &pb.ReadOptions{Stale: true}})
			require.Error(t, err)
			require.Equal(t, codes.Unavailable, status.Code(err), "the TLS handshake fails before any RPC: %v", err)
		})
	}
}

func TestCluster_GracefulShutdown_TransfersLeadership(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.waitForLeader()
	require.NoError(t, old.Shutdown(testCtx(t)))
	old.dead = true
	require.Contains(t, old.logs.String(), "leadership transferred")
	leader := c.waitForLeader()
	require.NotEqual(t, old.cfg.NodeID, leader.cfg.NodeID)
}
