package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent"
	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/clock"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/fsutil"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// startTestAgent runs a host agent with fake services that registers with
// the cluster.
func startTestAgent(t *testing.T, c *testCluster, hostID, site string, leaseTTL time.Duration, roles map[string]driver.Role) map[string]*driver.Fake {
	t.Helper()
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.tlsDir, Name: hostID, Role: tlsutil.RoleAgent})
	require.NoError(t, err)
	fakes := map[string]*driver.Fake{}
	cfg := &config.AgentConfig{
		HostID: hostID, Site: site, DataDir: t.TempDir(), Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", LeaseTTL: leaseTTL,
		TLS: config.TLSConfig{CAFile: filepath.Join(c.tlsDir, "ca.pem"), CertFile: filepath.Join(c.tlsDir, hostID+".pem"), KeyFile: filepath.Join(c.tlsDir, hostID+"-key.pem")},
	}
	for _, ts := range c.servers {
		cfg.Servers = append(cfg.Servers, ts.grpcAddr)
	}
	for name, role := range roles {
		fakes[name] = driver.NewFake(role)
		cfg.Services = append(cfg.Services, config.ServiceConfig{Name: name, Driver: config.DriverProcess})
	}
	a, err := hostagent.New(cfg, hostagent.Deps{
		Logger: testLogger(t, hostID, &lockedBuffer{}),
		TLS:    c.material(hostID),
		NewDriver: func(sc config.ServiceConfig, _ string, _ hclog.Logger) (driver.Driver, error) {
			return fakes[sc.Name], nil
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	return fakes
}

func agentStatus(t *testing.T, c *testCluster, hostID string) (*pb.Agent, uint64, error) {
	resp, err := c.client(c.waitForLeader()).GetStatus(testCtx(t), &pb.GetStatusRequest{})
	if err != nil {
		return nil, 0, err
	}
	for _, a := range resp.GetAgents() {
		if a.GetHostId() == hostID {
			return a, resp.GetEpoch(), nil
		}
	}
	return nil, 0, fmt.Errorf("agent %s not registered", hostID)
}

func TestProber_RenewsActiveSiteLeases_AndFlipFencesOldSite(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitForLeader()
	// The lease TTL equals the servers' default failover.lease_ttl (3s).
	fakes := startTestAgent(t, c, "app-1", "primary", 3*time.Second, map[string]driver.Role{"engine": driver.RolePrimary})

	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		a, _, err := agentStatus(t, c, "app-1")
		if err != nil {
			return false, err
		}
		p := a.GetProbe()
		return p.GetReachable() && p.GetLeaseValid() && p.GetEpoch() == 1,
			fmt.Errorf("probe %+v", p)
	})
	require.Equal(t, driver.RolePrimary, fakes["engine"].Role(), "renewed within lease_ttl, the primary keeps running past its boot window")

	// The active site moves on: the old site's leases are no longer
	// renewed, and its agent fences itself (invariants 1 and 4).
	_, err := c.standIn(c.follower()).SetActiveSite(testCtx(t), &pb.SetActiveSiteRequest{Site: "dr", ExpectedEpoch: 1, Reason: "test"})
	require.NoError(t, err)
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		a, _, err := agentStatus(t, c, "app-1")
		if err != nil {
			return false, err
		}
		return fakes["engine"].Role() == driver.RoleStopped && a.GetProbe().GetFenced() && a.GetProbe().GetEpoch() == 2,
			fmt.Errorf("engine %s, probe %+v", fakes["engine"].Role(), a.GetProbe())
	})
}

