package main

import (
	"context"
	"fmt"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/devenv/sampleapp"
)

// backupsReadyWait bounds the wait for the primary's first backup.
const backupsReadyWait = 2 * time.Minute

// restore plays a database corruption: a bad batch deletes every other
// row of the sample table on the primary, and a restore plan brings the
// database back to the moment before. The rows are counted on the
// database itself, before and after.
func (d *demo) restore(ctx context.Context) error {
	if !d.info.Postgres {
		d.note("no PostgreSQL in this deployment: no database to restore")
		return nil
	}
	d.say("Database corruption, restored from backups (pgBackRest, point-in-time recovery)")
	ok, err := d.waitBackups(ctx)
	if err != nil || !ok {
		return err
	}
	d.say("The pre-market backup, on the primary: incremental (full when the repository has none yet)")
	if err := d.sh(ctx, "backup", "create", "--kind", "incr"); err != nil {
		return err
	}
	// pgBackRest records a backup's end to the second: a point in time
	// is restorable from the second after (drplane refuses earlier ones).
	if err := sleep(ctx, 1500*time.Millisecond); err != nil {
		return err
	}
	conn, host, err := d.primaryDB(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var rows, maxID int64
	if err := conn.QueryRow(ctx, "SELECT count(*), coalesce(max(id), 0) FROM "+sampleapp.Table).Scan(&rows, &maxID); err != nil {
		return fmt.Errorf("count the rows on %s: %w", host, err)
	}
	target := time.Now()
	d.note("%d rows on %s, up to id %d, at %s: the point to restore to", rows, host, maxID, target.UTC().Format("15:04:05.000"))
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	tag, err := conn.Exec(ctx, "DELETE FROM "+sampleapp.Table+" WHERE id % 2 = 0")
	if err != nil {
		return fmt.Errorf("corrupt the table: %w", err)
	}
	d.say("A bad batch job deletes every other row: %d rows gone on %s", tag.RowsAffected(), host)
	d.note("the restore plan stops the application, takes a restoration point, stops the database and its standby,")
	d.note("restores the database to the time before the batch, starts the application again and re-clones the standby")
	if err := d.sh(ctx, "restore", "--service", "postgres", "--to-time", target.UTC().Format("2006-01-02 15:04:05.999999-07"), "--yes"); err != nil {
		return err
	}
	back, host, err := d.primaryDB(ctx)
	if err != nil {
		return err
	}
	defer back.Close(context.WithoutCancel(ctx))
	var restored int64
	if err := back.QueryRow(ctx, "SELECT count(*) FROM "+sampleapp.Table+" WHERE id <= $1", maxID).Scan(&restored); err != nil {
		return fmt.Errorf("count the restored rows on %s: %w", host, err)
	}
	d.note("rows up to id %d on %s after the restore: %d of the %d there were before the batch", maxID, host, restored, rows)
	if restored != rows {
		return fmt.Errorf("the restore brought back %d of %d rows", restored, rows)
	}
	d.showRows(ctx, "after the restore")
	return nil
}

// waitBackups waits until the primary's agent archives and takes the
// scheduled backups. Without pgBackRest (no backup block) it says so and
// returns false.
func (d *demo) waitBackups(ctx context.Context) (bool, error) {
	deadline := time.Now().Add(backupsReadyWait)
	for {
		var st cli.StatusJSON
		err := d.cliJSON(ctx, &st, "status")
		if err == nil && len(st.Backups) == 0 {
			d.note("no backup block: pgbackrest is not installed (scripts/prerequisites demo installs it); skipped")
			return false, nil
		}
		for _, b := range st.Backups {
			if b.Archiving && b.Scheduled {
				d.note("%s archives into %s and takes the scheduled backups (%d in the repository)", b.HostID, b.Repository, b.BackupCount)
				return true, nil
			}
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("no host archives within %s: %v %+v", backupsReadyWait, err, st.Backups)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return false, err
		}
	}
}
