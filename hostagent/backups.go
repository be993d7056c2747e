package hostagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/drplane/drplane/hostagent/backup"
	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/fsutil"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Backup blocks (DESIGN.md section 6): every host that runs a postgres
// service declares the same block with the same (shared) repository. The
// block's manager on each host follows its service's role: where the
// service is primary it archives WAL into the repository; where it is
// primary and the host holds the active site's lease it also takes the
// scheduled backups and verifications. The repository is the schedule's
// memory, so a new primary after a failover goes on from the backups its
// predecessor took.

// defaultBackupTick is how often a backup block's manager looks at its
// service's role and its schedule (Deps.BackupTick). It reads the
// repository's backups again for status every backupInfoTicks ticks, and
// tries a failed scheduled backup or verification again after
// backupRetryTicks.
const (
	defaultBackupTick = 5 * time.Second
	backupInfoTicks   = 6
	backupRetryTicks  = 12
)

// verificationFile is where a manager keeps its last verification, in
// its config dir, so that a restarted agent neither forgets a failure
// nor verifies again at once.
const verificationFile = "last-verification.json"

// pgConnector is what a manager needs of a postgres driver: where the
// local server listens, for pgBackRest, and a superuser connection to
// it, to set archiving.
type pgConnector interface {
	LocalAddr() (socketDir string, port int)
	WithConn(ctx context.Context, f func(*pgx.Conn) error) error
}

// backupManager runs one backup block on this host.
type backupManager struct {
	cfg    config.BackupConfig
	svc    *service
	logger hclog.Logger
	// engineCfg built engine; ensureConfigured builds it again when the
	// server listens elsewhere than configured (an adopted server started
	// with another socket directory).
	engineCfg backup.PgBackRestConfig
	engine    *backup.PgBackRest
	// leased reports whether this host holds the active site's lease.
	leased func() bool
	// every is how often run looks at the role and the schedule.
	every time.Duration

	// op runs one operation at a time on this host: a backup, a
	// verification or the set-up. pgBackRest's own lock keeps two hosts
	// from backing up one stanza at once.
	op sync.Mutex

	mu sync.Mutex
	// configured is set once pgbackrest.conf is written.
	configured bool
	// stanzaReady is set once stanza-create succeeded while the service
	// was primary here; a demotion clears it.
	stanzaReady bool
	archiving   bool
	scheduled   bool
	// wasPrimary is the role setUp last found, to see a promotion.
	wasPrimary bool
	// problem is why the block cannot archive or back up here, while it
	// lasts (a config dir the run_as user cannot reach, archiving that
	// waits for a restart).
	problem string
	info    backup.Info
	infoAt  time.Time
	infoErr string
	// failed are the last failures of a scheduled backup and
	// verification, cleared by a success.
	failed     map[string]backupFailure
	lastVerify *verificationRecord
}

// backupFailure is one failed scheduled operation.
type backupFailure struct {
	at  time.Time
	err string
}

// verificationRecord is a verification's outcome as kept on disk.
type verificationRecord struct {
	Label    string        `json:"label"`
	OK       bool          `json:"ok"`
	Reason   string        `json:"reason,omitempty"`
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration"`
}

// buildBackups builds the managers of the backup blocks. pgBackRest runs
// as the service's run_as user, which must reach the block's config dir:
// a data_dir holding one is made traversable (not readable) by others.
func (a *Agent) buildBackups(tick time.Duration) error {
	a.backups = map[string]*backupManager{}
	for _, bc := range a.config.Backups {
		sc, _ := a.config.Service(bc.Service)
		svc, ok := a.services[bc.Service]
		if !ok {
			return fmt.Errorf("backup %s: service %s is not declared", bc.Name, bc.Service)
		}
		if rel, err := filepath.Rel(a.config.DataDir, bc.ConfigDir); err == nil && filepath.IsLocal(rel) {
			for _, d := range []struct {
				dir  string
				perm os.FileMode
			}{{a.config.DataDir, 0o001}, {filepath.Join(a.config.DataDir, "backup"), 0o711}} {
				if err := addDirMode(d.dir, d.perm); err != nil {
					return fmt.Errorf("backup %s: make %s traversable for %s: %w", bc.Name, d.dir, sc.RunAs, err)
				}
			}
		}
		m, err := newBackupManager(bc, sc, svc, func() bool { return a.lease.valid(a.clock.Now()) }, a.logger)
		if err != nil {
			return err
		}
		if tick > 0 {
			m.every = tick
		}
		a.backups[bc.Name] = m
	}
	return nil
}

