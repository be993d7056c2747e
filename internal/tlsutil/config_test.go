package tlsutil

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoad_Errors(t *testing.T) {
	pki := newTestPKI(t)
	other := newTestPKI(t)
	pki.issue("good", RoleServer)
	other.issue("foreign", RoleServer)
	pki.issue("second", RoleServer)
	_, _, err := createCert(CertOptions{Dir: pki.dir, Name: "expired", Role: RoleServer},
		time.Now().Add(-2*DefaultCertValidity))
	require.NoError(t, err)

	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not pem at all"), 0o600))

	path := func(p *testPKI, file string) string { return filepath.Join(p.dir, file) }
	missing := filepath.Join(t.TempDir(), "missing.pem")

	cases := []struct {
		name          string
		ca, cert, key string
		wantFile      string
		wantErr       error
	}{
		{
			name: "missing CA", ca: missing, cert: path(pki, "good.pem"), key: path(pki, "good-key.pem"),
			wantFile: missing, wantErr: os.ErrNotExist,
		},
		{
			name: "CA file is not a CA", ca: path(pki, "good.pem"), cert: path(pki, "good.pem"), key: path(pki, "good-key.pem"),
			wantFile: path(pki, "good.pem"), wantErr: ErrNotCA,
		},
		{
			name: "missing certificate", ca: pki.caFile(), cert: missing, key: path(pki, "good-key.pem"),
			wantFile: missing, wantErr: os.ErrNotExist,
		},
		{
			name: "unparsable certificate", ca: pki.caFile(), cert: garbage, key: path(pki, "good-key.pem"),
			wantFile: garbage, wantErr: ErrNoCertificate,
		},
		{
			name: "missing key", ca: pki.caFile(), cert: path(pki, "good.pem"), key: missing,
			wantFile: missing, wantErr: os.ErrNotExist,
		},
		{
			name: "unparsable key", ca: pki.caFile(), cert: path(pki, "good.pem"), key: garbage,
			wantFile: garbage, wantErr: ErrNoPrivateKey,
		},
		{
			name: "key of another certificate", ca: pki.caFile(), cert: path(pki, "good.pem"), key: path(pki, "second-key.pem"),
			wantFile: path(pki, "second-key.pem"), wantErr: ErrKeyMismatch,
		},
		{
			name: "certificate from another CA", ca: pki.caFile(), cert: path(other, "foreign.pem"), key: path(other, "foreign-key.pem"),
			wantFile: path(other, "foreign.pem"),
		},
		{
			name: "expired certificate", ca: pki.caFile(), cert: path(pki, "expired.pem"), key: path(pki, "expired-key.pem"),
			wantFile: path(pki, "expired.pem"), wantErr: ErrExpired,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(tc.ca, tc.cert, tc.key)
			require.Error(t, err)
			require.Nil(t, m)
			require.ErrorContains(t, err, tc.wantFile)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			}
		})
	}
}

func TestLoad_Material(t *testing.T) {
	pki := newTestPKI(t)
	m := pki.issue("server-1", RoleServer)
	require.NotNil(t, m.CAPool)
	require.NotNil(t, m.Leaf)
	require.Same(t, m.Leaf, m.Certificate.Leaf)
	require.Len(t, m.Certificate.Certificate, 1)
	require.Equal(t, Identity{Name: "server-1", Role: RoleServer}, m.Identity())
}

func TestMaterial_ServerConfig(t *testing.T) {
	m := newTestPKI(t).issue("server-1", RoleServer)
	cfg := m.ServerConfig()
	require.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
	require.Zero(t, cfg.MaxVersion, "TLS 1.3 must stay available")
	require.Equal(t, tls.RequireAndVerifyClientCert, cfg.ClientAuth)
	require.Same(t, m.CAPool, cfg.ClientCAs)
	require.Len(t, cfg.Certificates, 1)
	require.NotNil(t, cfg.VerifyConnection)
	require.NotSame(t, cfg, m.ServerConfig(), "each call returns a fresh config")
}

func TestMaterial_ClientConfig(t *testing.T) {
	m := newTestPKI(t).issue("host-1", RoleAgent)
	cfg := m.ClientConfig(RoleServer)
	require.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
	require.Equal(t, "server.drplane", cfg.ServerName)
	require.Same(t, m.CAPool, cfg.RootCAs)
	require.Len(t, cfg.Certificates, 1)
	require.False(t, cfg.InsecureSkipVerify)
}

// TestMaterial_Handshake runs both configurations against each other over
// an in-memory pipe.
func TestMaterial_Handshake(t *testing.T) {
	pki := newTestPKI(t)
	server := pki.issue("server-1", RoleServer)
	agent := pki.issue("host-1", RoleAgent)

	clientSide, serverSide := net.Pipe()
	t.Cleanup(func() {
		_ = clientSide.Close()
		_ = serverSide.Close()
	})
	serverErr := make(chan error, 1)
	go func() {
		conn := tls.Server(serverSide, server.ServerConfig())
		serverErr <- conn.Handshake()
	}()
	conn := tls.Client(clientSide, agent.ClientConfig(RoleServer))
	require.NoError(t, conn.Handshake())
	require.NoError(t, <-serverErr)
	require.Equal(t, uint16(tls.VersionTLS13), conn.ConnectionState().Version)
}
