package devenv

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
)

// syncInterval is how often the standby site's app host pulls the
// application's state: it bounds what a failover loses of it.
const syncInterval = time.Second

// appHost is the sample application's side of an app host.
type appHost struct {
	// Root is the host's application directory on this machine's disk;
	// View is the path the agent and the application see it at: the
	// shared appDir when the agent has its own mount namespace (as
	// /opt/app on two real hosts), Root itself otherwise.
	Root, View string
	// Listen and DrillListen are the live and drill instances' HTTP
	// addresses (/health, /status).
	Listen, DrillListen string
}

// StateDir is the state directory the application writes and the sync
// block replicates, as the agent sees it.
func (a *appHost) StateDir() string { return filepath.Join(a.View, "state") }

// DrillStateDir is the drill copy's state directory.
func (a *appHost) DrillStateDir() string { return filepath.Join(a.View, "drill-state") }

// appDir is the application directory every app host sees at the same
// path, bind-mounted from its own Root: a sync block mirrors a path into
// the same path on the pulling host.
func (e *env) appDir() string { return filepath.Join(e.dir, "app") }

// newAppHost lays out an app host's directories and picks its ports.
func (e *env) newAppHost(id string) (*appHost, error) {
	ports, err := devcluster.FreePorts(2)
	if err != nil {
		return nil, err
	}
	a := &appHost{Root: e.hostDir(id), View: e.hostDir(id),
		Listen: fmt.Sprintf("127.0.0.1:%d", ports[0]), DrillListen: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	if e.mounts {
		a.View = e.appDir()
	}
	for _, d := range []string{filepath.Join(a.Root, "state"), filepath.Join(a.Root, "drill-state"), a.View} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("lay out %s: %w", id, err)
		}
	}
	return a, nil
}

// agentSpec declares what runs on h.
func (e *env) agentSpec(h *host) devcluster.AgentSpec {
	// A check endpoint without client certificates, for load balancers
	// that cannot present one (dev.json's check).
	spec := devcluster.AgentSpec{HostID: h.ID, Site: h.Site, Check: &config.CheckEndpointConfig{TLS: config.CheckTLSNone}}
	switch {
	case h.pg != nil:
		spec.Services = []config.ServiceConfig{{
			Name: ServicePostgres, Driver: config.DriverPostgres, DataDir: h.pg.DataDir, Port: h.pg.Port,
			BinDir: pgBinDir, RunAs: pgRunAs, StopTimeout: 10 * time.Second,
			Drill: &config.DrillConfig{Port: h.pg.DrillPort},
		}}
		if e.pg != nil && e.pg.backups {
			// One repository for both hosts, as shared storage would be.
			spec.Backups = []config.BackupConfig{{Name: BackupBlock, Engine: "pgbackrest", Service: ServicePostgres,
				Repository: filepath.Join(e.dir, "pgbackrest"), FullEvery: 24 * time.Hour, IncrEvery: time.Hour}}
		}
	case h.app != nil:
		spec.Services = []config.ServiceConfig{e.appService(h)}
		if e.mounts {
			// With a database, the state file is a journal of the rows
			// the database holds, and the application takes its next id
			// from the database: the database's RPO is the data's.
			spec.Syncs = []config.SyncConfig{{Name: SyncState, Paths: []string{h.app.StateDir()}, Interval: syncInterval, ExcludeFromRPO: e.pg != nil}}
			spec.Mounts = []devcluster.Mount{{Source: h.app.Root, Target: h.app.View}}
		}
	}
	return spec
}

// appService is the sample application as a process service of h's
// agent: `drplane dev sampleapp`, the same binary, writing to the
// database of its own site. Its drill block only sets MODE=drill, which
// makes the application use its --drill-* settings: the drill copy of
// the database, another state directory and another port.
func (e *env) appService(h *host) config.ServiceConfig {
	cmd := []string{e.opts.Bin, "dev", "sampleapp", "--host", h.ID,
		"--listen", h.app.Listen, "--state-dir", h.app.StateDir(),
		"--drill-listen", h.app.DrillListen, "--drill-state-dir", h.app.DrillStateDir()}
	svc := config.ServiceConfig{
		Name: ServiceApp, Driver: config.DriverProcess, Dir: h.app.View,
		Env: map[string]string{"MODE": "live"}, Restart: "on-failure", StopTimeout: 5 * time.Second,
		Health: &config.HealthConfig{HTTP: "http://" + h.app.Listen + "/health", Interval: time.Second, Timeout: 500 * time.Millisecond},
		Drill: &config.DrillConfig{
			Env:    map[string]string{"MODE": "drill"},
			Health: &config.HealthConfig{HTTP: "http://" + h.app.DrillListen + "/health", Interval: time.Second, Timeout: 500 * time.Millisecond},
		},
	}
	if db := e.siteDB(h.Site); db != nil {
		cmd = append(cmd, "--dsn", db.DSN("sampleapp-"+h.ID), "--drill-dsn", db.DrillDSN("sampleapp-drill-"+h.ID))
		svc.DependsOn = []string{ServicePostgres}
	}
	svc.Command = cmd
	return svc
}

// siteDB is the PostgreSQL server of site's db host, nil without one.
func (e *env) siteDB(site string) *pgNode {
	for _, h := range e.hosts {
		if h.Site == site && h.pg != nil {
			return h.pg
		}
	}
	return nil
}
