package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/hostagent/health"
)

// The layout of a scratch copy inside Verify's scratch directory.
const (
	scratchData       = "data"         // the restored cluster
	scratchSockets    = "run"          // its own unix socket directory
	scratchLog        = "postgres.log" // its server log
	scratchTablespace = "tablespace"   // its tablespaces, never the original's
)

const (
	// scratchReadyTimeout bounds the wait for a started copy to finish
	// recovery, within the caller's context.
	scratchReadyTimeout = 2 * time.Minute
	// pollInterval is how often a wait looks again.
	pollInterval = 50 * time.Millisecond
	// scratchCleanupTimeout bounds stopping and removing a copy, which
	// happens even when the caller's context has ended.
	scratchCleanupTimeout = 30 * time.Second
	// healthQuery is what a restored copy must answer: it reads a catalog,
	// so the copy's files are there, not only its postmaster.
	healthQuery = "SELECT count(*) FROM pg_class"
	// maxSocketPath is the longest unix socket path PostgreSQL can bind
	// (sun_path, 108 bytes with the terminator).
	maxSocketPath = 107
	// logTailBytes bounds the server log kept in a VerifyResult.
	logTailBytes = 4096
)

// scratchSettings are appended to a scratch copy's postgresql.auto.conf,
// where they win over the restored configuration, so that nothing the
// copy does reaches production: no client can reach it (it listens on
// its own socket only), it archives nothing into the repository (a
// promoted copy's new timeline would otherwise be archived beside
// production's WAL), follows no upstream and waits for no synchronous
// standby.
var scratchSettings = [][2]string{
	{"listen_addresses", ""},
	{"archive_mode", "off"},
	{"archive_command", ""},
	{"synchronous_standby_names", ""},
	{"primary_conninfo", ""},
	{"primary_slot_name", ""},
}

// scratch is a copy of the cluster restored for a check.
type scratch struct {
	dir, data, sockets, log string
	port                    int
}

// newScratch lays out a copy in dir.
func newScratch(dir string, port int) scratch {
	return scratch{
		dir: dir, data: filepath.Join(dir, scratchData), sockets: filepath.Join(dir, scratchSockets),
		log: filepath.Join(dir, scratchLog), port: port,
	}
}

// Verify restores the newest backup into scratchDir (missing or empty,
// its parent existing), starts it on port with its own socket directory,
// waits until it has recovered and answers a catalog query, then stops it
// immediately and removes scratchDir, also when something failed. It
// replays only the WAL the backup needs to be consistent
// (recovery_target = immediate): it checks the backup, not the archive
// after it.
//
// A backup that does not restore, start or answer is a failed
// verification: Verify returns a VerifyResult with OK false, the reason
// and the log that explains it, and an error wrapping ErrVerifyFailed.
// Any other error (no backup, an unusable scratch directory, the context
// ended) means nothing was verified.
func (e *PgBackRest) Verify(ctx context.Context, scratchDir string, port int, progress Progress) (VerifyResult, error) {
	start := time.Now()
	res, err := e.verify(ctx, newScratch(scratchDir, port), progressOrDiscard(progress))
	res.Duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("verify stanza %s: %w", e.cfg.Stanza, err)
	}
	if !res.OK {
		e.logger.Warn("backup verification failed", "label", res.Label, "reason", res.Reason)
		return res, fmt.Errorf("verify stanza %s backup %s: %w: %s", e.cfg.Stanza, res.Label, ErrVerifyFailed, res.Reason)
	}
	e.logger.Info("backup verified", "label", res.Label, "duration", res.Duration)
	return res, nil
}

func (e *PgBackRest) verify(ctx context.Context, sc scratch, progress Progress) (res VerifyResult, err error) {
	if err := e.checkScratch(sc); err != nil {
		return res, err
	}
	backups, err := e.List(ctx)
	if err != nil {
		return res, err
	}
	if len(backups) == 0 {
		return res, fmt.Errorf("%w to verify", ErrNoBackup)
	}
	res.Label = backups[len(backups)-1].Label
	if err := mkdirOwned(e.user, sc.dir, 0o700); err != nil {
		return res, fmt.Errorf("create scratch dir: %w", err)
	}
	defer func() { err = errors.Join(err, e.removeScratch(ctx, sc, progress)) }()
	res.Reason, res.LogTail = e.restoreAndStart(ctx, sc, res.Label, progress)
	// A failure because the caller gave up says nothing about the backup.
	if res.Reason != "" && ctx.Err() != nil {
		return res, fmt.Errorf("verify backup %s: %w: %s", res.Label, ctx.Err(), res.Reason)
	}
	res.OK = res.Reason == ""
	return res, nil
}

// restoreAndStart restores backup label into sc and checks that it
// starts and answers. It returns why not, and the output that says more,
// or "" when the backup passed.
func (e *PgBackRest) restoreAndStart(ctx context.Context, sc scratch, label string, progress Progress) (reason, logTail string) {
	args := []string{"--set=" + label, "--type=immediate", "--target-action=promote",
		"--tablespace-map-all=" + filepath.Join(sc.dir, scratchTablespace)}
	if err := e.restore(ctx, sc.data, args, progress); err != nil {
		return fmt.Sprintf("restore: %v", err), pgTail(err.Error())
	}
	if err := e.startScratch(ctx, sc, progress); err != nil {
		return err.Error(), readTail(sc.log)
	}
	return "", ""
}

