package hostagent

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// TestAgent_New_StartErrors starts an agent whose listen port is taken or
// whose data_dir is a file: New returns an error naming the address or the
// path, and does not panic in its cleanup (as the server did, issue 12).
func TestAgent_New_StartErrors(t *testing.T) {
	tlsDir := t.TempDir()
	require.NoError(t, tlsutil.CreateCA(tlsDir))
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: tlsDir, Name: "db-1", Role: tlsutil.RoleAgent})
	require.NoError(t, err)
	m, err := tlsutil.Load(filepath.Join(tlsDir, "ca.pem"), filepath.Join(tlsDir, "db-1.pem"), filepath.Join(tlsDir, "db-1-key.pem"))
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer holder.Close()

	cases := []struct {
		name      string
		configure func(cfg *config.AgentConfig)
		want      string
	}{
		{"listen port taken", func(cfg *config.AgentConfig) { cfg.Listen = holder.Addr().String() }, "listen for HostAgent on " + holder.Addr().String()},
		{"data_dir is a file", func(cfg *config.AgentConfig) { cfg.DataDir = file }, file},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.AgentConfig{HostID: "db-1", Site: "primary", DataDir: t.TempDir(), Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0",
				Servers: []string{"127.0.0.1:1"}, LeaseTTL: 3 * time.Second}
			tc.configure(cfg)
			require.NotPanics(t, func() {
				a, err := New(cfg, Deps{Logger: hclog.NewNullLogger(), TLS: m})
				require.Nil(t, a)
				require.ErrorContains(t, err, tc.want)
			})
		})
	}
}
