package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/osuser"
	"github.com/drplane/drplane/internal/structs"
	"github.com/hashicorp/go-hclog"
)

var (
	// ErrPostgresNotRunning is returned by Promote when the server is
	// stopped: only a running standby can be promoted.
	ErrPostgresNotRunning = errors.New("postgres is not running")
	// ErrInvalidUpstream is returned by Demote before it changes anything
	// when the upstream's host is not an IP address or a hostname, or its
	// port is out of range.
	ErrInvalidUpstream = errors.New("invalid upstream")
	// ErrPostgresStandby is returned by SetSyncStandbys on a standby:
	// only a primary waits for standbys.
	ErrPostgresStandby = errors.New("postgres is a standby")
)

const (
	pgDefaultBinDir      = "/usr/lib/postgresql/15/bin"
	pgDefaultUser        = "postgres"
	pgDefaultStopTimeout = 30 * time.Second
	// pgReadyTimeout bounds waits for a state the server reaches on its own
	// (writable after promote, streaming after demote) when the caller's
	// context has no earlier deadline.
	pgReadyTimeout = 2 * time.Minute
	// pgPollInterval is how often those waits look again.
	pgPollInterval = 50 * time.Millisecond
)

// pgPathRE is the characters allowed in configured paths. pg_ctl passes
// the data directory and the -o options through /bin/sh, so a path must
// not carry quotes, spaces, $ or other shell syntax.
var pgPathRE = regexp.MustCompile(`^/[A-Za-z0-9._/+@,=-]*$`)

