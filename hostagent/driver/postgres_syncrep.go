package driver

import (
	"context"
	"fmt"
	"strings"

	"github.com/drplane/drplane/internal/structs"
	"github.com/jackc/pgx/v5"
)

// Synchronous replication (DESIGN.md section 4, invariant 8): the leader
// decides which standbys a primary waits for, and the primary's agent
// sets synchronous_standby_names to structs.SyncStandbyNames of them.
// The leader compares what a primary reports with what it asked for, so
// the setting is always written, and read back, in that one format.

// SetSyncStandbys sets synchronous_standby_names on the running primary
// with ALTER SYSTEM, reloads the configuration and waits until a new
// session sees the setting; it then returns the current WAL position.
// A setting already in effect is left as it is. Invalid names are
// rejected before anything changes.
func (p *Postgres) SetSyncStandbys(ctx context.Context, names []string, progress Progress) (string, error) {
	want, err := pgSyncStandbyNames(names)
	if err != nil {
		return "", fmt.Errorf("set synchronous standbys of %s: %w", p.cfg.Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lsn, err := p.setSyncStandbysLocked(ctx, want, pgProgress(progress))
	if err != nil {
		return "", fmt.Errorf("set synchronous standbys of %s: %w", p.cfg.Name, err)
	}
	return lsn, nil
}

// setSyncStandbysLocked implements SetSyncStandbys. The caller holds mu.
func (p *Postgres) setSyncStandbysLocked(ctx context.Context, want string, progress Progress) (string, error) {
	standby, err := p.runningInRecovery(ctx)
	if err != nil {
		return "", err
	}
	if standby {
		return "", fmt.Errorf("%w: synchronous_standby_names is set on the primary", ErrPostgresStandby)
	}
	if err := p.applySyncStandbyNames(ctx, want, progress); err != nil {
		return "", err
	}
	if want != "" {
		if err := p.awaitCommitsWait(ctx, progress); err != nil {
			return "", err
		}
	}
	// Read once every commit waits: a commit that did not wait inserted
	// its record before, so a standby that flushed past this position
	// holds every commit acknowledged without waiting, too. The insert
	// position, not the write position: a record inserted but not yet
	// written lies beyond the latter.
	var lsn string
	err = p.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn)
	})
	if err != nil {
		return "", fmt.Errorf("query wal insert position: %w", err)
	}
	progress("synchronous_standby_names = '%s' at %s", want, lsn)
	return lsn, nil
}

// applySyncStandbyNames makes want the synchronous_standby_names of new
// sessions, on a primary or a standby (ALTER SYSTEM works on both), and
// returns once a fresh session sees it. For none it sets an empty
// value, not RESET: a value in postgresql.conf would survive a RESET.
func (p *Postgres) applySyncStandbyNames(ctx context.Context, want string, progress Progress) error {
	current, err := p.syncStandbyNames(ctx)
	if err != nil {
		return err
	}
	if current == want {
		progress("synchronous_standby_names is already '%s'", want)
		return nil
	}
	progress("setting synchronous_standby_names to '%s' (was '%s')", want, current)
	err = p.withConn(ctx, func(conn *pgx.Conn) error {
		// ALTER SYSTEM takes no parameters: the value goes in as a literal.
		if _, err := conn.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = "+pgLiteral(want)); err != nil {
			return err
		}
		_, err := conn.Exec(ctx, "SELECT pg_reload_conf()")
		return err
	})
	if err != nil {
		return fmt.Errorf("set synchronous_standby_names: %w", err)
	}
	// pg_reload_conf only signals the postmaster; new sessions see the
	// setting once it reread the configuration.
	err = pgPoll(ctx, func(ctx context.Context) error {
		got, err := p.syncStandbyNames(ctx)
		if err == nil && got != want {
			err = fmt.Errorf("new sessions still see synchronous_standby_names = '%s'", got)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("wait for synchronous_standby_names: %w", err)
	}
	return nil
}

// awaitCommitsWait returns once commits wait for the standbys named. A
// committing backend decides whether to wait on a flag in shared memory
// that the checkpointer sets when it rereads the configuration, which
// may come after new sessions see the setting. The checkpointer rereads
// it before it runs a requested checkpoint (the postmaster signalled it
// when it reread the configuration itself, which new sessions seeing the
// setting proves), so a CHECKPOINT that returned means the flag is set.
// It costs a checkpoint's I/O, once per change of the standbys waited
// for, which is rare.
func (p *Postgres) awaitCommitsWait(ctx context.Context, progress Progress) error {
	progress("CHECKPOINT, so that the checkpointer has reread the configuration and commits wait")
	if err := p.checkpoint(ctx); err != nil {
		return fmt.Errorf("checkpoint after setting synchronous_standby_names: %w", err)
	}
	return nil
}

// syncStandbyNames reads synchronous_standby_names on a fresh session,
// which has the configuration the postmaster last read.
func (p *Postgres) syncStandbyNames(ctx context.Context) (string, error) {
	var v string
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT current_setting('synchronous_standby_names')").Scan(&v)
	})
	if err != nil {
		return "", fmt.Errorf("query synchronous_standby_names: %w", err)
	}
	return v, nil
}