// archiveNow points archive_command of service, just promoted here, at
// this host's repository configuration (the copied one names the old
// primary's) at once, rather than at the next tick: a quick switchover
// back could demote it with its first segments and its timeline's history
// unarchived, and no point in time after the promotion would be
// restorable. Best effort, and fast (a reload, no pgBackRest run): the
// tick does the rest (stanza-create) and tries again.
func (a *Agent) archiveNow(ctx context.Context, service string, p driver.Progress) {
	for _, name := range slices.Sorted(maps.Keys(a.backups)) {
		m := a.backups[name]
		if m.cfg.Service != service {
			continue
		}
		// Never wait behind a verification: the tick comes soon enough.
		if !m.op.TryLock() {
			continue
		}
		err := m.ensureConfigured(ctx)
		var restartNeeded bool
		if err == nil {
			restartNeeded, err = m.configureArchiving(ctx)
		}
		m.op.Unlock()
		switch {
		case err != nil:
			p("backup block %s: archiving not set up yet: %v", name, err)
		case restartNeeded:
			p("backup block %s: archive_mode takes effect when %s restarts", name, service)
		default:
			p("backup block %s: archiving into %s", name, m.cfg.Repository)
		}
	}
}

// backupStatuses are the backup blocks' states, by name.
func (a *Agent) backupStatuses() []*pb.BackupStatus {
	var out []*pb.BackupStatus
	now := time.Now()
	for _, name := range slices.Sorted(maps.Keys(a.backups)) {
		out = append(out, a.backups[name].status(now))
	}
	return out
}

// backupStep takes a backup (args kind: full, diff or incr; default
// incr) or verifies the newest one, of a declared backup block.
func (a *Agent) backupStep(req *pb.ExecuteRequest) (stepFunc, error) {
	m, ok := a.backups[req.GetTarget()]
	if !ok {
		return nil, invalidStep("%s: backup block %q is not declared in this agent's config", actionName(req), req.GetTarget())
	}
	if req.GetAction() == pb.StepAction_STEP_ACTION_VERIFY_BACKUP {
		return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
			res, err := m.verify(ctx, p)
			out := map[string]string{"label": res.Label, "ok": fmt.Sprint(res.OK), "duration_ms": fmt.Sprint(res.Duration.Milliseconds())}
			if err != nil {
				if res.LogTail != "" {
					p("%s", res.LogTail)
				}
				return out, err
			}
			p("backup %s restored, started and answered in %s", res.Label, res.Duration.Round(time.Millisecond))
			return out, nil
		}, nil
	}
	kind := backup.Incr
	if k := req.GetArgs()["kind"]; k != "" {
		var err error
		if kind, err = backup.ParseBackupKind(k); err != nil {
			return nil, invalidStep("backup: argument kind: %v", err)
		}
	}
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		b, err := m.takeBackup(ctx, kind, p)
		if err != nil {
			return nil, err
		}
		p("backup %s (%s): %d bytes copied of %d, %d stored", b.Label, b.Kind, b.BackupSize, b.DatabaseSize, b.RepositorySize)
		return map[string]string{"label": b.Label, "kind": b.Kind.String(), "stopped_at": b.Stop.UTC().Format(time.RFC3339)}, nil
	}, nil
}

// backupLabelRE is what a pgBackRest backup label looks like: a full
// backup's, or a diff or incr one's after its full one's.
var backupLabelRE = regexp.MustCompile(`^[0-9]{8}-[0-9]{6}F(_[0-9]{8}-[0-9]{6}[DI])?$`)