// pgRoleRE is the role names allowed in connection strings.
var pgRoleRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`)

// PostgresConfig configures the driver of one PostgreSQL cluster.
type PostgresConfig struct {
	// Name is the service name, used in logs and errors.
	Name string
	// DataDir is the cluster's data directory (PGDATA).
	DataDir string
	// Port is the port the server listens on.
	Port int
	// BinDir holds pg_ctl, pg_rewind and pg_basebackup; default
	// /usr/lib/postgresql/15/bin.
	BinDir string
	// RunAs is the OS user every PostgreSQL program runs as; default
	// "postgres". PostgreSQL refuses to run as root.
	RunAs string
	// SocketDir is the unix socket directory, writable by RunAs; default
	// DataDir's parent.
	SocketDir string
	// User is the superuser the driver connects as; default "postgres".
	User string
	// ReplicationUser is the role a standby streams as and pg_basebackup
	// connects as; default User.
	ReplicationUser string
	// StopTimeout is how long a fast shutdown may take before the server
	// is stopped immediately; default 30s.
	StopTimeout time.Duration
	// LogFile receives the server's output; default Name.log beside
	// DataDir. The agent opens it, so RunAs needs no access to its
	// directory.
	LogFile string
	// ApplicationName is the name a standby Demote makes streams as: its
	// primary lists it under it and synchronous_standby_names names it
	// so. The agent sets its host id. Empty leaves PostgreSQL's own
	// choice (cluster_name, else "walreceiver"), which standbys of one
	// primary may share.
	ApplicationName string
}

// Postgres is the driver of one PostgreSQL cluster on this host. It runs
// pg_ctl, pg_rewind and pg_basebackup as RunAs and talks SQL over the
// unix socket. Its methods may be called concurrently: state-changing
// ones run one at a time, Status never waits for them.
type Postgres struct {
	cfg    PostgresConfig
	logger hclog.Logger
	cred   *osuser.User

	// mu serialises Start, Stop, Promote and Demote.
	mu sync.Mutex
	// drillMu serialises drill copies' starts and stops. It is not mu: a
	// long clone for a drill must never hold up a failover.
	drillMu sync.Mutex

	// heard is the last time this standby heard from its primary, kept
	// across the moments PostgreSQL cannot say: when the primary is lost
	// its WAL receiver exits and pg_stat_wal_receiver loses the time,
	// which is then what the control plane needs to bound the outage.
	heardMu sync.Mutex
	heard   time.Time
}

var _ Driver = (*Postgres)(nil)
var _ Promoter = (*Postgres)(nil)
var _ SyncStandbySetter = (*Postgres)(nil)

// NewPostgres fills cfg's defaults, validates it and looks up RunAs. It
// does not touch the cluster: a running one is adopted by Start.
func NewPostgres(cfg PostgresConfig, logger hclog.Logger) (*Postgres, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("postgres %s: %w", cfg.Name, err)
	}
	cred, err := osuser.Lookup(cfg.RunAs)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", cfg.Name, err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Postgres{cfg: cfg, logger: logger, cred: cred}, nil
}

// setDefaults fills zero values.
func (c *PostgresConfig) setDefaults() {
	if c.Name == "" {
		c.Name = "postgres"
	}
	c.BinDir = pgOr(c.BinDir, pgDefaultBinDir)
	c.RunAs = pgOr(c.RunAs, pgDefaultUser)
	c.User = pgOr(c.User, pgDefaultUser)
	c.ReplicationUser = pgOr(c.ReplicationUser, c.User)
	if c.StopTimeout <= 0 {
		c.StopTimeout = pgDefaultStopTimeout
	}
	if c.DataDir != "" {
		c.SocketDir = pgOr(c.SocketDir, filepath.Dir(c.DataDir))
		c.LogFile = pgOr(c.LogFile, filepath.Join(filepath.Dir(c.DataDir), c.Name+".log"))
	}
}

// Validate checks a config after defaults: every value that reaches a
// command line or a connection string must be plain.
func (c *PostgresConfig) Validate() error {
	for _, f := range []struct{ name, path string }{
		{"data_dir", c.DataDir}, {"bin_dir", c.BinDir}, {"socket_dir", c.SocketDir},
	} {
		if !pgPathRE.MatchString(f.path) || filepath.Clean(f.path) != f.path {
			return fmt.Errorf("%s %q must be a clean absolute path of letters, digits and ._/+@,=-", f.name, f.path)
		}
	}
	// The agent opens the log file itself; it never reaches a shell.
	if !filepath.IsAbs(c.LogFile) {
		return fmt.Errorf("log_file %q must be an absolute path", c.LogFile)
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("port %d is not between 1 and 65535", c.Port)
	}
	for _, r := range []string{c.User, c.ReplicationUser, c.RunAs} {
		if !pgRoleRE.MatchString(r) {
			return fmt.Errorf("user name %q is not a plain identifier", r)
		}
	}
	// It goes into primary_conninfo unquoted and into
	// synchronous_standby_names between double quotes.
	if c.ApplicationName != "" {
		if err := structs.ValidApplicationName(c.ApplicationName); err != nil {
			return fmt.Errorf("application_name: %w", err)
		}
	}
	return nil
}

// pgOr returns s, or def when s is empty.
func pgOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Status reports stopped when no postmaster runs, otherwise primary or
// standby with the replication position and lag.
func (p *Postgres) Status(ctx context.Context) (Status, error) {
	running, err := p.running(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("status %s: %w", p.cfg.Name, err)
	}
	if !running {
		return Status{Role: RoleStopped, Message: "not running"}, nil
	}
	st, err := p.queryStatus(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("status %s: %w", p.cfg.Name, err)
	}
	return st, nil
}

// Start starts the server with pg_ctl and waits until it accepts
// connections. A server that already runs, whoever started it, is adopted
// as it is: not restarted, not reconfigured.
func (p *Postgres) Start(ctx context.Context, progress Progress) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.startLocked(ctx, pgProgress(progress)); err != nil {
		return fmt.Errorf("start %s: %w", p.cfg.Name, err)
	}
	return nil
}

// Stop shuts the server down in fast mode (sessions are disconnected,
// a shutdown checkpoint is written), and in immediate mode if that takes
// longer than StopTimeout. A stopped server is left alone.
func (p *Postgres) Stop(ctx context.Context, progress Progress) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stopLocked(ctx, pgProgress(progress)); err != nil {
		return fmt.Errorf("stop %s: %w", p.cfg.Name, err)
	}
	return nil
}

// Fence stops the server so it can no longer accept writes. The agent
// fences a primary whose host lost its lease; the fenced node returns
// only through Demote, which rewinds it onto the new primary.
func (p *Postgres) Fence(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stopLocked(ctx, pgProgress(nil)); err != nil {
		return fmt.Errorf("fence %s: %w", p.cfg.Name, err)
	}
	return nil
}

// startLocked starts the server unless it runs. The caller holds mu.
func (p *Postgres) startLocked(ctx context.Context, progress Progress) error {
	running, err := p.running(ctx)
	if err != nil {
		return err
	}
	if running {
		progress("already running (pid %d); adopting it", p.postmasterPID())
		return nil
	}
	if _, err := os.Stat(filepath.Join(p.cfg.DataDir, "PG_VERSION")); err != nil {
		return fmt.Errorf("no cluster in %s: %w", p.cfg.DataDir, err)
	}
	progress("starting on port %d", p.cfg.Port)
	if err := p.pgCtlStart(ctx); err != nil {
		return err
	}
	progress("started (pid %d)", p.postmasterPID())
	return nil
}

// stopLocked stops the server unless it is stopped. The caller holds mu.
func (p *Postgres) stopLocked(ctx context.Context, progress Progress) error {
	running, err := p.running(ctx)
	if err != nil {
		return err
	}
	if !running {
		progress("already stopped")
		return nil
	}
	progress("stopping (fast)")
	err = p.pgCtlStop(ctx, "fast", p.cfg.StopTimeout)
	if err == nil {
		return nil
	}
	p.logger.Warn("fast shutdown failed", "error", err)
	progress("fast shutdown failed: %v; stopping immediately", err)
	return p.pgCtlStop(ctx, "immediate", p.cfg.StopTimeout)
}

// pgProgress returns progress, or a sink when it is nil.
func pgProgress(progress Progress) Progress {
	if progress == nil {
		return func(string, ...any) {}
	}
	return progress
}
