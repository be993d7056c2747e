package rsync

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/tlsutil"
	drplanev1 "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Certificate names of the test PKI.
const (
	primaryAgent = "primary-1" // the serving agent
	drAgent      = "dr-1"      // the pulling agent
	serverCert   = "s1"
	cliCert      = "ops"
)

// testPKI is a CA with a certificate for every role, and a second CA with
// an agent certificate of the same name as drAgent.
type testPKI struct {
	dir      string
	otherDir string
}

// newTestPKI creates both CAs and their certificates in temp dirs.
func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), otherDir: t.TempDir()}
	require.NoError(t, tlsutil.CreateCA(p.dir))
	require.NoError(t, tlsutil.CreateCA(p.otherDir))
	certs := []struct {
		dir, name string
		role      tlsutil.Role
	}{
		{p.dir, primaryAgent, tlsutil.RoleAgent},
		{p.dir, drAgent, tlsutil.RoleAgent},
		{p.dir, serverCert, tlsutil.RoleServer},
		{p.dir, cliCert, tlsutil.RoleCLI},
		{p.otherDir, drAgent, tlsutil.RoleAgent},
	}
	for _, c := range certs {
		_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: c.dir, Name: c.name, Role: c.role})
		require.NoError(t, err)
	}
	return p
}

// tunnelOptions are the tunnel flags of certificate name in dir.
func tunnelOptions(dir, name, addr, sync string) TunnelOptions {
	return TunnelOptions{
		PeerAddr: addr, SyncName: sync,
		CAFile:   filepath.Join(dir, tlsutil.CACertFile),
		CertFile: filepath.Join(dir, name+".pem"),
		KeyFile:  filepath.Join(dir, name+"-key.pem"),
	}
}

// material loads certificate name of the main CA.
func (p *testPKI) material(t testing.TB, name string) *tlsutil.Material {
	t.Helper()
	o := tunnelOptions(p.dir, name, "", "")
	m, err := tlsutil.Load(o.CAFile, o.CertFile, o.KeyFile)
	require.NoError(t, err)
	return m
}

// servingAgent is the primary site's agent: a HostAgent gRPC server on
// loopback with mutual TLS whose SyncTunnel is served by a Server.
type servingAgent struct {
	addr string
	// served receives the error of every Serve call once it returned.
	served chan error
}

// syncEndpoint forwards SyncTunnel to Server.Serve, as the agent's
// HostAgent endpoint does.
type syncEndpoint struct {
	drplanev1.UnimplementedHostAgentServer
	server *Server
	served chan error
}

// SyncTunnel implements drplanev1.HostAgentServer.
func (e *syncEndpoint) SyncTunnel(stream drplanev1.HostAgent_SyncTunnelServer) error {
	err := e.server.Serve(stream)
	select {
	case e.served <- err:
	default: // nobody is looking (benchmarks): never block the handler
	}
	return err
}

// startServingAgent serves syncs with rsyncBin, holding the primaryAgent
// certificate. Everything stops in t.Cleanup.
func startServingAgent(t testing.TB, pki *testPKI, syncs map[string][]string, rsyncBin string) *servingAgent {
	t.Helper()
	logger := testLogger(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	// WaitForHandlers makes Stop wait for running Serve calls, so none
	// outlives the test.
	gs := grpc.NewServer(grpc.Creds(pki.material(t, primaryAgent).ServerCredentials(logger)), grpc.WaitForHandlers(true))
	ep := &syncEndpoint{server: NewServer(syncs, rsyncBin, logger), served: make(chan error, 64)}
	drplanev1.RegisterHostAgentServer(gs, ep)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return &servingAgent{addr: lis.Addr().String(), served: ep.served}
}

// dial opens a HostAgent client with creds to the serving agent.
func (a *servingAgent) dial(t testing.TB, creds credentials.TransportCredentials) drplanev1.HostAgentClient {
	t.Helper()
	conn, err := grpc.NewClient(a.addr, grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return drplanev1.NewHostAgentClient(conn)
}

// waitServed returns the error of the next Serve call to return.
func (a *servingAgent) waitServed(t testing.TB) error {
	t.Helper()
	select {
	case err := <-a.served:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10s")
		return nil
	}
}

// testLogger logs through t.Log until the test's cleanup, and drops lines
// after it, since gRPC may still log a handshake as the server stops.
// Benchmarks log nothing.
func testLogger(t testing.TB) hclog.Logger {
	if _, ok := t.(*testing.B); ok {
		return hclog.NewNullLogger() // benchmarks print every b.Log line
	}
	w := &testLogWriter{t: t}
	t.Cleanup(w.stop)
	return hclog.New(&hclog.LoggerOptions{Name: "rsync", Level: hclog.Debug, Output: w})
}

// testLogWriter writes to t.Log while the test runs.
type testLogWriter struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

// Write implements io.Writer.
func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// stop drops all later lines.
func (w *testLogWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}

// requireRsync returns the path of the rsync binary, which CI installs.
func requireRsync(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("rsync")
	require.NoError(t, err, "rsync must be installed (apt-get install rsync)")
	return bin
}

// self is the test binary, which runs RunTunnel when started as
// "agent rsync-tunnel" (see TestMain).
func self(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	return exe
}

// ctxT is a context that ends with the test or after 30s.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
