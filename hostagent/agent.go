// Package hostagent is `drplane agent`: it owns a host's services, serves
// the HostAgent gRPC API to the leader, executes steps at most once,
// persists the epoch, and fences its primary-role services when its lease
// lapses.
package hostagent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/drplane/drplane/hostagent/health"
	"github.com/drplane/drplane/hostagent/rsync"
	"github.com/drplane/drplane/hostagent/snapshot"
	"github.com/drplane/drplane/internal/clock"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
)

// Deps are what an Agent needs besides its configuration.
type Deps struct {
	Logger hclog.Logger
	TLS    *tlsutil.Material
	// Listener and HTTPListener are opened from the config when nil.
	Listener     net.Listener
	HTTPListener net.Listener
	// CheckListener is the check endpoint's (config check_endpoint),
	// opened from the config when nil and the block is set.
	CheckListener net.Listener
	// NewDriver builds service drivers; RealDrivers of the config's
	// host_id when nil.
	NewDriver DriverFactory
	// Self is the drplane binary rsync runs as its remote shell; the
	// running executable when empty.
	Self string
	// LeaseGuard is the command that runs the lease guard (`drplane agent
	// lease-guard`; the agent adds --dir). Nil runs none: the agent alone
	// fences, which a frozen agent cannot (see guard.go).
	LeaseGuard []string
	// Dial, when set, makes the agent's connections to the servers;
	// tests use it to partition the network. nil means the normal TCP
	// dialer.
	Dial tlsutil.DialFunc
	// Clock, when set, is the source of time of the lease and the fencer
	// (invariant 4); nil means the real clock. Tests pass a virtual one.
	Clock clock.Clock
	// WriteFile, when set, writes the agent's own files in data_dir (the
	// epoch, the journal, the lease record); nil means fsutil.WriteFile.
	// Tests inject a full disk.
	WriteFile WriteFileFunc
	// BackupTick, when set, is how often backup blocks look at their
	// service's role and schedule; tests shorten it.
	BackupTick time.Duration
}