// restoreBackupStep restores the block's stopped service in place (args
// to_time or label; neither for the newest state), starts it and waits
// until it recovered to that point and runs as primary.
func (a *Agent) restoreBackupStep(req *pb.ExecuteRequest) (stepFunc, error) {
	m, ok := a.backups[req.GetTarget()]
	if !ok {
		return nil, invalidStep("%s: backup block %q is not declared in this agent's config", actionName(req), req.GetTarget())
	}
	target := backup.RestoreTarget{Delta: true}
	toTime, label := req.GetArgs()[structs.ArgRestoreToTime], req.GetArgs()[structs.ArgRestoreLabel]
	switch {
	case toTime != "" && label != "":
		return nil, invalidStep("restore-backup: arguments to_time and label exclude each other")
	case toTime != "":
		t, err := time.Parse(time.RFC3339Nano, toTime)
		if err != nil {
			return nil, invalidStep("restore-backup: argument to_time %q is not an RFC 3339 time", toTime)
		}
		target.Time = t
	case label != "":
		if !backupLabelRE.MatchString(label) {
			return nil, invalidStep("restore-backup: argument label %q is not a pgBackRest backup label", label)
		}
		// The database as that backup left it, not replayed further.
		target.Label, target.Immediate = label, true
	default:
		target.Latest = true
	}
	syncStandbys, err := syncStandbysArg(req)
	if err != nil {
		return nil, err
	}
	epoch := req.GetEpoch()
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		return m.restoreInPlace(ctx, target, syncStandbys, func() { a.vouch(epoch, m.svc) }, p)
	}, nil
}

