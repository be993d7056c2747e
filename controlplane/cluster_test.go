package controlplane

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/clock"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testing/netsim"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// testCluster is a set of in-process servers on loopback with real TLS,
// real gRPC and real Raft transports, with shrunk timeouts.
type testCluster struct {
	t       testing.TB
	tlsDir  string
	servers []*testServer
	// net, when set, carries every connection between servers and agents,
	// so that tests can partition them; the test itself talks to them
	// from outside it.
	net *netsim.Network
	// raftConfig adjusts each server's Raft configuration.
	raftConfig func(*raft.Config)
	// agentLeaseTTL, when set, is the lease_ttl of agents started by
	// startPlanAgent (their boot window) instead of 3s.
	agentLeaseTTL time.Duration
	// quorumNotifyAfter is each server's Deps.QuorumNotifyAfter.
	quorumNotifyAfter time.Duration
	// calendar is each server's Deps.Calendar, the programme's clock.
	calendar clock.Clock
}

// withCalendar makes the servers of a cluster run the programme
// (schedules, trading hours) by cal.
func withCalendar(cal clock.Clock) func(*testCluster) {
	return func(c *testCluster) { c.calendar = cal }
}

type testServer struct {
	*Server
	cfg  *config.ServerConfig
	dead bool
	logs *lockedBuffer
}

// lockedBuffer keeps a server's log for assertions.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testSites places n servers the way DESIGN.md recommends: primary, DR and
// a witness, with the extra servers in the data sites.
func testSites(n int) []string {
	if n == 5 {
		return []string{"primary", "primary", "dr", "dr", "witness"}
	}
	sites := []string{"primary", "dr", "witness"}
	out := make([]string, n)
	for i := range out {
		out[i] = sites[i%3]
	}
	return out
}

// newTestCluster starts n servers that bootstrap together and waits for a
// leader. Everything is stopped in t.Cleanup.
func newTestCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, nil)
}

// newTestClusterWith is newTestCluster with each server's configuration
// adjusted by configure.
func newTestClusterWith(t testing.TB, n int, configure func(*config.ServerConfig)) *testCluster {
	t.Helper()
	return newTestClusterOn(t, nil, testRaftConfig, n, configure)
}

// newTestClusterOf starts a server in each of sites (one entry per
// server, named s1, s2, ...) on plain loopback.
func newTestClusterOf(t testing.TB, sites []string, configure func(*config.ServerConfig)) *testCluster {
	t.Helper()
	return newTestClusterSites(t, nil, testRaftConfig, sites, configure)
}

// newTestClusterOn is newTestClusterWith over network, where each server is
// the endpoint "<site>/<node id>" (a nil network is plain loopback), with
// each server's Raft configuration adjusted by raftConfig.
func newTestClusterOn(t testing.TB, network *netsim.Network, raftConfig func(*raft.Config), n int, configure func(*config.ServerConfig)) *testCluster {
	t.Helper()
	return newTestClusterSites(t, network, raftConfig, testSites(n), configure)
}

func newTestClusterSites(t testing.TB, network *netsim.Network, raftConfig func(*raft.Config), sites []string, configure func(*config.ServerConfig), opts ...func(*testCluster)) *testCluster {
	t.Helper()
	n := len(sites)
	c := &testCluster{t: t, tlsDir: t.TempDir(), net: network, raftConfig: raftConfig}
	for _, o := range opts {
		o(c)
	}
	require.NoError(t, tlsutil.CreateCA(c.tlsDir))
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.tlsDir, Name: "ops", Role: tlsutil.RoleCLI})
	require.NoError(t, err)

	lns := make([][2]net.Listener, n)
	addrs := make([]string, n)
	for i := range lns {
		lns[i] = [2]net.Listener{listen(t, "127.0.0.1:0"), listen(t, "127.0.0.1:0")}
		addrs[i] = lns[i][0].Addr().String()
	}
	for i := range n {
		id := fmt.Sprintf("s%d", i+1)
		_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.tlsDir, Name: id, Role: tlsutil.RoleServer})
		require.NoError(t, err)
		cfg := config.DefaultServerConfig()
		cfg.NodeID, cfg.Site, cfg.DataDir = id, sites[i], t.TempDir()
		cfg.AdvertiseAddr, cfg.BindAddr = "127.0.0.1", "127.0.0.1"
		cfg.BootstrapExpect = n
		cfg.RetryInterval = 50 * time.Millisecond
		cfg.Sites = []config.SiteConfig{{Name: "primary", Kind: "data", Active: true}, {Name: "dr", Kind: "data"}, {Name: "witness", Kind: "witness"}}
		for j, a := range addrs {
			if j != i {
				cfg.RetryJoin = append(cfg.RetryJoin, a)
			}
		}
		if configure != nil {
			configure(cfg)
		}
		ts := &testServer{cfg: cfg, logs: &lockedBuffer{}}
		c.servers = append(c.servers, ts)
		c.start(ts, lns[i][0], lns[i][1])
	}
	t.Cleanup(c.shutdown)
	c.waitForLeader()
	return c
}

