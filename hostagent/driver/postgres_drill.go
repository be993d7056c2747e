package driver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

var _ Driller = (*Postgres)(nil)

// The layout of a drill copy inside Drill.Dir.
const (
	pgDrillData    = "data"         // the configured clone
	pgDrillPartial = "data.partial" // the clone while pg_basebackup writes it
	pgDrillSockets = "run"          // its own unix socket directory
	pgDrillLog     = "postgres.log" // its server log
)

// pgDrillSettings are written into a drill copy's postgresql.auto.conf,
// besides its port, socket directory and external pid file (see
// makeIndependent), so that nothing it does reaches production: it
// follows no upstream, archives nothing into the production WAL archive
// (its WAL has the same timeline and segment names as production's) and
// waits for no synchronous standby (its writes would hang).
var pgDrillSettings = [][2]string{
	{"primary_conninfo", ""},
	{"primary_slot_name", ""},
	{"archive_mode", "off"},
	{"synchronous_standby_names", ""},
}

// StartDrill clones the running local server with pg_basebackup into
// d.Dir, makes the clone an independent primary on d.Port (no
// standby.signal, no upstream, no archiving), starts it with pg_ctl and
// waits until it takes writes. The local server is only read: a
// standby keeps streaming and replaying. A copy that exists already is
// started, or adopted when it runs, rather than cloned again.
func (p *Postgres) StartDrill(ctx context.Context, d Drill, progress Progress) error {
	p.drillMu.Lock()
	defer p.drillMu.Unlock()
	if err := p.startDrillLocked(ctx, d, pgProgress(progress)); err != nil {
		return fmt.Errorf("start drill %s of %s: %w", d.ID, p.cfg.Name, err)
	}
	return nil
}

