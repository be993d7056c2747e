package tlsutil

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

// logBuffer collects log output and signals every write, so tests can wait
// for a line without sleeping.
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

// newTestLogger returns a debug logger writing into a logBuffer.
func newTestLogger(t *testing.T) (hclog.Logger, *logBuffer) {
	t.Helper()
	b := &logBuffer{wrote: make(chan struct{}, 1)}
	logger := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: b})
	return logger, b
}

// Write implements io.Writer.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return n, err
}

// String returns everything logged so far.
func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor blocks until the log contains substr.
func (b *logBuffer) waitFor(t *testing.T, substr string) {
	t.Helper()
	timeout := time.After(testTimeout)
	for !strings.Contains(b.String(), substr) {
		select {
		case <-b.wrote:
		case <-timeout:
			t.Fatalf("log never contained %q; got:\n%s", substr, b.String())
		}
	}
}

// startHealthServer serves the standard gRPC health service with creds and
// reports the identity of every caller on the returned channel.
func startHealthServer(t *testing.T, creds credentials.TransportCredentials) (string, <-chan Identity) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ids := make(chan Identity, 16)
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		id, err := IdentityFromContext(ctx)
		if err != nil {
			return nil, status.Error(codes.Unauthenticated, err.Error())
		}
		ids <- id
		return handler(ctx, req)
	}
	srv := grpc.NewServer(grpc.Creds(creds), grpc.UnaryInterceptor(record))
	grpc_health_v1.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), ids
}

// checkHealth makes one health check over creds.
func checkHealth(t *testing.T, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	resp, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		return err
	}
	require.Equal(t, grpc_health_v1.HealthCheckResponse_SERVING, resp.GetStatus())
	return nil
}

func TestServerCredentials_AcceptsSameCA(t *testing.T) {
	pki := newTestPKI(t)
	server := pki.issue("server-1", RoleServer)
	logger, logs := newTestLogger(t)
	addr, ids := startHealthServer(t, server.ServerCredentials(logger))

	cases := []struct {
		name string
		role Role
	}{
		{name: "operator", role: RoleCLI},
		{name: "host-1", role: RoleAgent},
		{name: "server-2", role: RoleServer},
	}
	for _, tc := range cases {
		t.Run(string(tc.role), func(t *testing.T) {
			client := pki.issue(tc.name, tc.role)
			require.NoError(t, checkHealth(t, addr, client.ClientCredentials(RoleServer)))
			require.Equal(t, Identity{Name: tc.name, Role: tc.role}, <-ids)
		})
	}
	require.NotContains(t, logs.String(), "refused connection")
}

func TestServerCredentials_Refuses(t *testing.T) {
	pki := newTestPKI(t)
	other := newTestPKI(t)
	server := pki.issue("server-1", RoleServer)
	foreign := other.issue("intruder", RoleCLI)
	_, _, err := createCert(CertOptions{Dir: pki.dir, Name: "expired", Role: RoleCLI}, time.Now().Add(-2*DefaultCertValidity))
	require.NoError(t, err)
	expired, err := tls.LoadX509KeyPair(filepath.Join(pki.dir, "expired.pem"), filepath.Join(pki.dir, "expired-key.pem"))
	require.NoError(t, err)

	// Each client trusts the server, so only the server can refuse it.
	clientConfig := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: server.CAPool, ServerName: RoleDNSName(RoleServer), Certificates: certs}
	}
	cases := []struct {
		name   string
		config *tls.Config
	}{
		{name: "certificate from another CA", config: clientConfig(foreign.Certificate)},
		{name: "no certificate", config: clientConfig()},
		{name: "expired certificate", config: clientConfig(expired)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logger, logs := newTestLogger(t)
			addr, ids := startHealthServer(t, server.ServerCredentials(logger))

			err := checkHealth(t, addr, credentials.NewTLS(tc.config))
			require.Error(t, err)
			require.Equal(t, codes.Unavailable, status.Code(err), "error: %v", err)

			logs.waitFor(t, "refused connection")
			out := logs.String()
			require.Contains(t, out, "remote_addr=127.0.0.1:")
			require.NotContains(t, out, "PRIVATE KEY")
			require.Empty(t, ids, "no request may reach a handler")
		})
	}
}

func TestClientCredentials_VerifiesPeerRole(t *testing.T) {
	pki := newTestPKI(t)
	agent := pki.issue("host-1", RoleAgent)
	client := pki.issue("server-1", RoleServer)
	addr, ids := startHealthServer(t, agent.ServerCredentials(nil))

	err := checkHealth(t, addr, client.ClientCredentials(RoleServer))
	require.Error(t, err, "an agent certificate must not pass as a server")
	require.Equal(t, codes.Unavailable, status.Code(err))

	require.NoError(t, checkHealth(t, addr, client.ClientCredentials(RoleAgent)))
	require.Equal(t, Identity{Name: "server-1", Role: RoleServer}, <-ids)
}