// Agent is one running host agent.
type Agent struct {
	config *config.AgentConfig
	logger hclog.Logger
	tls    *tlsutil.Material
	self   string
	dial   tlsutil.DialFunc
	// clock measures the lease: every instant handed to lease comes from
	// it, and the fencer waits on its timers.
	clock clock.Clock

	dataDir *dataDirWriter
	epoch   *epochStore
	journal *journal
	// leaseRecorded is the lease deadline last written to data_dir (see
	// recordLease).
	leaseRecordMu sync.Mutex
	leaseRecorded time.Time
	lease         *lease
	probeReceipts probeReceipts
	guard         *guardClient // nil without a lease guard; the fencer's alone
	services      map[string]*service
	order         []string // services in config order
	startedAt     time.Time

	// activeSite is the active site the last leader probe named.
	mu         sync.Mutex
	activeSite string
	leaderID   string
	// syncSources are the leader-named sources of the sync blocks.
	syncSources map[string]string
	snapshots   map[string]*snapshot.Manager
	// backups are the managers of the backup blocks, by name.
	backups map[string]*backupManager

	syncStates  map[string]*syncState
	rsyncServer *rsync.Server
	// syncMu serialises set-sync-standbys steps, each checked against
	// and recorded in syncTerms, per data service the highest leader term
	// of one taken, kept in data_dir (see takeSyncTermLocked).
	syncMu    sync.Mutex
	syncTerms map[string]uint64

	grpcServer   *grpc.Server
	listener     net.Listener
	httpServer   *http.Server
	httpListener net.Listener
	// checkServer serves the read-only endpoints without client
	// authentication on checkListener (config check_endpoint); nil
	// without the block.
	checkServer   *http.Server
	checkListener net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts an agent: it adopts the services already running, starts the
// fencer, serves HostAgent and the HTTP endpoints, and registers with the
// control plane in the background.
func New(cfg *config.AgentConfig, deps Deps) (a *Agent, err error) {
	if deps.TLS == nil {
		return nil, errors.New("start agent: no TLS material")
	}
	if deps.Logger == nil {
		deps.Logger = hclog.NewNullLogger()
	}
	if deps.NewDriver == nil {
		deps.NewDriver = RealDrivers(cfg.HostID)
	}
	if deps.Self == "" {
		deps.Self, _ = os.Executable()
	}
	ctx, cancel := context.WithCancel(context.Background())
	a = &Agent{
		config: cfg, logger: deps.Logger, tls: deps.TLS, self: deps.Self, dial: deps.Dial, clock: clock.OrReal(deps.Clock),
		dataDir:   newDataDirWriter(cfg.DataDir, deps.WriteFile),
		services:  map[string]*service{},
		snapshots: map[string]*snapshot.Manager{}, syncStates: map[string]*syncState{},
		ctx: ctx, cancel: cancel,
	}
	a.startedAt = a.clock.Now()
	defer func() {
		if err != nil {
			cancel()
			a.closeListeners(deps)
		}
	}()
	if err := a.openState(); err != nil {
		return nil, err
	}
	if err := a.buildServices(deps.NewDriver); err != nil {
		return nil, err
	}
	if err := a.buildBackups(deps.BackupTick); err != nil {
		return nil, err
	}
	if len(deps.LeaseGuard) > 0 {
		a.guard = newGuardClient(deps.LeaseGuard, cfg.DataDir, a.logger.Named("lease-guard"))
	}
	if err := a.openListeners(&deps); err != nil {
		return nil, err
	}
	a.rsyncServer = a.newRsyncServer()
	a.setupGRPC()
	a.setupHTTP()
	a.startBackground()
	a.logger.Info("agent started", "host_id", cfg.HostID, "site", cfg.Site, "listen", a.listener.Addr().String(), "epoch", a.epoch.current())
	return a, nil
}

// openState opens the epoch store, the journal and the synchronous
// standbys' leader terms in data_dir and starts the boot lease.
func (a *Agent) openState() error {
	if err := os.MkdirAll(a.config.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", a.config.DataDir, err)
	}
	var err error
	if a.epoch, err = openEpochStore(a.config.DataDir, a.dataDir); err != nil {
		return err
	}
	if a.journal, err = openJournal(filepath.Join(a.config.DataDir, "journal"), a.dataDir); err != nil {
		return err
	}
	if a.syncTerms, err = readSyncTerms(a.config.DataDir); err != nil {
		return err
	}
	window, err := bootWindow(a.config.DataDir, a.startedAt, a.config.LeaseTTL)
	if err != nil {
		// Unknown: assume the recorded lease lapsed, the safe side.
		a.logger.Warn("cannot read the last lease; fencing adopted primaries unless a leader vouches at once", "error", err)
		window = 0
	}
	if window < a.config.LeaseTTL {
		a.logger.Info("boot window shortened to the end of the last lease a leader granted", "window", window)
	}
	a.lease = newBootLease(a.startedAt, window)
	return nil
}

// recordLease writes when the current lease ends, for the boot window of
// a restarted agent (see leaseFileName).
func (a *Agent) recordLease(now time.Time) {
	a.leaseRecordMu.Lock()
	defer a.leaseRecordMu.Unlock()
	deadline := a.lease.deadline()
	if deadline.Equal(a.leaseRecorded) {
		return
	}
	until := time.Now().Add(deadline.Sub(now))
	if err := writeLeaseUntil(a.dataDir, until); err != nil {
		// Probes report it too (dataDirWriter), and the next renewal
		// tries again.
		a.logger.Warn("failed to record the lease", "error", err)
		return
	}
	a.leaseRecorded = deadline
}

func (a *Agent) buildServices(newDriver DriverFactory) error {
	for _, sc := range a.config.Services {
		stateDir, err := namedDir(filepath.Join(a.config.DataDir, "services"), sc.Name)
		if err != nil {
			return fmt.Errorf("service %w", err)
		}
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return fmt.Errorf("create state dir for %s: %w", sc.Name, err)
		}
		d, err := newDriver(sc, stateDir, a.logger.Named(sc.Name))
		if err != nil {
			return fmt.Errorf("service %s: %w", sc.Name, err)
		}
		svc := &service{cfg: sc, driver: d}
		if sc.Health != nil {
			svc.monitor = health.NewMonitor(newHealthCheck(sc.Health), sc.Health.Interval, sc.Health.Timeout, a.logger.Named(sc.Name))
		}
		a.services[sc.Name] = svc
		a.order = append(a.order, sc.Name)
	}
	return nil
}