// restoreInPlace restores the stopped service's data directory to target
// (a delta restore: only what differs is rewritten), starts it, which
// recovers to the target and promotes, and waits until it runs as
// primary, waiting for syncStandbys. vouch is called before the start,
// as for a start step.
func (m *backupManager) restoreInPlace(ctx context.Context, target backup.RestoreTarget, syncStandbys []string, vouch func(), p driver.Progress) (map[string]string, error) {
	m.op.Lock()
	defer m.op.Unlock()
	st, err := m.svc.status(ctx)
	if err != nil {
		return nil, fmt.Errorf("restore %s: read its state: %w", m.cfg.Service, err)
	}
	if st.Role != driver.RoleStopped && st.Role != driver.RoleFenced {
		return nil, fmt.Errorf("restore %s: it is %s; a restore in place needs it stopped", m.cfg.Service, st.Role)
	}
	if err := m.ensureConfigured(ctx); err != nil {
		return nil, err
	}
	m.mu.Lock()
	// A new timeline begins: the stanza is set up again once it runs.
	m.stanzaReady, m.archiving = false, false
	engine, dataDir := m.engine, m.engineCfg.DataDir
	m.mu.Unlock()
	if err := engine.Restore(ctx, target, dataDir, p); err != nil {
		return nil, err
	}
	vouch()
	p("starting %s: it recovers to %s, then promotes", m.cfg.Service, target)
	if err := m.svc.driver.Start(ctx, p); err != nil {
		return nil, fmt.Errorf("start %s after the restore: %w", m.cfg.Service, err)
	}
	for {
		st, err := m.svc.status(ctx)
		if err == nil && st.Role == driver.RolePrimary {
			p("%s recovered to %s and runs as primary", m.cfg.Service, target)
			if err := m.clearRecoverySettings(ctx); err != nil {
				return nil, err
			}
			// The backup's synchronous_standby_names names standbys of
			// back then, maybe none that streams now: set it as a promote
			// does (none, or any one in strict mode), before a writer
			// starts; the leader manages it from there.
			if setter, ok := m.svc.driver.(driver.SyncStandbySetter); ok {
				if _, err := setter.SetSyncStandbys(ctx, syncStandbys, p); err != nil {
					return nil, fmt.Errorf("restore %s: %w", m.cfg.Service, err)
				}
			}
			return map[string]string{"target": target.String()}, nil
		}
		if err == nil && st.Role == driver.RoleStopped {
			return nil, fmt.Errorf("restore %s: the server stopped during recovery (see its log): %s", m.cfg.Service, st.Message)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("restore %s: wait for recovery to end: %w", m.cfg.Service, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// recoverySettings are what pgBackRest's restore writes into
// postgresql.auto.conf. PostgreSQL ignores them once promoted but keeps
// them, and a standby cloned or rewound from the restored primary copies
// the file: it would try to recover to the same target, before its own
// consistent point, and never start.
var recoverySettings = []string{"restore_command", "recovery_target", "recovery_target_time", "recovery_target_name",
	"recovery_target_xid", "recovery_target_lsn", "recovery_target_action", "recovery_target_inclusive", "recovery_target_timeline"}

// clearRecoverySettings resets the recovery settings on the restored
// primary and reloads its configuration.
func (m *backupManager) clearRecoverySettings(ctx context.Context) error {
	pg, ok := m.svc.driver.(pgConnector)
	if !ok {
		return nil
	}
	err := pg.WithConn(ctx, func(conn *pgx.Conn) error {
		for _, name := range recoverySettings {
			if _, err := conn.Exec(ctx, "ALTER SYSTEM RESET "+name); err != nil {
				return fmt.Errorf("ALTER SYSTEM RESET %s: %w", name, err)
			}
		}
		_, err := conn.Exec(ctx, "SELECT pg_reload_conf()")
		return err
	})
	if err != nil {
		return fmt.Errorf("restore %s: clear the restore's recovery settings: %w", m.cfg.Service, err)
	}
	return nil
}

// listBackups lists the backups of one declared block, or of all.
func (a *Agent) listBackups(ctx context.Context, name string) ([]*pb.BackupSet, error) {
	if name != "" {
		m, ok := a.backups[name]
		if !ok {
			return nil, invalidStep("backup block %q is not declared in this agent's config", name)
		}
		set, err := m.list(ctx)
		if err != nil {
			return nil, err
		}
		return []*pb.BackupSet{set}, nil
	}
	var out []*pb.BackupSet
	for _, n := range slices.Sorted(maps.Keys(a.backups)) {
		set, err := a.backups[n].list(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, set)
	}
	return out, nil
}

// newBackupManager builds the manager of block bc, whose service svc the
// config validation made sure is a postgres service of this agent.
func newBackupManager(bc config.BackupConfig, sc config.ServiceConfig, svc *service, leased func() bool, logger hclog.Logger) (*backupManager, error) {
	ecfg := backup.PgBackRestConfig{
		Stanza: bc.Name, Repository: bc.Repository, DataDir: sc.DataDir, Port: sc.Port,
		// The driver's default socket directory.
		SocketDir: filepath.Dir(sc.DataDir), RunAs: sc.RunAs, BinDir: sc.BinDir,
		ConfigDir: bc.ConfigDir, KeepFull: bc.KeepFull, ProcessMax: bc.ProcessMax,
	}
	engine, err := backup.NewPgBackRest(ecfg, logger)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", bc.Name, err)
	}
	m := &backupManager{cfg: bc, svc: svc, engineCfg: ecfg, engine: engine, leased: leased, every: defaultBackupTick,
		logger: logger.Named("backup").With("backup", bc.Name), failed: map[string]backupFailure{}}
	m.lastVerify = m.loadVerification()
	return m, nil
}

// run follows the service's role and the schedule until ctx ends.
func (m *backupManager) run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.tick(ctx)
		t.Reset(m.every)
	}
}

// tick sets the block up for the service's current role and takes what
// the schedule says is due.
func (m *backupManager) tick(ctx context.Context) {
	m.op.Lock()
	primary := m.setUp(ctx)
	scheduled := primary && m.leased() && m.ready()
	m.mu.Lock()
	m.scheduled = scheduled
	stale := time.Since(m.infoAt) >= backupInfoTicks*m.every
	m.mu.Unlock()
	if stale {
		m.refreshInfo(ctx)
	}
	m.op.Unlock()
	if !scheduled {
		return
	}
	now := time.Now()
	if _, due := m.backupDue(now); due && !m.retrying("backup", now) {
		// The repository is the schedule's memory, and another host may
		// have added to it since it was last read here (this host was a
		// standby then): decide on what it holds now.
		m.op.Lock()
		m.refreshInfo(ctx)
		m.op.Unlock()
	}
	if kind, due := m.backupDue(now); due && !m.retrying("backup", now) && m.infoFresh() {
		if _, err := m.takeBackup(ctx, kind, nil); err != nil && ctx.Err() == nil {
			m.fail("backup", err)
		}
	}
	if m.verifyDue(now) && !m.retrying("verify", now) {
		if _, err := m.verify(ctx, nil); err != nil && !errors.Is(err, backup.ErrVerifyFailed) && ctx.Err() == nil {
			m.fail("verify", err)
		}
	}
}

// setUp writes the configuration and, where the service is primary,
// makes it archive into the repository and creates the stanza. It
// returns whether the service runs as primary here. The caller holds op.
func (m *backupManager) setUp(ctx context.Context) bool {
	st, err := m.svc.status(ctx)
	primary := err == nil && st.Role == driver.RolePrimary
	running := primary || (err == nil && st.Role == driver.RoleStandby)
	m.mu.Lock()
	if !primary {
		m.stanzaReady, m.archiving = false, false
	}
	if primary && !m.wasPrimary {
		// A failure under another role (a backup cut short by a
		// switchover) does not hold up the new primary's schedule.
		delete(m.failed, "backup")
		delete(m.failed, "verify")
	}
	m.wasPrimary = primary
	m.mu.Unlock()
	if !running {
		return false
	}
	if err := m.ensureConfigured(ctx); err != nil {
		m.setProblem(err.Error())
		return primary
	}
	if !primary {
		m.setProblem("")
		return false
	}
	restartNeeded, err := m.configureArchiving(ctx)
	switch {
	case err != nil:
		m.setProblem(err.Error())
		return true
	case restartNeeded:
		m.setProblem(fmt.Sprintf("archive_mode takes effect when %s restarts: until then no WAL is archived and no backup can be taken; run `drplane restart --service %s`",
			m.cfg.Service, m.cfg.Service))
		return true
	}
	m.mu.Lock()
	m.archiving = true
	ready := m.stanzaReady
	m.mu.Unlock()
	if !ready {
		if err := m.engine.StanzaCreate(ctx); err != nil {
			m.setProblem(err.Error())
			return true
		}
		m.mu.Lock()
		m.stanzaReady = true
		m.mu.Unlock()
	}
	m.setProblem("")
	return true
}

// ensureConfigured writes pgbackrest.conf once. The caller holds op.
func (m *backupManager) ensureConfigured(ctx context.Context) error {
	if pg, ok := m.svc.driver.(pgConnector); ok {
		if dir, port := pg.LocalAddr(); dir != m.engineCfg.SocketDir || port != m.engineCfg.Port {
			ecfg := m.engineCfg
			ecfg.SocketDir, ecfg.Port = dir, port
			engine, err := backup.NewPgBackRest(ecfg, m.logger)
			if err != nil {
				return fmt.Errorf("backup %s: %w", m.cfg.Name, err)
			}
			m.mu.Lock()
			m.engineCfg, m.engine, m.configured = ecfg, engine, false
			m.mu.Unlock()
		}
	}
	m.mu.Lock()
	done := m.configured
	m.mu.Unlock()
	if done {
		return nil
	}
	if err := m.engine.Configure(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	m.configured = true
	m.mu.Unlock()
	return nil
}

// configureArchiving sets archive_command (and archive_mode) on the local
// primary; restartNeeded reports archive_mode waiting for a restart.
func (m *backupManager) configureArchiving(ctx context.Context) (restartNeeded bool, err error) {
	pg, ok := m.svc.driver.(pgConnector)
	if !ok {
		return false, fmt.Errorf("service %s: its driver cannot set archiving", m.cfg.Service)
	}
	err = pg.WithConn(ctx, func(conn *pgx.Conn) error {
		var err error
		restartNeeded, err = backup.ConfigureArchiving(ctx, conn, m.engine.ArchiveCommand())
		return err
	})
	return restartNeeded, err
}

// ready reports whether the block archives and its stanza exists.
func (m *backupManager) ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.archiving && m.stanzaReady && m.problem == ""
}

func (m *backupManager) setProblem(p string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p != "" && p != m.problem {
		m.logger.Warn("backup block cannot run here", "problem", p)
	}
	m.problem = p
}

// refreshInfo reads the repository's backups for status. The caller
// holds op.
func (m *backupManager) refreshInfo(ctx context.Context) {
	m.mu.Lock()
	configured := m.configured
	m.mu.Unlock()
	if !configured {
		return
	}
	info, err := m.engine.Info(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.infoAt = time.Now()
	switch {
	case errors.Is(err, backup.ErrNoStanza):
		m.info, m.infoErr = backup.Info{}, ""
	case err != nil:
		m.infoErr = err.Error()
	default:
		m.info, m.infoErr = info, ""
	}
}

// backupDue returns the kind of backup the schedule wants at now, if
// any: a full one every full_every (or the first one), an incremental
// one incr_every after the newest, each counted from the start of the
// last.
func (m *backupManager) backupDue(now time.Time) (backup.BackupKind, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.FullEvery <= 0 && m.cfg.IncrEvery <= 0 {
		return 0, false
	}
	newest, newestFull := newestBackups(m.info.Backups)
	switch {
	case newestFull == nil:
		return backup.Full, true
	case m.cfg.FullEvery > 0 && now.Sub(newestFull.Start) >= m.cfg.FullEvery:
		return backup.Full, true
	case m.cfg.IncrEvery > 0 && now.Sub(newest.Start) >= m.cfg.IncrEvery:
		return backup.Incr, true
	}
	return 0, false
}

// newestBackups are the newest backup and the newest full backup of
// backups (oldest first); nil when there is none.
func newestBackups(backups []backup.Backup) (newest, newestFull *backup.Backup) {
	for i := range backups {
		b := &backups[i]
		newest = b
		if b.Kind == backup.Full {
			newestFull = b
		}
	}
	return newest, newestFull
}

// verifyDue reports whether verify_every has passed since the last
// verification and there is a backup to verify.
func (m *backupManager) verifyDue(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.VerifyEvery <= 0 || len(m.info.Backups) == 0 {
		return false
	}
	return m.lastVerify == nil || now.Sub(m.lastVerify.At) >= m.cfg.VerifyEvery
}

// infoFresh reports whether the last read of the repository succeeded.
func (m *backupManager) infoFresh() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.infoErr == ""
}

// retrying reports whether op failed less than backupRetryTicks before
// now.
func (m *backupManager) retrying(op string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.failed[op]
	return ok && now.Sub(f.at) < backupRetryTicks*m.every
}

func (m *backupManager) fail(op string, err error) {
	m.logger.Error("scheduled "+op+" failed", "error", err)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failed[op] = backupFailure{at: time.Now(), err: err.Error()}
}

// takeBackup takes a backup of kind from the local primary.
func (m *backupManager) takeBackup(ctx context.Context, kind backup.BackupKind, progress driver.Progress) (backup.Backup, error) {
	m.op.Lock()
	defer m.op.Unlock()
	if !m.setUp(ctx) {
		return backup.Backup{}, m.notPrimary(ctx)
	}
	if !m.ready() {
		return backup.Backup{}, fmt.Errorf("backup %s: %s", m.cfg.Name, m.problemText())
	}
	b, err := m.engine.Backup(ctx, kind, progress)
	m.refreshInfo(ctx)
	if err != nil {
		return backup.Backup{}, err
	}
	m.mu.Lock()
	delete(m.failed, "backup")
	m.mu.Unlock()
	return b, nil
}

// notPrimary says why this host takes no backup.
func (m *backupManager) notPrimary(ctx context.Context) error {
	st, err := m.svc.status(ctx)
	role := "unknown"
	if err == nil {
		role = string(st.Role)
	}
	return fmt.Errorf("backup %s: service %s is %s on this host; backups are taken where it runs as primary", m.cfg.Name, m.cfg.Service, role)
}

func (m *backupManager) problemText() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.problem != "" {
		return m.problem
	}
	return "not set up yet"
}

