package netns

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/drplane/drplane/internal/devcluster"
)

// HAProxyPort is where the load balancer accepts database clients, on
// the ops host.
const HAProxyPort = 6432

// HAProxy is a real HAProxy (Debian's package) on the ops host that
// routes database connections to whichever database host's agent answers
// 200 on GET /v1/role/postgres, as an SRE would put one in front of the
// databases: checked every 300ms, marked down after 2 failed checks and up
// after 2 passed ones, and every session on a server marked down is cut.
type HAProxy struct {
	// Addr is the address clients connect to, reachable from the ops
	// host (HAProxy listens in its namespace).
	Addr string
	// LogFile holds HAProxy's log: every server state change.
	LogFile string
	From    *Host

	cmd  *exec.Cmd
	done chan struct{}
}

var haproxyConfig = template.Must(template.New("haproxy").Parse(`# netns harness: the load balancer in front of the databases
global
  log stdout format raw local0 info
defaults
  mode tcp
  log global
  timeout connect 1s
  timeout client 60s
  timeout server 60s
frontend postgres
  bind {{.Bind}}
  default_backend postgres
backend postgres
  option httpchk
  http-check send meth GET uri /v1/role/postgres
  http-check expect status 200
  default-server inter 300ms fall 2 rise 2 on-marked-down shutdown-sessions check-ssl verify required ca-file {{.CA}} crt {{.ClientPEM}}
{{- range .Servers}}
  server {{.Name}} {{.Addr}} check port {{.CheckPort}}
{{- end}}
`))

// StartHAProxy starts HAProxy on the ops host in front of both data
// sites' databases and waits until it routes a connection to the
// active site's database. It is stopped at cleanup.
func (d *Deployment) StartHAProxy() (*HAProxy, error) {
	d.t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		return nil, fmt.Errorf("haproxy: %w (scripts/prerequisites bench installs it)", err)
	}
	dir := filepath.Join(d.Dir, "haproxy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// HAProxy presents one file holding the certificate and its key;
	// the agents' endpoint asks for a certificate of the cluster CA: a
	// monitor's, which reads the HTTP endpoints and nothing else.
	tlsDir := filepath.Join(d.Cluster.Dir, "tls")
	var pem []byte
	for _, f := range []string{"prometheus.pem", "prometheus-key.pem"} {
		b, err := os.ReadFile(filepath.Join(tlsDir, f))
		if err != nil {
			return nil, fmt.Errorf("haproxy: client certificate: %w", err)
		}
		pem = append(pem, b...)
	}
	clientPEM := filepath.Join(dir, "client.pem")
	if err := os.WriteFile(clientPEM, pem, 0o600); err != nil {
		return nil, err
	}
	type server struct {
		Name, Addr string
		CheckPort  int
	}
	data := struct {
		Bind, CA, ClientPEM string
		Servers             []server
	}{Bind: net.JoinHostPort(d.ops.IP, strconv.Itoa(HAProxyPort)), CA: filepath.Join(tlsDir, "ca.pem"), ClientPEM: clientPEM}
	for _, site := range []string{"primary", "dr"} {
		db := DataSites[site].DB
		data.Servers = append(data.Servers, server{Name: db, Addr: d.PG[db].Addr(), CheckPort: placedAgentHTTPPort})
	}
	var cfg bytes.Buffer
	if err := haproxyConfig.Execute(&cfg, data); err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, cfg.Bytes(), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command("haproxy", "-c", "-q", "-f", cfgFile).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("haproxy: %s does not check: %v: %s", cfgFile, err, strings.TrimSpace(string(out)))
	}
	h := &HAProxy{Addr: data.Bind, LogFile: filepath.Join(dir, "haproxy.log"), From: d.ops, done: make(chan struct{})}
	logFile, err := os.Create(h.LogFile)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	// -db: stay in the foreground, so that the harness owns the process.
	h.cmd = exec.Command("haproxy", "-db", "-f", cfgFile)
	// No Pdeathsig: it fires when the thread that started the process
	// ends, and the thread that joined the namespace ends at once. The
	// cleanup and the topology's teardown kill it.
	h.cmd.Stdout, h.cmd.Stderr = logFile, logFile
	if err := d.ops.Start(h.cmd); err != nil {
		return nil, fmt.Errorf("haproxy: start: %w", err)
	}
	go func() {
		_ = h.cmd.Wait()
		close(h.done)
	}()
	d.t.Cleanup(h.stop)
	d.mu.Lock()
	d.lb = h
	d.mu.Unlock()
	if err := h.waitRoutes(d, "primary", time.Minute); err != nil {
		return nil, err
	}
	return h, nil
}

// waitRoutes waits until a connection through HAProxy reaches site's
// database.
func (h *HAProxy) waitRoutes(d *Deployment, site string, timeout time.Duration) error {
	want := d.PG[DataSites[site].DB].Host.IP
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-h.done:
			return fmt.Errorf("haproxy exited: %s", devcluster.Tail(h.LogFile, 2000))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		got, err := h.serverAddr(ctx)
		cancel()
		if err == nil && got == want {
			return nil
		}
		last = fmt.Errorf("connection reached %q (err %v), want %s", got, err, want)
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("haproxy: no route to the %s database within %s: %v; log: %s", site, timeout, last, devcluster.Tail(h.LogFile, 2000))
}

// serverAddr connects through HAProxy and returns the address of the
// database server that answered.
func (h *HAProxy) serverAddr(ctx context.Context) (string, error) {
	conn, err := connectPG(ctx, h.Addr, h.From)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var addr string
	err = conn.QueryRow(ctx, `SELECT host(inet_server_addr())`).Scan(&addr)
	return addr, err
}

func (h *HAProxy) stop() {
	_ = h.cmd.Process.Kill()
	<-h.done
}