func (a *Agent) openListeners(deps *Deps) error {
	var err error
	if deps.Listener == nil {
		if deps.Listener, err = net.Listen("tcp", a.config.Listen); err != nil {
			return fmt.Errorf("listen for HostAgent on %s: %w", a.config.Listen, err)
		}
	}
	if deps.HTTPListener == nil {
		if deps.HTTPListener, err = net.Listen("tcp", a.config.HTTP); err != nil {
			return fmt.Errorf("listen for http on %s: %w", a.config.HTTP, err)
		}
	}
	if c := a.config.CheckEndpoint; c != nil && deps.CheckListener == nil {
		if deps.CheckListener, err = net.Listen("tcp", c.Listen); err != nil {
			return fmt.Errorf("listen for check_endpoint on %s: %w", c.Listen, err)
		}
	}
	a.listener, a.httpListener, a.checkListener = deps.Listener, deps.HTTPListener, deps.CheckListener
	return nil
}

func (a *Agent) closeListeners(deps Deps) {
	for _, ln := range []net.Listener{deps.Listener, deps.HTTPListener, deps.CheckListener} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// startBackground starts the long-running goroutines.
func (a *Agent) startBackground() {
	a.goFunc(func(ctx context.Context) {
		if err := a.grpcServer.Serve(a.listener); err != nil {
			a.logger.Error("grpc server stopped", "error", err)
		}
	})
	a.goFunc(func(ctx context.Context) {
		if err := a.httpServer.ServeTLS(a.httpListener, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("http server stopped", "error", err)
		}
	})
	if a.checkServer != nil {
		a.goFunc(func(ctx context.Context) {
			var err error
			if a.checkServer.TLSConfig != nil {
				err = a.checkServer.ServeTLS(a.checkListener, "", "")
			} else {
				err = a.checkServer.Serve(a.checkListener)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.logger.Error("check endpoint stopped", "error", err)
			}
		})
	}
	a.goFunc(a.runFencer)
	a.goFunc(a.register)
	a.runSnapshotSchedules(a.ctx)
	for _, name := range slices.Sorted(maps.Keys(a.backups)) {
		a.goFunc(a.backups[name].run)
	}
	a.runSyncLoops(a.ctx)
	for _, name := range a.order {
		if m := a.services[name].monitor; m != nil {
			a.goFunc(m.Run)
		}
	}
}

func (a *Agent) goFunc(f func(ctx context.Context)) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f(a.ctx)
	}()
}

// Addr is the HostAgent listener's address.
func (a *Agent) Addr() string { return a.listener.Addr().String() }

// CheckAddr is the check endpoint's address; "" without a check_endpoint
// block.
func (a *Agent) CheckAddr() string {
	if a.checkListener == nil {
		return ""
	}
	return a.checkListener.Addr().String()
}

// HTTPAddr is the HTTP listener's address.
func (a *Agent) HTTPAddr() string { return a.httpListener.Addr().String() }

// Shutdown stops serving. Services keep running: an agent restart must not
// restart them, and a later agent adopts them. The lease guard keeps
// running too, and fences them when the lease lapses before a new agent
// takes over.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.cancel()
	done := make(chan struct{})
	go func() {
		a.grpcServer.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		a.grpcServer.Stop()
	}
	_ = a.httpServer.Close()
	if a.checkServer != nil {
		_ = a.checkServer.Close()
	}
	a.wg.Wait()
	if a.guard != nil {
		// The guard goes on enforcing the current lease: nothing renews
		// it once the agent is gone (see guard.go).
		a.guard.close(a.clock.Now(), a.lease.deadline(), a.epoch.current(), a.guardTargets())
	}
	a.logger.Info("agent stopped")
	return nil
}

// siteState returns what the last leader probe said.
func (a *Agent) siteState() (activeSite, leaderID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.activeSite, a.leaderID
}

var _ pb.HostAgentServer = (*hostAgentEndpoint)(nil)