// verify restores the newest backup into a scratch directory beside the
// config dir (<config_dir>.verify, as large as the database), starts it on the side port and queries it, and keeps
// the outcome. A backup that fails returns an error wrapping
// backup.ErrVerifyFailed.
func (m *backupManager) verify(ctx context.Context, progress driver.Progress) (backup.VerifyResult, error) {
	m.op.Lock()
	defer m.op.Unlock()
	if err := m.ensureConfigured(ctx); err != nil {
		return backup.VerifyResult{}, err
	}
	port := m.cfg.VerifyPort
	if port == 0 {
		p, err := freeLoopbackPort()
		if err != nil {
			return backup.VerifyResult{}, fmt.Errorf("backup %s: find a port for the verification: %w", m.cfg.Name, err)
		}
		port = p
	}
	// Beside the config dir, not in it: the engine refuses a scratch dir
	// that overlaps its own.
	res, err := m.engine.Verify(ctx, m.cfg.ConfigDir+".verify", port, progress)
	if err != nil && !errors.Is(err, backup.ErrVerifyFailed) {
		return res, err
	}
	rec := &verificationRecord{Label: res.Label, OK: res.OK, Reason: res.Reason, At: time.Now().UTC(), Duration: res.Duration}
	m.mu.Lock()
	m.lastVerify = rec
	delete(m.failed, "verify")
	m.mu.Unlock()
	m.saveVerification(rec)
	return res, err
}