// checkScratch refuses a scratch directory Verify cannot use or must not
// remove afterwards.
func (e *PgBackRest) checkScratch(sc scratch) error {
	if err := validPath("scratch_dir", sc.dir); err != nil {
		return err
	}
	if sc.port < 1 || sc.port > 65535 || sc.port == e.cfg.Port {
		return fmt.Errorf("%w: scratch port %d is not a port other than the cluster's", ErrInvalid, sc.port)
	}
	for _, p := range []string{e.cfg.DataDir, e.cfg.Repository, e.cfg.ConfigDir} {
		if within(sc.dir, p) || within(p, sc.dir) {
			return fmt.Errorf("%w: scratch dir %s overlaps %s", ErrInvalid, sc.dir, p)
		}
	}
	if n := len(filepath.Join(sc.sockets, fmt.Sprintf(".s.PGSQL.%d", sc.port))); n > maxSocketPath {
		return fmt.Errorf("%w: scratch dir %s is too long for a unix socket inside it (%d bytes, at most %d)", ErrInvalid, sc.dir, n, maxSocketPath)
	}
	if err := checkEmpty(sc.dir, false); err != nil {
		return fmt.Errorf("scratch dir: %w", err)
	}
	return e.user.CheckReachable(filepath.Dir(sc.dir))
}

// startScratch makes the restored copy in sc independent (see
// scratchSettings), starts it with the driver and waits until it has
// finished recovery and answers healthQuery.
func (e *PgBackRest) startScratch(ctx context.Context, sc scratch, progress Progress) error {
	if err := mkdirOwned(e.user, sc.sockets, 0o700); err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	if err := appendSettings(filepath.Join(sc.data, "postgresql.auto.conf"), scratchSettings); err != nil {
		return fmt.Errorf("configure the restored copy: %w", err)
	}
	pg, err := e.scratchServer(sc)
	if err != nil {
		return err
	}
	if err := pg.Start(ctx, driver.Progress(progress)); err != nil {
		return err
	}
	progress("waiting until the restored copy has recovered")
	check := health.NewSQL(e.scratchConnString(sc), healthQuery, 0)
	return poll(ctx, func(ctx context.Context) error {
		st, err := pg.Status(ctx)
		switch {
		case err != nil:
			return err
		case st.Role != driver.RolePrimary:
			return fmt.Errorf("the restored copy is %s, not recovered: %s", st.Role, st.Message)
		}
		return check.Check(ctx)
	})
}

// scratchServer is the driver of the copy in sc.
func (e *PgBackRest) scratchServer(sc scratch) (*driver.Postgres, error) {
	return driver.NewPostgres(driver.PostgresConfig{
		Name: "verify-" + e.cfg.Stanza, DataDir: sc.data, Port: sc.port, BinDir: e.cfg.BinDir,
		RunAs: e.cfg.RunAs, SocketDir: sc.sockets, User: e.cfg.User, LogFile: sc.log,
	}, e.logger)
}

// scratchConnString connects to the copy in sc over its socket.
func (e *PgBackRest) scratchConnString(sc scratch) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres application_name=drplane-verify connect_timeout=5",
		sc.sockets, sc.port, e.cfg.User)
}

// removeScratch stops the copy in sc immediately, if it runs (the copy is
// about to be deleted, so a shutdown checkpoint would be wasted), and
// removes sc.dir. It runs even when ctx has ended.
func (e *PgBackRest) removeScratch(ctx context.Context, sc scratch, progress Progress) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), scratchCleanupTimeout)
	defer cancel()
	var errs []error
	if _, err := os.Stat(filepath.Join(sc.data, "postmaster.pid")); err == nil {
		cmd := e.user.Command(ctx, filepath.Join(e.cfg.BinDir, "pg_ctl"), "stop", "-D", sc.data, "-m", "immediate", "-w")
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("stop the restored copy: pg_ctl stop: %w: %s", err, pgTail(string(out))))
		}
	}
	progress("removing %s", sc.dir)
	if err := os.RemoveAll(sc.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove scratch dir: %w", err))
	}
	return errors.Join(errs...)
}

// appendSettings appends key = 'value' lines to a configuration file that
// exists; later lines win in PostgreSQL's configuration.
func appendSettings(path string, settings [][2]string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("\n# drplane: an independent copy for a backup check\n")
	for _, kv := range settings {
		fmt.Fprintf(&b, "%s = '%s'\n", kv[0], strings.ReplaceAll(kv[1], "'", "''"))
	}
	_, err = f.WriteString(b.String())
	return errors.Join(err, f.Close())
}

// poll calls f until it succeeds, ctx ends or scratchReadyTimeout passes,
// and returns f's last error with the reason it gave up.
func poll(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, scratchReadyTimeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-ticker.C:
		}
	}
}

// readTail returns the end of the file at path, or "".
func readTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > logTailBytes {
		_, _ = f.Seek(-logTailBytes, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return pgTail(string(b))
}

// pgTail returns the last logTailBytes of s, trimmed.
func pgTail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > logTailBytes {
		s = "..." + s[len(s)-logTailBytes:]
	}
	return s
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