func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	return ln
}

// testRaftConfig shrinks Raft's timeouts, as raft's own tests do, but
// keeps enough slack for a busy 2-core machine running with -race.
func testRaftConfig(rc *raft.Config) {
	rc.HeartbeatTimeout = 300 * time.Millisecond
	rc.ElectionTimeout = 300 * time.Millisecond
	rc.LeaderLeaseTimeout = 150 * time.Millisecond
	rc.CommitTimeout = 5 * time.Millisecond
}

func (c *testCluster) material(name string) *tlsutil.Material {
	c.t.Helper()
	m, err := tlsutil.Load(filepath.Join(c.tlsDir, "ca.pem"), filepath.Join(c.tlsDir, name+".pem"), filepath.Join(c.tlsDir, name+"-key.pem"))
	require.NoError(c.t, err)
	return m
}

func (c *testCluster) start(ts *testServer, grpcLn, raftLn net.Listener) {
	c.t.Helper()
	deps := Deps{
		Logger:            testLogger(c.t, ts.cfg.NodeID, ts.logs),
		TLS:               c.material(ts.cfg.NodeID),
		GRPCListener:      grpcLn,
		RaftListener:      raftLn,
		HTTPListener:      listen(c.t, "127.0.0.1:0"),
		RaftConfig:        c.raftConfig,
		QuorumNotifyAfter: c.quorumNotifyAfter,
		Calendar:          c.calendar,
	}
	if c.net != nil {
		ep := ts.endpoint()
		deps.GRPCListener, deps.RaftListener = c.net.Listen(ep, grpcLn), c.net.Listen(ep, raftLn)
		deps.Dial = c.net.Dialer(ep)
	}
	srv, err := NewServer(ts.cfg, deps)
	require.NoError(c.t, err)
	ts.Server, ts.dead = srv, false
}

// endpoint is the server's name on a test network.
func (ts *testServer) endpoint() string { return ts.cfg.Site + "/" + ts.cfg.NodeID }

// connected reports whether a and b can talk on the cluster's network.
func (c *testCluster) connected(a, b *testServer) bool {
	return c.net == nil || c.net.Connected(a.endpoint(), b.endpoint())
}

// testLogger sends a server's logs through t.Log, so they show only when
// the test fails.
func testLogger(t testing.TB, name string, keep io.Writer) hclog.Logger {
	level := hclog.Debug
	if _, bench := t.(*testing.B); bench {
		level = hclog.Warn
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: io.MultiWriter(testWriter{t}, keep)})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (c *testCluster) shutdown() {
	for _, ts := range c.servers {
		if !ts.dead {
			_ = ts.Shutdown(context.Background())
			ts.dead = true
		}
	}
}

// kill stops a server the way a crash would: no leadership transfer.
func (c *testCluster) kill(ts *testServer) {
	c.t.Helper()
	_ = ts.raft.Shutdown().Error()
	require.NoError(c.t, ts.Shutdown(context.Background()))
	ts.dead = true
}

// restart starts a killed server again on its old addresses and data dir.
func (c *testCluster) restart(ts *testServer) {
	c.t.Helper()
	grpcAddr, raftAddr := ts.grpcAddr, ts.raftAddr
	c.start(ts, listen(c.t, grpcAddr), listen(c.t, raftAddr))
}