// pgSyncStandbyNames checks names as ParseSyncStandbys does and returns
// the synchronous_standby_names that waits for them. The driver checks
// them itself because it builds SQL of them.
func pgSyncStandbyNames(names []string) (string, error) {
	if len(names) == 1 && names[0] == structs.SyncAnyStandby {
		return structs.SyncStandbyNames(names), nil
	}
	for _, n := range names {
		if err := structs.ValidApplicationName(n); err != nil {
			return "", err
		}
	}
	return structs.SyncStandbyNames(names), nil
}

// pgLiteral is v as an SQL string literal. The escape string syntax
// means the same whatever standard_conforming_strings is.
func pgLiteral(v string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// pgStandbysQuery lists a primary's WAL senders, NULL-safe: a sender
// that has not started streaming has no state or positions yet, and one
// over a unix socket no address.
const pgStandbysQuery = `
SELECT COALESCE(application_name, ''), COALESCE(host(client_addr), ''), COALESCE(state, ''),
       COALESCE(sync_state, ''), COALESCE(flush_lsn::text, ''), COALESCE(replay_lsn::text, '')
FROM pg_stat_replication ORDER BY application_name, pid`

// pgStandbys reads the standbys streaming from a primary.
func pgStandbys(ctx context.Context, conn *pgx.Conn) ([]StandbyReplication, error) {
	rows, err := conn.Query(ctx, pgStandbysQuery)
	if err != nil {
		return nil, fmt.Errorf("query standbys: %w", err)
	}
	standbys, err := pgx.CollectRows(rows, pgx.RowToStructByPos[StandbyReplication])
	if err != nil {
		return nil, fmt.Errorf("query standbys: %w", err)
	}
	return standbys, nil
}

// pgWalReceiverFallbackName is the application name PostgreSQL's WAL
// receiver falls back to without cluster_name.
const pgWalReceiverFallbackName = "walreceiver"

// pgStandbyApplicationName is the name a standby streams as, chosen the
// way its WAL receiver chooses it: application_name from the connection
// string, else fallback_application_name, which the receiver sets to
// cluster_name or "walreceiver". receiverConnInfo is what
// pg_stat_wal_receiver shows while it streams (libpq's view, defaults
// filled in), primaryConnInfo the setting, read when nothing streams.
func pgStandbyApplicationName(receiverConnInfo, primaryConnInfo, clusterName string) string {
	conninfo := receiverConnInfo
	if conninfo == "" {
		conninfo = primaryConnInfo
	}
	kv := pgParseConnInfo(conninfo)
	for _, key := range []string{"application_name", "fallback_application_name"} {
		if v := kv[key]; v != "" {
			return v
		}
	}
	if clusterName != "" {
		return clusterName
	}
	return pgWalReceiverFallbackName
}