// freeLoopbackPort asks the kernel for a free TCP port on loopback.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (m *backupManager) loadVerification() *verificationRecord {
	data, err := os.ReadFile(filepath.Join(m.cfg.ConfigDir, verificationFile))
	if err != nil {
		return nil
	}
	var rec verificationRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		m.logger.Warn("ignoring unreadable verification record", "error", err)
		return nil
	}
	return &rec
}

func (m *backupManager) saveVerification(rec *verificationRecord) {
	data, err := json.Marshal(rec)
	if err == nil {
		err = fsutil.WriteFileDurable(filepath.Join(m.cfg.ConfigDir, verificationFile), data)
	}
	if err != nil {
		m.logger.Warn("failed to keep the verification's outcome", "error", err)
	}
}

// status is the block's state for probes and `drplane status`.
func (m *backupManager) status(now time.Time) *pb.BackupStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &pb.BackupStatus{Name: m.cfg.Name, Service: m.cfg.Service, Repository: m.cfg.Repository,
		Archiving: m.archiving, Scheduled: m.scheduled, BackupCount: uint32(len(m.info.Backups))}
	newest, newestFull := newestBackups(m.info.Backups)
	if newest != nil {
		out.Newest = backupInfoProto(*newest)
	}
	if newestFull != nil {
		out.NewestFull = backupInfoProto(*newestFull)
	}
	if !m.info.RestorableUntil.IsZero() {
		out.RestorableFrom, out.RestorableUntil = timestamppb.New(m.info.RestorableFrom), timestamppb.New(m.info.RestorableUntil)
	}
	if v := m.lastVerify; v != nil {
		out.LastVerification = &pb.BackupVerification{Label: v.Label, Ok: v.OK, Reason: v.Reason, At: timestamppb.New(v.At), DurationMs: uint64(v.Duration.Milliseconds())}
	}
	if f, ok := m.failed["backup"]; ok && m.archiving {
		out.BackupFailedAt, out.BackupFailure = timestamppb.New(f.at), f.err
	}
	out.Warnings = m.warningsLocked(now, newest)
	return out
}

