package backup

import (
	"context"
	"fmt"
	"regexp"
	"time"
)

// newLabelRE finds the label in the line pgBackRest logs when a backup
// completes.
var newLabelRE = regexp.MustCompile(`new backup label = (\S+)`)

// Backup takes a backup of kind from the running primary and returns it
// as the repository lists it. pgBackRest turns a diff or incr backup
// without a full one before it into a full backup, so the returned Kind
// may differ from kind. Backups older than KeepFull full ones are expired
// afterwards.
func (e *PgBackRest) Backup(ctx context.Context, kind BackupKind, progress Progress) (Backup, error) {
	start := time.Now()
	b, err := e.backup(ctx, kind, progressOrDiscard(progress))
	if err != nil {
		return Backup{}, fmt.Errorf("%s backup of stanza %s: %w", kind, e.cfg.Stanza, err)
	}
	e.logger.Info("backup taken", "label", b.Label, "kind", b.Kind, "database_size", b.DatabaseSize,
		"backup_size", b.BackupSize, "duration", time.Since(start))
	return b, nil
}

func (e *PgBackRest) backup(ctx context.Context, kind BackupKind, progress Progress) (Backup, error) {
	if kind < Full || kind > Incr {
		return Backup{}, fmt.Errorf("%w: backup kind %s", ErrInvalid, kind)
	}
	out, err := e.run(ctx, progress, "backup", "--type="+kind.String())
	if err != nil {
		return Backup{}, err
	}
	backups, err := e.List(ctx)
	if err != nil {
		return Backup{}, err
	}
	if len(backups) == 0 {
		return Backup{}, fmt.Errorf("pgbackrest backup succeeded but info lists no backup")
	}
	// The label line is the exact answer; without it the newest backup is
	// ours, since pgBackRest's lock lets one backup of a stanza run at a
	// time.
	if m := newLabelRE.FindSubmatch(out); m != nil {
		for _, b := range backups {
			if b.Label == string(m[1]) {
				return b, nil
			}
		}
		return Backup{}, fmt.Errorf("pgbackrest reported backup %s, which info does not list", m[1])
	}
	return backups[len(backups)-1], nil
}

// progressOrDiscard returns p, or a function that discards.
func progressOrDiscard(p Progress) Progress {
	if p == nil {
		return func(string, ...any) {}
	}
	return p
}
