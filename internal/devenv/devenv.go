// Package devenv runs `drplane dev`: a complete deployment on loopback,
// every piece its own OS process, so that a site can be killed from
// outside exactly as an outage would kill it.
//
// It lays out three servers (sites primary, dr and witness) and an agent
// per host of the two data sites with internal/devcluster, the harness
// the process tests use; a PostgreSQL 15 primary on db-1 with a streaming
// standby on db-2 when PostgreSQL and its user exist (and we are root, to
// run it as that user); and the sample application on app-1 and app-2, a
// process service of their agents whose state directory a sync block
// replicates. Everything lives under one directory, with a fixed
// interface for scripts: env.sh for the CLI, pids/<site>/<name>.pid for
// every process of a site, dev.json describing the deployment, and a
// line starting with "ready" on the output once all of it serves.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/hashicorp/go-hclog"
)

// The sites and services of the deployment.
const (
	SitePrimary = "primary"
	SiteDR      = "dr"
	SiteWitness = "witness"

	// ServicePostgres and ServiceApp are the services the agents declare.
	ServicePostgres = "postgres"
	ServiceApp      = "sampleapp"
	// SyncState is the sync block replicating the application's state.
	SyncState = "state"
)

// DefaultPort is the first server's gRPC port, the CLI's default address.
const DefaultPort = 7400

const (
	// startTimeout bounds each phase of the start (servers, agents,
	// services); a slow machine under -race needs tens of seconds.
	startTimeout = 2 * time.Minute
	// pollInterval is how often readiness is polled over gRPC, and
	// cliPollInterval through the CLI (a process per poll).
	pollInterval    = 100 * time.Millisecond
	cliPollInterval = 250 * time.Millisecond
	// pidRefreshInterval is how often the pid files are brought up to
	// date: a plan restarts postmasters and applications.
	pidRefreshInterval = 500 * time.Millisecond
)

// Options configure a dev deployment.
type Options struct {
	// Dir holds everything. When empty a temporary directory is created
	// and removed on exit; a given directory is kept, and must not exist
	// or be empty.
	Dir string
	// Port is the first server's gRPC port; 0 lets the kernel choose.
	// The other servers always get kernel-chosen ports.
	Port int
	// Bin is the drplane executable every server and agent runs.
	Bin string
	// Out receives the progress lines and the ready line.
	Out io.Writer
	// Logger receives warnings that do not stop the deployment.
	Logger hclog.Logger
	// Replication is the servers' replication block; nil keeps async.
	Replication *config.ReplicationConfig
}

// ParseReplication turns `drplane dev --replication`'s value into the
// servers' replication block: "async", "sync" or "sync-strict".
func ParseReplication(mode string) (*config.ReplicationConfig, error) {
	r := config.DefaultServerConfig().Replication
	switch mode {
	case config.ReplicationAsync, config.ReplicationSync:
		r.Mode = mode
	case "sync-strict":
		r.Mode, r.Strict = config.ReplicationSync, true
	default:
		return nil, fmt.Errorf("--replication %q: expected async, sync or sync-strict", mode)
	}
	return &r, nil
}

// env is one running deployment.
type env struct {
	opts Options
	dir  string
	// keep is set when the caller named dir: it stays after exit.
	keep bool

	c      *devcluster.Cluster
	pg     *pgPair // nil without PostgreSQL
	mounts bool    // agents get their own mount namespaces
	hosts  []*host
	pids   *pidFiles
	// steps numbers the start steps drplane dev sends, each a step id
	// of its own in the agents' journals.
	steps int
}

// host is one agent's machine.
type host struct {
	ID, Site string
	agent    *devcluster.Agent
	// pg is the PostgreSQL server of a db host; app the application of
	// an app host.
	pg  *pgNode
	app *appHost
}

// Run starts the deployment, prints the ready line, keeps it running
// until ctx ends (the caller cancels it on SIGINT or SIGTERM), and then
// stops every process and removes what it created. Whatever fails, and
// also on a panic, every process started is killed before Run returns.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	e, err := newEnv(opts)
	if err != nil {
		return err
	}
	defer e.cleanup()
	if err := e.start(ctx); err != nil {
		if ctx.Err() != nil {
			// What failed is only what the interrupt cut short.
			return errors.New("interrupted while starting; every process started was stopped")
		}
		return err
	}
	e.serve(ctx)
	return nil
}

// newEnv checks the options and creates the directory.
func newEnv(opts Options) (*env, error) {
	if opts.Bin == "" {
		return nil, errors.New("no drplane executable to run the servers and agents with")
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("--port %d is not a port", opts.Port)
	}
	if opts.Port != 0 {
		if err := portFree(opts.Port); err != nil {
			return nil, err
		}
	}
	if err := prerequisitesHere(); err != nil {
		return nil, err
	}
	e := &env{opts: opts}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "drplane-dev-")
		if err != nil {
			return nil, fmt.Errorf("create the dev directory: %w", err)
		}
		e.dir = dir
	} else {
		dir, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("--dir %s: %w", opts.Dir, err)
		}
		if err := emptyDir(dir); err != nil {
			return nil, err
		}
		e.dir, e.keep = dir, true
	}
	e.pids = &pidFiles{dir: filepath.Join(e.dir, "pids"), written: map[string]int{}, logger: opts.Logger}
	return e, nil
}

// emptyDir creates dir, or accepts it when it exists and is empty: the
// certificates, configs and data of another run must not be mixed in.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("--dir: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("--dir: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("--dir %s is not empty; give a new or empty directory (it is kept after exit)", dir)
	}
	return nil
}

// portFree fails when port is taken on loopback, before anything starts.
func portFree(port int) error {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("127.0.0.1:%d is in use (another drplane dev or server?): pass --port with a free port, or --port 0: %w", port, err)
	}
	return ln.Close()
}

// say prints a progress line.
func (e *env) say(format string, args ...any) {
	fmt.Fprintf(e.opts.Out, format+"\n", args...)
}

// failover is the servers' failover block: automatic, with the default
// timings, which already make a site failover take seconds on loopback.
func failover() *config.FailoverConfig {
	f := config.DefaultServerConfig().Failover
	f.Automatic = true
	return &f
}

// serve keeps the pid files fresh until ctx ends.
func (e *env) serve(ctx context.Context) {
	t := time.NewTicker(pidRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.refreshPIDs()
		}
	}
}
