package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/stretchr/testify/require"
)

// TestServer_NodeIDNotCertificateName checks that `drplane server`
// refuses a node_id other than its certificate's name at node_id's
// file:line, before it creates anything, as the agent does for host_id.
func TestServer_NodeIDNotCertificateName(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, tlsutil.CreateCA(dir))
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: dir, Name: "s2", Role: tlsutil.RoleServer})
	require.NoError(t, err)
	cfg := filepath.Join(dir, "server.hcl")
	require.NoError(t, os.WriteFile(cfg, []byte(`node_id          = "s1"
site             = "primary"
data_dir         = "data"
bootstrap_expect = 1
ports { grpc = 0  raft = 0  http = 0 }
tls { ca_file = "ca.pem"  cert_file = "s2.pem"  key_file = "s2-key.pem" }
site "primary" { kind = "data"  active = true }
site "dr"      { kind = "data" }
site "witness" { kind = "witness" }
`), 0o600))
	// A server that started anyway is killed when the time is up.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, drplaneBin, "server", "--config", cfg).CombinedOutput()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr, "a node_id other than the certificate's name must make the server exit non-zero: %s", out)
	require.Contains(t, string(out), cfg+`:1:20: node_id "s1" is not the name of this server's certificate: `+filepath.Join(dir, "s2.pem")+` is named "s2"`)
	_, err = os.Stat(filepath.Join(dir, "data"))
	require.True(t, os.IsNotExist(err), "nothing may be created for a server that is not who its certificate says")
}
