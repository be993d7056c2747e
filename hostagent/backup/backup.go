// Package backup takes consistent PostgreSQL backups with point-in-time
// recovery through pgBackRest: it writes the stanza's configuration, has
// the primary archive its WAL into the repository, takes full,
// differential and incremental backups, lists them, restores one (or the
// state at a point in time) into a data directory and verifies the newest
// by restoring and starting it in a scratch directory.
//
// pgBackRest and PostgreSQL run as the cluster's OS user, with a clean
// environment and always with the engine's own configuration file, never
// the system's /etc/pgbackrest.conf. Secrets (repository credentials, once
// there are any) only ever go into that file, mode 0600: never into
// arguments, which every user of the host can read, nor into logs.
package backup

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrInvalid is a configuration or argument refused before anything
	// ran.
	ErrInvalid = errors.New("invalid")
	// ErrUnknownLabel is a restore of a backup label the repository does
	// not hold.
	ErrUnknownLabel = errors.New("unknown backup label")
	// ErrNoBackup is a restore or verification with no backup in the
	// repository, or none that ends before the target time.
	ErrNoBackup = errors.New("no backup")
	// ErrNoStanza is a repository without the stanza: StanzaCreate has not
	// run against it.
	ErrNoStanza = errors.New("stanza does not exist")
	// ErrVerifyFailed is a backup that did not restore, start or answer a
	// query. Verify returns it with a VerifyResult saying why.
	ErrVerifyFailed = errors.New("backup verification failed")
)

// Progress receives human-readable progress lines while a long operation
// runs. It is an alias so that the driver's and the snapshot manager's
// progress functions can be passed as they are.
type Progress = func(format string, args ...any)

// BackupKind is the type of a pgBackRest backup.
type BackupKind uint8

const (
	// Full copies the whole cluster.
	Full BackupKind = iota + 1
	// Diff copies what changed since the last full backup.
	Diff
	// Incr copies what changed since the last backup of any kind.
	Incr
)

// String returns pgBackRest's name for the kind: full, diff or incr.
func (k BackupKind) String() string {
	switch k {
	case Full:
		return "full"
	case Diff:
		return "diff"
	case Incr:
		return "incr"
	}
	return fmt.Sprintf("BackupKind(%d)", uint8(k))
}

// ParseBackupKind parses pgBackRest's name of a kind.
func ParseBackupKind(s string) (BackupKind, error) {
	for _, k := range []BackupKind{Full, Diff, Incr} {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: backup kind %q is not full, diff or incr", ErrInvalid, s)
}

// Backup is one backup in the repository, as pgBackRest's info reports
// it.
type Backup struct {
	// Label is pgBackRest's name of the backup, e.g. "20240102-030405F" or
	// "20240102-030405F_20240102-040506I".
	Label string
	Kind  BackupKind
	// Prior is the label of the backup this one is a delta against; empty
	// for a full backup.
	Prior string
	// Start and Stop are when the backup began and ended. pgBackRest
	// records them in whole seconds, truncated.
	Start, Stop time.Time
	// DatabaseSize is the cluster's size when it was backed up.
	DatabaseSize int64
	// BackupSize is what this backup copied: the changed files for a diff
	// or incr backup.
	BackupSize int64
	// RepositorySize is what this backup stored in the repository, after
	// compression.
	RepositorySize int64
	// WALStart and WALStop are the first and last WAL segments the backup
	// needs to be consistent.
	WALStart, WALStop string
	// LSNStart and LSNStop are the WAL positions where it began and ended.
	LSNStart, LSNStop string
	// ChecksumErrors is pgBackRest's "error" flag: it found page checksum
	// errors while copying. The backup is complete, but so is the damage.
	ChecksumErrors bool
}

// earliestTarget is the first instant a time target may name with this
// backup as its base. Stop is truncated to the second, so the backup may
// have ended anywhere within that second: a target inside it could lie
// before the backup's consistency point, which PostgreSQL refuses.
func (b Backup) earliestTarget() time.Time { return b.Stop.Add(time.Second) }

// Info is the repository's view of the stanza.
type Info struct {
	// Backups are oldest first.
	Backups []Backup
	// WALMin and WALMax are the oldest and newest archived WAL segments of
	// the current database; empty when none is archived.
	WALMin, WALMax string
	// RestorableUntil is the newest point in time known restorable: the
	// newest backup's stop time. pgBackRest's info reports archived WAL by
	// segment name only, without times, so WAL archived after the last
	// backup (up to WALMax) usually makes later targets restorable too,
	// but info cannot say how much later. Zero without backups.
	RestorableUntil time.Time
	// RestorableFrom is the earliest time target Restore accepts: one
	// second after the oldest backup's stop time. Zero without backups.
	RestorableFrom time.Time
}

// RestoreTarget is what Restore recovers to. Exactly one of Latest, Label
// and Time is set.
type RestoreTarget struct {
	// Latest restores the newest backup and replays all archived WAL.
	Latest bool
	// Label restores that backup and replays all archived WAL after it,
	// or with Immediate only up to the backup's consistency point: the
	// database as that backup left it.
	Label     string
	Immediate bool
	// Time restores the newest backup that ended before Time and replays
	// WAL up to Time, then promotes.
	Time time.Time
	// Delta lets Restore write into a non-empty data directory (a stopped
	// copy of the same cluster): pgBackRest then checksums what is there
	// and rewrites only what differs. Without it the directory must be
	// missing or empty, so that a wrong path never overwrites a cluster.
	Delta bool
}

// String describes the target for logs and errors.
func (t RestoreTarget) String() string {
	switch {
	case t.Label != "":
		return "backup " + t.Label
	case !t.Time.IsZero():
		return "time " + t.Time.UTC().Format(time.RFC3339Nano)
	}
	return "latest"
}

// validate checks that exactly one target is set.
func (t RestoreTarget) validate() error {
	n := 0
	for _, set := range []bool{t.Latest, t.Label != "", !t.Time.IsZero()} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%w: a restore target sets exactly one of latest, label and time (%d set)", ErrInvalid, n)
	}
	return nil
}

// VerifyResult is the outcome of one verification.
type VerifyResult struct {
	// Label is the backup verified.
	Label string
	// OK is true when the backup restored, started and answered a query.
	OK bool
	// Reason says what failed when OK is false.
	Reason string
	// LogTail is the end of the restored server's log, or of pgBackRest's
	// output when the restore failed; it is what explains a failure.
	LogTail string
	// Duration is how long the verification took.
	Duration time.Duration
}
