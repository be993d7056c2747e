package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/stretchr/testify/require"
)

// installed copies the example's files into a temporary root as an
// installation would have them: every /etc/drplane/... and /var/lib/...
// path of src rewritten under it, the TLS files made by drplane's own CA
// code for names, and the secret files present.
func installed(t *testing.T, src string, names ...string) (root, text string) {
	t.Helper()
	root = t.TempDir()
	tlsDir := filepath.Join(root, "etc", "drplane", "tls")
	require.NoError(t, os.MkdirAll(tlsDir, 0o700))
	require.NoError(t, tlsutil.CreateCA(tlsDir))
	for _, n := range names {
		role := tlsutil.RoleAgent
		if strings.HasPrefix(n, "s") {
			role = tlsutil.RoleServer
		}
		_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: tlsDir, Name: n, Role: role})
		require.NoError(t, err)
	}
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc", "drplane", "notify-execs.secret"), []byte("s3cret\n"), 0o600))
	text = strings.NewReplacer("/etc/drplane/", root+"/etc/drplane/", "/var/lib/drplane", root+"/var/lib/drplane").Replace(src)
	return root, text
}

// TestExample_ConfigsLoad: every server and agent config of the example
// 2 + 2 + 1 deployment loads as drplane loads it, names its own
// certificate, and the servers agree on sites and join each other.
func TestExample_ConfigsLoad(t *testing.T) {
	servers, err := filepath.Glob("example/server-*.hcl")
	require.NoError(t, err)
	require.Len(t, servers, 5, "two servers at each data site and one at the witness")
	sites := map[string]int{}
	for _, path := range servers {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "server-"), ".hcl")
		root, text := installed(t, string(b), id)
		file := filepath.Join(root, "etc", "drplane", "server.hcl")
		require.NoError(t, os.WriteFile(file, []byte(text), 0o600))
		cfg, err := config.LoadServerConfig(file)
		require.NoError(t, err, path)
		require.Equal(t, id, cfg.NodeID)
		m, err := tlsutil.Load(cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		require.NoError(t, err)
		require.NoError(t, cfg.CheckCertificateName(m.Identity().Name), path)
		require.Len(t, cfg.RetryJoin, 4, "%s joins the four others", path)
		require.Len(t, cfg.Notify, 3, path)
		require.Equal(t, "s3cret", cfg.Notify[2].Secret, "secret_file is read")
		sites[cfg.Site]++
	}
	require.Equal(t, map[string]int{"primary": 2, "dr": 2, "witness": 1}, sites)

	agents, err := filepath.Glob("example/agent-*.hcl")
	require.NoError(t, err)
	require.Len(t, agents, 4)
	for _, path := range agents {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "agent-"), ".hcl")
		root, text := installed(t, string(b), id)
		text = strings.ReplaceAll(text, "/var/lib/drplane-agent", filepath.Join(root, "var", "lib", "drplane-agent"))
		file := filepath.Join(root, "etc", "drplane", "agent.hcl")
		require.NoError(t, os.WriteFile(file, []byte(text), 0o600))
		cfg, err := config.ParseAgentConfig([]byte(text), file)
		require.NoError(t, err, path)
		require.Equal(t, id, cfg.HostID)
		require.NotNil(t, cfg.CheckEndpoint, "%s serves load balancers without a client certificate", path)
	}
}

// TestExample_StonithHook: the example STONITH hook is a valid shell
// script and refuses a site it does not know.
func TestExample_StonithHook(t *testing.T) {
	out, err := exec.Command("sh", "-n", "example/fence-site.sh").CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command("sh", "example/fence-site.sh", "elsewhere").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "unknown site elsewhere")
}

// TestHAProxy_ExampleValid: HAProxy accepts the example configuration.
func TestHAProxy_ExampleValid(t *testing.T) {
	bin := testutil.RequireProgram(t, "haproxy", "haproxy")
	out, err := exec.Command(bin, "-c", "-f", "haproxy/haproxy.cfg").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "Configuration file is valid")
}

// TestSystemd_UnitsVerify: systemd-analyze verify accepts both units
// (with ExecStart pointing at a drplane binary built here); the agent's
// unit stops the agent alone, so that its lease guard and the services it
// manages outlive an agent restart.
func TestSystemd_UnitsVerify(t *testing.T) {
	agent, err := os.ReadFile("systemd/drplane-agent.service")
	require.NoError(t, err)
	require.Contains(t, string(agent), "\nKillMode=process\n")
	require.NotContains(t, string(agent), "PrivateTmp=yes", "services the agent starts share its sandbox")
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not available here")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "drplane")
	build := exec.Command("go", "build", "-o", bin, "../cli/drplane")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var units []string
	for _, name := range []string{"drplane-server.service", "drplane-agent.service"} {
		b, err := os.ReadFile(filepath.Join("systemd", name))
		require.NoError(t, err)
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/drplane", bin)), 0o644))
		units = append(units, path)
	}
	out, err = exec.Command(analyze, append([]string{"verify"}, units...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify has no complaint")
}