// warningsLocked is what needs an operator. Where the service is not
// primary only the block's own problems count: the primary's agent
// reports on the schedule. The caller holds mu.
func (m *backupManager) warningsLocked(now time.Time, newest *backup.Backup) []string {
	var out []string
	if m.problem != "" {
		out = append(out, m.problem)
	}
	if !m.archiving {
		return out
	}
	if m.infoErr != "" {
		out = append(out, "the repository cannot be read: "+m.infoErr)
	}
	interval := m.cfg.IncrEvery
	if interval <= 0 {
		interval = m.cfg.FullEvery
	}
	switch {
	case interval <= 0:
	case newest == nil && m.infoErr == "":
		out = append(out, "no backup in the repository yet")
	case newest != nil && now.Sub(newest.Stop) > 2*interval:
		out = append(out, fmt.Sprintf("the newest backup %s is %s old, more than twice its interval %s",
			newest.Label, now.Sub(newest.Stop).Round(time.Second), interval))
	}
	if f, ok := m.failed["backup"]; ok {
		out = append(out, fmt.Sprintf("the scheduled backup failed at %s: %s", f.at.UTC().Format(time.RFC3339), f.err))
	}
	if f, ok := m.failed["verify"]; ok {
		out = append(out, fmt.Sprintf("the scheduled verification could not run at %s: %s", f.at.UTC().Format(time.RFC3339), f.err))
	}
	if v := m.lastVerify; v != nil && !v.OK {
		out = append(out, fmt.Sprintf("the verification of backup %s failed at %s: %s", v.Label, v.At.UTC().Format(time.RFC3339), v.Reason))
	}
	if v := m.lastVerify; m.cfg.VerifyEvery > 0 && v != nil && now.Sub(v.At) > 2*m.cfg.VerifyEvery {
		out = append(out, fmt.Sprintf("the last verification is %s old, more than twice verify_every %s", now.Sub(v.At).Round(time.Second), m.cfg.VerifyEvery))
	}
	return out
}