// TestProber_RecordsRenewalsInLeaseTable sends single probes from a bare
// leader on a virtual clock, elected at leaseEpoch, ten seconds into its
// term, and checks what each kind of probe counts in its lease table.
func TestProber_RecordsRenewalsInLeaseTable(t *testing.T) {
	c := newTestCluster(t, 1)
	startTestAgent(t, c, "db-1", "primary", 3*time.Second, map[string]driver.Role{"postgres": driver.RolePrimary})
	var addr string
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		a, _, err := agentStatus(t, c, "db-1")
		addr = a.GetAddress()
		return err == nil && addr != "", fmt.Errorf("agent db-1 has no address: %v", err)
	})
	dial := func(t *testing.T, addr string) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(c.material("s1").ClientCredentials(tlsutil.RoleAgent)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	f := leaseTimings()
	now := at(10 * time.Second)
	floor := at(f.ProbeTimeout + f.LeaseTTL + f.ClockSkewMargin)
	cases := []struct {
		name    string
		addr    string
		site    string
		cancel  bool
		want    time.Time
		answers bool
		noRenew bool
		// anchorAnswered, when set, anchors the renewal on a probe
		// answered then.
		anchorAnswered time.Time
	}{
		{name: "answered: answer + ttl + skew", addr: addr, site: "primary", answers: true,
			want: now.Add(f.LeaseTTL + f.ClockSkewMargin)},
		{name: "unanswered: send + RPC deadline + ttl + skew", addr: "127.0.0.1:1", site: "primary",
			want: now.Add(f.ProbeTimeout + f.LeaseTTL + f.ClockSkewMargin)},
		{name: "cut short by the end of the term: as unanswered", addr: addr, site: "primary", cancel: true,
			want: now.Add(f.ProbeTimeout + f.LeaseTTL + f.ClockSkewMargin)},
		{name: "anchored, answered: the anchor's answer + ttl + skew", addr: addr, site: "primary", answers: true,
			anchorAnswered: now.Add(-200 * time.Millisecond), want: now.Add(-200*time.Millisecond + f.LeaseTTL + f.ClockSkewMargin)},
		{name: "anchored, unanswered: the same, never the RPC deadline", addr: "127.0.0.1:1", site: "primary",
			anchorAnswered: now.Add(-200 * time.Millisecond), want: now.Add(-200*time.Millisecond + f.LeaseTTL + f.ClockSkewMargin)},
		{name: "outside the active site: no renewal", addr: addr, site: "dr", answers: true, want: floor},
		{name: "after an unanswered probe: answered, no renewal", addr: addr, site: "primary", noRenew: true, answers: true, want: floor},
		{name: "after an unanswered probe: unanswered, no renewal", addr: "127.0.0.1:1", site: "primary", noRenew: true, want: floor},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := bareLeader(c, f)
			ctx, cancel := context.WithCancel(testCtx(t))
			if tc.cancel {
				cancel()
			}
			defer cancel()
			a := structs.Agent{HostID: "db-1", Site: tc.site, Address: tc.addr}
			r := renewal{renew: !tc.noRenew}
			if !tc.anchorAnswered.IsZero() {
				r.anchor, r.anchorAnswered = 1, tc.anchorAnswered
			}
			res := s.probeAgent(ctx, dial(t, tc.addr), a, []structs.Agent{a}, 1, "primary", r)
			require.Equal(t, tc.answers, res.err == nil, "probe error: %v", res.err)
			want := tc.want
			if res.err == nil {
				// The lease the agent holds (an earlier case's, on its
				// real clock) counts too.
				if reported := now.Add(time.Duration(res.resp.GetLease().GetRemainingMs())*time.Millisecond + f.ClockSkewMargin); res.resp.GetLease().GetValid() && reported.After(want) {
					want = reported
				}
			}
			require.Equal(t, want, s.leases.hostUntil("db-1"))
			_, observed := s.probes.get("db-1")
			require.Equal(t, !tc.cancel, observed, "a probe cut short says nothing about the host")
		})
	}
}

// bareLeader is a server with only what probeAgent needs, with c's first
// server's configuration and failover timings f, on a virtual clock
// elected at leaseEpoch and ten seconds into its term.
func bareLeader(c *testCluster, f config.FailoverConfig) *Server {
	clk := clock.NewFake(leaseEpoch)
	cfg := *c.servers[0].cfg
	cfg.Failover = f
	s := &Server{config: &cfg, logger: hclog.NewNullLogger(), clock: clk, leases: newLeaseTable(clk, f),
		probes: newProbeTable(), primaries: newPrimaryHistory()}
	s.leases.elect(clk.Now())
	clk.Advance(10 * time.Second)
	return s
}

