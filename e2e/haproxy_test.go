package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/devenv"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// startPlainCheckHAProxy runs a real HAProxy (Debian's package) in front
// of the sample application of the drplane dev deployment in dir, as a
// load balancer that cannot present a client certificate would be set
// up: a plain `option httpchk GET /v1/role/sampleapp` against each app
// host's agent check endpoint (no TLS), every 300ms, fall 2, rise 2. It
// returns the frontend's URL. Skips without HAProxy, except in CI.
func startPlainCheckHAProxy(t *testing.T, dir string) string {
	t.Helper()
	bin := testutil.RequireProgram(t, "haproxy", "haproxy")
	b, err := os.ReadFile(filepath.Join(dir, "dev.json"))
	require.NoError(t, err)
	var info devenv.Info
	require.NoError(t, json.Unmarshal(b, &info))
	ports, err := devcluster.FreePorts(1)
	require.NoError(t, err)
	front := fmt.Sprintf("127.0.0.1:%d", ports[0])
	var servers []string
	for _, h := range info.Hosts {
		if h.App == nil {
			continue
		}
		require.NotEmpty(t, h.Check, "%s: dev.json names no check endpoint", h.ID)
		app := strings.TrimSuffix(strings.TrimPrefix(h.App.StatusURL, "http://"), "/status")
		host, port, ok := strings.Cut(h.Check, ":")
		require.True(t, ok, h.Check)
		servers = append(servers, fmt.Sprintf("  server %s %s check addr %s port %s", h.ID, app, host, port))
	}
	cfg := fmt.Sprintf(`global
  log stdout format raw local0 info
defaults
  mode http
  log global
  timeout connect 1s
  timeout client 10s
  timeout server 10s
frontend app
  bind %s
  default_backend app
backend app
  option httpchk
  http-check send meth GET uri /v1/role/sampleapp
  http-check expect status 200
  default-server inter 300ms fall 2 rise 2
%s
`, front, strings.Join(servers, "\n"))
	hdir := t.TempDir()
	path := filepath.Join(hdir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput()
	require.NoError(t, err, "haproxy -c: %s", out)
	startLogged(t, exec.Command(bin, "-db", "-f", path), filepath.Join(hdir, "haproxy.log"))
	return "http://" + front
}

// startLogged starts cmd in a process group of its own with its output
// in logPath, kills the group at cleanup, and prints the log when the
// test failed.
func startLogged(t *testing.T, cmd *exec.Cmd, logPath string) {
	t.Helper()
	log, err := os.Create(logPath)
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("log of %s:\n%s", filepath.Base(cmd.Path), b)
		}
	})
}

// waitServedBy waits until the load balancer at url answers /status from
// the sample application on host.
func waitServedBy(t *testing.T, url, host string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	testutil.WaitForResult(t, timeout, func() (bool, error) {
		resp, err := client.Get(url + "/status")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var st struct {
			Host string `json:"host"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return false, fmt.Errorf("%s: %w", resp.Status, err)
		}
		return st.Host == host, fmt.Errorf("served by %q (%s), want %s", st.Host, resp.Status, host)
	})
}
