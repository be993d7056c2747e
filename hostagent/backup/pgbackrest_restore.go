package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// targetTimeLayout is how a time target is given to PostgreSQL's
// recovery_target_time: microseconds, in UTC with an explicit offset.
const targetTimeLayout = "2006-01-02 15:04:05.999999-07"

// Restore restores the stanza into dataDir, as target says, and leaves
// the recovery settings pgBackRest writes (restore_command, the target,
// recovery.signal) for PostgreSQL to act on at its next start: it does
// not start the server. dataDir must be missing or empty unless
// target.Delta; its parent must exist. The target is checked against the
// repository before anything is written: an unknown label or a time
// before every backup's end is refused.
//
// Tablespaces are restored where the backed-up cluster had them, which is
// right for a restore in place; a copy elsewhere on the same host must
// not be made with Restore while the original runs (Verify maps them into
// its scratch directory).
func (e *PgBackRest) Restore(ctx context.Context, target RestoreTarget, dataDir string, progress Progress) error {
	start := time.Now()
	err := e.restoreTarget(ctx, target, dataDir, progressOrDiscard(progress))
	if err != nil {
		return fmt.Errorf("restore stanza %s to %s into %s: %w", e.cfg.Stanza, target, dataDir, err)
	}
	e.logger.Info("restored", "target", target.String(), "data_dir", dataDir, "duration", time.Since(start))
	return nil
}

func (e *PgBackRest) restoreTarget(ctx context.Context, target RestoreTarget, dataDir string, progress Progress) error {
	if err := target.validate(); err != nil {
		return err
	}
	if err := validPath("data_dir", dataDir); err != nil {
		return err
	}
	if err := checkEmpty(dataDir, target.Delta); err != nil {
		return err
	}
	backups, err := e.List(ctx)
	if err != nil {
		return err
	}
	args, err := targetArgs(target, backups, time.Now())
	if err != nil {
		return err
	}
	if target.Delta {
		args = append(args, "--delta")
	}
	return e.restore(ctx, dataDir, args, progress)
}

// restore creates dataDir if needed and runs pgbackrest restore into it
// with args.
func (e *PgBackRest) restore(ctx context.Context, dataDir string, args []string, progress Progress) error {
	if err := mkdirOwned(e.user, dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	progress("restoring %s into %s (%s)", e.cfg.Stanza, dataDir, strings.Join(append([]string{"restore"}, args...), " "))
	args = append([]string{"restore", "--pg1-path=" + dataDir}, args...)
	_, err := e.run(ctx, progress, args...)
	return err
}

// targetArgs checks target against the repository's backups and returns
// the restore options that reach it. A time target names its backup set
// rather than leaving the choice to pgBackRest, which compares the time
// with stop times truncated to the second and so may pick a backup that
// ended after the target.
func targetArgs(target RestoreTarget, backups []Backup, now time.Time) ([]string, error) {
	if len(backups) == 0 {
		return nil, fmt.Errorf("%w in the repository", ErrNoBackup)
	}
	switch {
	case target.Label != "":
		if !containsLabel(backups, target.Label) {
			return nil, fmt.Errorf("%w %q: the repository holds %s", ErrUnknownLabel, target.Label, labels(backups))
		}
		if target.Immediate {
			return []string{"--set=" + target.Label, "--type=immediate", "--target-action=promote"}, nil
		}
		return []string{"--set=" + target.Label}, nil
	case !target.Time.IsZero():
		b, err := baseFor(target.Time, backups, now)
		if err != nil {
			return nil, err
		}
		return []string{"--set=" + b.Label, "--type=time", "--target=" + target.Time.UTC().Format(targetTimeLayout),
			"--target-action=promote"}, nil
	}
	return nil, nil // latest: the newest backup, then all archived WAL
}

// baseFor returns the newest backup a restore to t can start from.
func baseFor(t time.Time, backups []Backup, now time.Time) (Backup, error) {
	// PostgreSQL replays to the end of the archive looking for the target
	// and then refuses to start, after the whole restore.
	if t.After(now) {
		return Backup{}, fmt.Errorf("%w: time %s is in the future", ErrInvalid, t.UTC().Format(time.RFC3339Nano))
	}
	for i := len(backups) - 1; i >= 0; i-- {
		if !backups[i].earliestTarget().After(t) {
			return backups[i], nil
		}
	}
	oldest := backups[0]
	return Backup{}, fmt.Errorf("%w ends before %s; the oldest ends at %s, so the earliest time to restore to is %s",
		ErrNoBackup, t.UTC().Format(time.RFC3339Nano), oldest.Stop.Format(time.RFC3339), oldest.earliestTarget().Format(time.RFC3339))
}

// containsLabel reports whether a backup has label.
func containsLabel(backups []Backup, label string) bool {
	for _, b := range backups {
		if b.Label == label {
			return true
		}
	}
	return false
}

// labels lists the backups' labels, oldest first.
func labels(backups []Backup) string {
	var l []string
	for _, b := range backups {
		l = append(l, b.Label)
	}
	return strings.Join(l, ", ")
}

// checkEmpty fails when dir exists and holds anything, unless delta.
func checkEmpty(dir string, delta bool) error {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return err
	case !delta:
		return fmt.Errorf("%w: data dir %s is not empty; restore into an empty one, or with delta over a stopped copy of this cluster", ErrInvalid, dir)
	}
	return nil
}