// list returns the block's status and the repository's backups, read now.
func (m *backupManager) list(ctx context.Context) (*pb.BackupSet, error) {
	m.op.Lock()
	err := m.ensureConfigured(ctx)
	if err == nil {
		m.refreshInfo(ctx)
	}
	m.op.Unlock()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	errText, backups := m.infoErr, m.info.Backups
	m.mu.Unlock()
	if errText != "" {
		return nil, fmt.Errorf("backup %s: list the repository's backups: %s", m.cfg.Name, errText)
	}
	set := &pb.BackupSet{Status: m.status(time.Now())}
	for _, b := range backups {
		set.Backups = append(set.Backups, backupInfoProto(b))
	}
	return set, nil
}

func backupInfoProto(b backup.Backup) *pb.BackupInfo {
	return &pb.BackupInfo{Label: b.Label, Kind: backupKindProto(b.Kind), Prior: b.Prior,
		StartedAt: timestamppb.New(b.Start), StoppedAt: timestamppb.New(b.Stop),
		DatabaseBytes: uint64(max(b.DatabaseSize, 0)), BackupBytes: uint64(max(b.BackupSize, 0)),
		RepositoryBytes: uint64(max(b.RepositorySize, 0)), ChecksumErrors: b.ChecksumErrors}
}

func backupKindProto(k backup.BackupKind) pb.BackupKind {
	switch k {
	case backup.Full:
		return pb.BackupKind_BACKUP_KIND_FULL
	case backup.Diff:
		return pb.BackupKind_BACKUP_KIND_DIFF
	case backup.Incr:
		return pb.BackupKind_BACKUP_KIND_INCR
	}
	return pb.BackupKind_BACKUP_KIND_UNSPECIFIED
}