// waitForLeader waits until one leader is elected and established, every
// live server knows its address and has registered with it, and returns
// it. On a partitioned network only the leader of a majority counts, and
// only the servers connected to it must know it.
func (c *testCluster) waitForLeader() *testServer {
	c.t.Helper()
	var leader *testServer
	testutil.WaitForResult(c.t, 30*time.Second, func() (bool, error) {
		leader = nil
		for _, ts := range c.servers {
			if ts.dead {
				continue
			}
			if ts.IsLeader() && c.reachesMajority(ts) {
				leader = ts
			}
		}
		if leader == nil {
			return false, fmt.Errorf("no leader")
		}
		// A leader acts only once its Barrier has brought its FSM up to
		// every committed entry and the sites are initialized; a test
		// reading its state before then reads an earlier term's.
		if leader.leaderContext() == nil {
			return false, fmt.Errorf("leader %s has not passed its Barrier yet", leader.cfg.NodeID)
		}
		if !leader.fsm.view().Initialized {
			return false, fmt.Errorf("leader %s has not initialized the sites yet", leader.cfg.NodeID)
		}
		records := leader.fsm.view().Servers
		for _, ts := range c.servers {
			if ts.dead || !c.connected(ts, leader) {
				continue
			}
			if addr, self := ts.leaderAddr(); addr == "" && !self {
				return false, fmt.Errorf("%s does not know the leader's address yet", ts.cfg.NodeID)
			}
			if _, ok := records[ts.cfg.NodeID]; !ok {
				return false, fmt.Errorf("%s has not registered with the leader yet", ts.cfg.NodeID)
			}
		}
		return true, nil
	})
	return leader
}

// reachesMajority reports whether ts is connected to a majority of the
// servers, itself included.
func (c *testCluster) reachesMajority(ts *testServer) bool {
	n := 0
	for _, other := range c.servers {
		if c.connected(ts, other) {
			n++
		}
	}
	return n > len(c.servers)/2
}

func (c *testCluster) follower() *testServer {
	for _, ts := range c.servers {
		if !ts.dead && !ts.IsLeader() {
			return ts
		}
	}
	c.t.Fatal("no live follower")
	return nil
}

// testClient is a client of each of a server's services, holding one
// certificate; the certificate's role decides which calls succeed.
type testClient struct {
	pb.OperatorClient
	pb.AgentRegistryClient
	pb.PeerClient
}

// client returns a client with the operator certificate, connected to ts.
func (c *testCluster) client(ts *testServer) testClient {
	return c.clientAs(ts, "ops")
}

// agentClient returns a client with an agent certificate for hostID,
// which may register only that host.
func (c *testCluster) agentClient(ts *testServer, hostID string) testClient {
	c.t.Helper()
	if _, err := os.Stat(filepath.Join(c.tlsDir, hostID+".pem")); err != nil {
		_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.tlsDir, Name: hostID, Role: tlsutil.RoleAgent})
		require.NoError(c.t, err)
	}
	return c.clientAs(ts, hostID)
}

// standIn returns a client with a server certificate that belongs to no
// server, as clustertest's: only with it may a test set the active site
// without a plan (see methodRoles).
func (c *testCluster) standIn(ts *testServer) testClient {
	c.t.Helper()
	if _, err := os.Stat(filepath.Join(c.tlsDir, "stand-in.pem")); err != nil {
		_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.tlsDir, Name: "stand-in", Role: tlsutil.RoleServer})
		require.NoError(c.t, err)
	}
	return c.clientAs(ts, "stand-in")
}

func (c *testCluster) clientAs(ts *testServer, certName string) testClient {
	c.t.Helper()
	conn, err := grpc.NewClient(ts.grpcAddr, grpc.WithTransportCredentials(c.material(certName).ClientCredentials(tlsutil.RoleServer)))
	require.NoError(c.t, err)
	c.t.Cleanup(func() { _ = conn.Close() })
	return testClient{pb.NewOperatorClient(conn), pb.NewAgentRegistryClient(conn), pb.NewPeerClient(conn)}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
