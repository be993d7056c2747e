package controlplane

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/stretchr/testify/require"
)

// TestServer_NewServer_StartErrors starts a server whose gRPC or Raft port
// is taken by another listener, or whose data_dir lies under a file: each
// returns an error naming the port or the path and what to do, and
// releases what it opened, instead of panicking in its cleanup.
func TestServer_NewServer_StartErrors(t *testing.T) {
	tlsDir := t.TempDir()
	require.NoError(t, tlsutil.CreateCA(tlsDir))
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: tlsDir, Name: "s1", Role: tlsutil.RoleServer})
	require.NoError(t, err)
	m, err := tlsutil.Load(filepath.Join(tlsDir, "ca.pem"), filepath.Join(tlsDir, "s1.pem"), filepath.Join(tlsDir, "s1-key.pem"))
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "hostname")
	require.NoError(t, os.WriteFile(file, []byte("x\n"), 0o600))

	cases := []struct {
		name string
		// configure takes the port another listener holds.
		configure func(cfg *config.ServerConfig, taken int)
		want      []string
	}{
		{"grpc port taken", func(cfg *config.ServerConfig, taken int) { cfg.Ports.GRPC = taken },
			[]string{"listen for grpc on 127.0.0.1:", "address already in use", "ports { grpc = ... }"}},
		{"raft port taken", func(cfg *config.ServerConfig, taken int) { cfg.Ports.Raft = taken },
			[]string{"listen for raft on 127.0.0.1:", "address already in use", "ports { raft = ... }"}},
		{"data_dir under a file", func(cfg *config.ServerConfig, _ int) { cfg.DataDir = filepath.Join(file, "x") },
			[]string{"data_dir " + filepath.Join(file, "x"), "not a directory", "set data_dir"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			holder := listen(t, "127.0.0.1:0")
			defer holder.Close()
			taken := holder.Addr().(*net.TCPAddr).Port
			cfg := config.DefaultServerConfig()
			cfg.NodeID, cfg.Site, cfg.DataDir = "s1", "primary", t.TempDir()
			cfg.BindAddr, cfg.AdvertiseAddr = "127.0.0.1", "127.0.0.1"
			// The gRPC port is a fixed free one, so the test can check
			// that a failed start released it.
			cfg.Ports = config.PortsConfig{GRPC: freePort(t)}
			cfg.BootstrapExpect = 1
			cfg.Sites = []config.SiteConfig{{Name: "primary", Kind: "data", Active: true}, {Name: "dr", Kind: "data"}}
			tc.configure(cfg, taken)

			var srv *Server
			require.NotPanics(t, func() { srv, err = NewServer(cfg, Deps{Logger: testLogger(t, "s1", &lockedBuffer{}), TLS: m}) })
			require.Nil(t, srv)
			require.Error(t, err)
			if tc.name != "data_dir under a file" {
				require.Contains(t, err.Error(), strconv.Itoa(taken))
			}
			for _, want := range tc.want {
				require.Contains(t, err.Error(), want)
			}
			if cfg.Ports.GRPC != taken {
				ln := listen(t, cfg.GRPCAddr())
				require.NoError(t, ln.Close(), "a failed start must release the ports it opened")
			}
		})
	}
}

// freePort returns a port the kernel chose and that no one holds now.
func freePort(t *testing.T) int {
	ln := listen(t, "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