// startDrillLocked implements StartDrill. The caller holds drillMu.
func (p *Postgres) startDrillLocked(ctx context.Context, d Drill, progress Progress) error {
	if d.Port == p.cfg.Port {
		return fmt.Errorf("drill port %d is the service's own port", d.Port)
	}
	cp, err := p.drillCopy(d)
	if err != nil {
		return err
	}
	_, err = os.Stat(cp.cfg.DataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := p.cloneForDrill(ctx, cp, d, progress); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		progress("drill copy already cloned in %s", cp.cfg.DataDir)
	}
	if err := cp.startLocked(ctx, progress); err != nil {
		return err
	}
	progress("waiting until the drill copy takes writes")
	var lsn string
	err = pgPoll(ctx, func(ctx context.Context) error {
		lsn, err = cp.writableLSN(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("wait until the drill copy is writable: %w", err)
	}
	progress("drill copy is writable at %s on port %d", lsn, d.Port)
	return nil
}

// CheckDrill checks once that the drill copy runs as a writable primary
// and answers SQL on its own socket.
func (p *Postgres) CheckDrill(ctx context.Context, d Drill, progress Progress) error {
	progress = pgProgress(progress)
	cp, err := p.drillCopy(d)
	if err == nil {
		err = p.requireDrillDir(d)
	}
	if err != nil {
		return fmt.Errorf("check drill %s of %s: %w", d.ID, p.cfg.Name, err)
	}
	st, err := cp.Status(ctx)
	if err != nil {
		return fmt.Errorf("check drill %s of %s: %w", d.ID, p.cfg.Name, err)
	}
	if st.Role != RolePrimary {
		return fmt.Errorf("check drill %s of %s: the drill copy is %s (%s), not a writable primary", d.ID, p.cfg.Name, st.Role, st.Message)
	}
	progress("drill copy %s of %s is primary at %s", d.ID, p.cfg.Name, st.Replication.Position)
	return nil
}

// StopDrill stops the drill copy (fast, then immediately) and removes
// d.Dir. A copy that does not exist is already cleaned up.
func (p *Postgres) StopDrill(ctx context.Context, d Drill, progress Progress) (bool, error) {
	progress = pgProgress(progress)
	p.drillMu.Lock()
	defer p.drillMu.Unlock()
	if _, err := os.Lstat(d.Dir); errors.Is(err, fs.ErrNotExist) {
		progress("drill copy %s of %s does not exist (already cleaned up)", d.ID, p.cfg.Name)
		return false, nil
	}
	cp, err := p.drillCopy(d)
	if err == nil {
		err = cp.stopLocked(ctx, progress)
	}
	if err != nil {
		return true, fmt.Errorf("stop drill %s of %s: %w", d.ID, p.cfg.Name, err)
	}
	progress("removing drill copy %s", d.Dir)
	if err := os.RemoveAll(d.Dir); err != nil {
		return true, fmt.Errorf("stop drill %s of %s: remove its data: %w", d.ID, p.cfg.Name, err)
	}
	if !pgWithin(cp.cfg.SocketDir, d.Dir) {
		if err := os.RemoveAll(cp.cfg.SocketDir); err != nil {
			return true, fmt.Errorf("stop drill %s of %s: remove its socket directory: %w", d.ID, p.cfg.Name, err)
		}
	}
	return true, nil
}

// pgMaxSocketPath is the longest unix socket path PostgreSQL can bind
// (sun_path, 108 bytes with the terminator).
const pgMaxSocketPath = 107

// drillSocketDir is the copy's socket directory: inside its directory,
// unless the socket's path would be too long for a unix socket; then a
// short directory in the temp dir named after the copy's directory, so
// that a restarted agent finds the same one.
func drillSocketDir(dir string) string {
	inside := filepath.Join(dir, pgDrillSockets)
	if len(filepath.Join(inside, ".s.PGSQL.65535")) <= pgMaxSocketPath {
		return inside
	}
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(os.TempDir(), "drplane-drill-"+hex.EncodeToString(sum[:8]))
}

// drillCopy is a driver of the drill copy in d.Dir: the service's
// settings with the copy's data, port, sockets and log.
func (p *Postgres) drillCopy(d Drill) (*Postgres, error) {
	cfg := p.cfg
	cfg.Name = p.cfg.Name + "-drill-" + d.ID
	cfg.DataDir = filepath.Join(d.Dir, pgDrillData)
	cfg.SocketDir = drillSocketDir(d.Dir)
	cfg.LogFile = filepath.Join(d.Dir, pgDrillLog)
	cfg.Port = d.Port
	if cfg.Port == 0 {
		// A stop needs no port (pg_ctl stops by data directory), and the
		// drill block may have left the config since the copy started.
		cfg.Port = p.cfg.Port
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("drill copy: %w", err)
	}
	// The copy is removed wholesale on stop: it must never overlap the
	// service's own data.
	if pgWithin(p.cfg.DataDir, d.Dir) || pgWithin(d.Dir, p.cfg.DataDir) {
		return nil, fmt.Errorf("drill directory %s overlaps the data directory %s", d.Dir, p.cfg.DataDir)
	}
	return &Postgres{cfg: cfg, logger: p.logger.Named("drill-" + d.ID), cred: p.cred}, nil
}

// requireDrillDir fails when the drill copy's directory does not exist.
func (p *Postgres) requireDrillDir(d Drill) error {
	if _, err := os.Stat(d.Dir); err != nil {
		return fmt.Errorf("no drill copy in %s (start the drill first): %w", d.Dir, err)
	}
	return nil
}

// cloneForDrill fills cp's data directory with a base backup of the
// local server, configured as an independent primary. It clones into
// data.partial and renames that into place only once configured, so a
// start interrupted half-way clones afresh rather than starting a
// half-written or still standby-configured copy.
func (p *Postgres) cloneForDrill(ctx context.Context, cp *Postgres, d Drill, progress Progress) error {
	running, err := p.running(ctx)
	if err != nil {
		return err
	}
	if !running {
		return fmt.Errorf("%w: a drill clones the running local server; start %s first", ErrPostgresNotRunning, p.cfg.Name)
	}
	if err := p.makeDrillDirs(d, cp); err != nil {
		return err
	}
	partial := filepath.Join(d.Dir, pgDrillPartial)
	if err := os.RemoveAll(partial); err != nil {
		return fmt.Errorf("remove an interrupted clone: %w", err)
	}
	host, port := p.localAddr()
	progress("cloning %s (port %d) with pg_basebackup into %s", p.cfg.Name, port, d.Dir)
	// --no-sync: the copy is thrown away after the drill; fsyncing a
	// whole cluster would only load the production host's disks.
	_, err = p.run(ctx, "pg_basebackup", "--pgdata="+partial, "--wal-method=stream", "--checkpoint=fast",
		"--no-sync", "--host="+host, "--port="+strconv.Itoa(port), "--username="+p.cfg.ReplicationUser, "--no-password")
	if err == nil {
		err = p.makeIndependent(partial, cp)
	}
	if err == nil {
		err = os.Rename(partial, cp.cfg.DataDir)
	}
	if err != nil {
		_ = os.RemoveAll(partial)
		return fmt.Errorf("clone for drill: %w", err)
	}
	return nil
}

// makeDrillDirs creates d.Dir and the socket directory, owned by RunAs
// and private to it, after checking RunAs can reach them at all.
func (p *Postgres) makeDrillDirs(d Drill, cp *Postgres) error {
	// pg_basebackup and the server run as RunAs and would otherwise fail
	// later with a bare "permission denied".
	if err := p.cred.CheckReachable(filepath.Dir(d.Dir)); err != nil {
		return err
	}
	for _, dir := range []string{d.Dir, cp.cfg.SocketDir} {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create drill directory: %w", err)
		}
		// Mkdir's mode is subject to the umask; Chmod is not.
		if err := errors.Join(p.cred.Chown(dir), os.Chmod(dir, 0o700)); err != nil {
			return fmt.Errorf("give drill directory %s to %s: %w", dir, p.cfg.RunAs, err)
		}
	}
	return nil
}

// makeIndependent turns the base backup in dataDir into a primary of its
// own: no standby.signal or recovery.signal, and the settings of
// pgDrillSettings, cp's port and socket directory, an external pid file
// of its own (an empty one is not "none" but a failed write, and
// production's must not be overwritten) and a cluster name that tells
// its processes apart from production's in ps.
func (p *Postgres) makeIndependent(dataDir string, cp *Postgres) error {
	for _, f := range []string{"standby.signal", "recovery.signal"} {
		if err := os.Remove(filepath.Join(dataDir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", f, err)
		}
	}
	settings := append(slices.Clone(pgDrillSettings),
		[2]string{"port", strconv.Itoa(cp.cfg.Port)},
		[2]string{"unix_socket_directories", cp.cfg.SocketDir},
		[2]string{"external_pid_file", filepath.Join(cp.cfg.SocketDir, "external.pid")},
		[2]string{"cluster_name", cp.cfg.Name})
	for _, kv := range settings {
		if err := p.setAutoConfIn(dataDir, kv[0], kv[1]); err != nil {
			return fmt.Errorf("set %s: %w", kv[0], err)
		}
	}
	return nil
}

// pgWithin reports whether path is dir or inside it.
func pgWithin(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
