package devenv

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/hashicorp/go-hclog"
)

// envFile is D/env.sh.
func (e *env) envFile() string { return filepath.Join(e.dir, "env.sh") }

// writeEnvFile writes D/env.sh, which points the CLI at every server:
// DRPLANE_ADDR lists them all, and the CLI tries them in turn, so it
// keeps working while a site's servers are down.
func (e *env) writeEnvFile() error {
	tlsDir := filepath.Join(e.dir, "tls")
	vars := []struct{ name, value string }{
		{"DRPLANE_ADDR", strings.Join(e.serverAddrs(), ",")},
		{"DRPLANE_CACERT", filepath.Join(tlsDir, tlsutil.CACertFile)},
		{"DRPLANE_CLIENT_CERT", filepath.Join(tlsDir, "operator.pem")},
		{"DRPLANE_CLIENT_KEY", filepath.Join(tlsDir, "operator-key.pem")},
		{"DRPLANE_DEV_DIR", e.dir},
	}
	var b strings.Builder
	b.WriteString("# drplane dev: source this file to point the drplane CLI at the local deployment.\n")
	for _, v := range vars {
		fmt.Fprintf(&b, "export %s=%s\n", v.name, shellQuote(v.value))
	}
	if err := os.WriteFile(e.envFile(), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write env.sh: %w", err)
	}
	return nil
}

func (e *env) serverAddrs() []string {
	var addrs []string
	for _, n := range e.c.Nodes {
		addrs = append(addrs, n.GRPCAddr)
	}
	return addrs
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Info is D/dev.json: where everything of the deployment is, for scripts
// that go beyond the CLI (the demo reads the application's status URLs
// and the databases' connection strings from it).
type Info struct {
	Dir       string       `json:"dir"`
	EnvFile   string       `json:"env_file"`
	Postgres  bool         `json:"postgres"`
	StateSync bool         `json:"state_sync"`
	Servers   []ServerInfo `json:"servers"`
	Hosts     []HostInfo   `json:"hosts"`
}

// ServerInfo is one server.
type ServerInfo struct {
	ID      string `json:"id"`
	Site    string `json:"site"`
	Address string `json:"address"`
	// HTTP serves /v1/health and /metrics (HTTPS; tls/prometheus.pem is
	// a monitor certificate that reads them).
	HTTP string `json:"http"`
	Log  string `json:"log"`
}

// HostInfo is one agent's host and what runs on it.
type HostInfo struct {
	ID    string `json:"id"`
	Site  string `json:"site"`
	Agent string `json:"agent"`
	// HTTP serves /v1/role/<service>, /v1/health and /metrics; Check
	// serves them over plain HTTP, for a load balancer without a client
	// certificate.
	HTTP     string        `json:"http"`
	Check    string        `json:"check"`
	Log      string        `json:"log"`
	Postgres *PostgresInfo `json:"postgres,omitempty"`
	App      *AppInfo      `json:"app,omitempty"`
}

// PostgresInfo is a db host's PostgreSQL server.
type PostgresInfo struct {
	Port      int    `json:"port"`
	DrillPort int    `json:"drill_port"`
	DataDir   string `json:"data_dir"`
	DSN       string `json:"dsn"`
}

// AppInfo is an app host's application: its /status URLs and its state
// directory on this machine's disk.
type AppInfo struct {
	StatusURL      string `json:"status_url"`
	DrillStatusURL string `json:"drill_status_url"`
	StateDir       string `json:"state_dir"`
}

// writeInfo writes D/dev.json.
func (e *env) writeInfo() error {
	info := Info{Dir: e.dir, EnvFile: e.envFile(), Postgres: e.pg != nil, StateSync: e.mounts}
	for _, n := range e.c.Nodes {
		info.Servers = append(info.Servers, ServerInfo{ID: n.ID, Site: n.Site, Address: n.GRPCAddr, HTTP: n.HTTPAddr, Log: n.LogPath})
	}
	for _, h := range e.hosts {
		hi := HostInfo{ID: h.ID, Site: h.Site, Agent: h.agent.GRPCAddr, HTTP: h.agent.HTTPAddr, Check: h.agent.CheckAddr, Log: h.agent.LogPath}
		if h.pg != nil {
			hi.Postgres = &PostgresInfo{Port: h.pg.Port, DrillPort: h.pg.DrillPort, DataDir: h.pg.DataDir, DSN: h.pg.DSN("psql")}
		}
		if h.app != nil {
			hi.App = &AppInfo{StatusURL: "http://" + h.app.Listen + "/status", DrillStatusURL: "http://" + h.app.DrillListen + "/status",
				StateDir: filepath.Join(h.app.Root, "state")}
		}
		info.Hosts = append(info.Hosts, hi)
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.dir, "dev.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write dev.json: %w", err)
	}
	return nil
}

// mkdirMode creates dir with exactly mode (Mkdir's is subject to the
// umask).
func mkdirMode(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

// traversable gives others search permission (o+x: pass through, not
// list) on dir and every directory above it, so that PostgreSQL, which
// runs as its own user, reaches its data under dir, as it reaches
// /var/lib/postgresql on a packaged install. What it changes above dir
// is logged.
func traversable(dir string, logger hclog.Logger) error {
	for p := dir; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("make %s traversable: %w", p, err)
		}
		if perm := st.Mode().Perm(); perm&0o001 == 0 {
			if err := os.Chmod(p, perm|0o001); err != nil {
				return fmt.Errorf("make %s traversable for PostgreSQL: %w", p, err)
			}
			if p != dir {
				logger.Warn("made a directory traversable (o+x) for PostgreSQL, which runs as its own user", "path", p)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