// TestProber_CountsAgentBootWindow probes an agent that keeps an adopted
// primary on its boot window, under an agent lease_ttl longer than the
// leader's, with a probe that renews nothing (the first of a term to an
// anchoring agent): the leader granted nothing, but counts the lease the
// agent says it holds, so a failover waits it out (invariant 4). A
// partition between that answer and the first grant once left such a
// primary running beside the promoted DR site.
func TestProber_CountsAgentBootWindow(t *testing.T) {
	c := newTestCluster(t, 1)
	startTestAgent(t, c, "app-1", "primary", time.Minute, map[string]driver.Role{"engine": driver.RolePrimary})
	var addr string
	testutil.WaitForResult(t, 20*time.Second, func() (bool, error) {
		a, _, err := agentStatus(t, c, "app-1")
		addr = a.GetAddress()
		return err == nil && addr != "", fmt.Errorf("agent app-1 has no address: %v", err)
	})
	// Stop the cluster's own leader probing app-1: its grants would
	// replace the boot window this test looks at.
	require.NoError(t, c.servers[0].Shutdown(testCtx(t)))

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(c.material("s1").ClientCredentials(tlsutil.RoleAgent)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	f := leaseTimings()
	s := bareLeader(c, f)
	now := s.clock.Now()
	a := structs.Agent{HostID: "app-1", Site: "primary", Address: addr, LeaseAnchors: true}

	res := s.probeAgent(testCtx(t), conn, a, []structs.Agent{a}, 1, "primary", renewal{})
	require.NoError(t, res.err)
	lease := res.resp.GetLease()
	require.True(t, lease.GetValid())
	require.False(t, lease.GetGranted(), "a boot window is no leader's grant")
	remaining := time.Duration(lease.GetRemainingMs()) * time.Millisecond
	require.Greater(t, remaining, 30*time.Second, "the agent's boot window of a minute")
	require.Equal(t, now.Add(remaining+f.ClockSkewMargin), s.leases.hostUntil("app-1"),
		"the boot window counts, far beyond anything this leader granted")
	lapsed, _ := s.leases.lapsed([]string{"app-1"})
	require.False(t, lapsed)

	// The first grant replaces the boot window, and the next answer says
	// so: the bound is the grant's again (the virtual clock stands still
	// here, as the agent's real one nearly does).
	res = s.probeAgent(testCtx(t), conn, a, []structs.Agent{a}, 1, "primary", renewal{renew: true, anchor: res.probeID, anchorAnswered: res.answeredAt})
	require.NoError(t, res.err)
	require.True(t, res.resp.GetLease().GetGranted())
	require.Equal(t, now.Add(f.LeaseTTL+f.ClockSkewMargin), s.leases.hostUntil("app-1"))
}

// An agent that cannot write its data_dir (a full disk) reports it in its
// probe answer; the leader keeps it with the probe and status shows it,
// until the agent's writes succeed again.
func TestProber_HostProblem_KeptWithProbe(t *testing.T) {
	c := newTestCluster(t, 1)
	c.waitForLeader()
	var full atomic.Bool
	full.Store(true)
	pa := startPlanAgent(t, c, "db-1", "primary", testService{name: "postgres", role: driver.RolePrimary, promotable: true})
	pa.deps.WriteFile = func(path string, data []byte, durable bool) error {
		if full.Load() && filepath.Base(path) == "lease" {
			return &os.PathError{Op: "write", Path: path + ".tmp-1", Err: syscall.ENOSPC}
		}
		return fsutil.WriteFile(path, data, durable)
	}
	pa.restart(t, c)
	problemsOf := func() ([]*pb.HostProblem, error) {
		a, _, err := agentStatus(t, c, "db-1")
		if err != nil {
			return nil, err
		}
		if !a.GetProbe().GetReachable() {
			return nil, fmt.Errorf("db-1 not probed yet")
		}
		return a.GetProbe().GetProblems(), nil
	}
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		problems, err := problemsOf()
		if err != nil {
			return false, err
		}
		return len(problems) == 1 && problems[0].GetKind() == pb.HostProblemKind_HOST_PROBLEM_KIND_DATA_DIR_UNWRITABLE &&
			problems[0].GetMessage() == "data_dir "+pa.cfg.DataDir+" not writable: no space left on device", fmt.Errorf("problems: %v", problems)
	})
	full.Store(false)
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		problems, err := problemsOf()
		return err == nil && len(problems) == 0, fmt.Errorf("problems: %v (%v)", problems, err)
	})
}
