package backup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// archiveSetting is one setting ConfigureArchiving reads: its value in
// effect and whether a changed value waits for a restart.
type archiveSetting struct {
	setting        string
	pendingRestart bool
}

// archiveSettings are those settings by name.
type archiveSettings map[string]archiveSetting

// ConfigureArchiving makes the running primary that conn is connected to
// (as a superuser) archive its WAL with command, an engine's
// ArchiveCommand: ALTER SYSTEM sets archive_mode = on and archive_command,
// then the configuration is reloaded. archive_command takes effect with
// the reload; archive_mode only when the server starts, so it reports
// whether the server must be restarted before archiving (and Check)
// works. A setting that already has its value is left alone, and
// archive_mode = always (a standby archiving too) is kept.
func ConfigureArchiving(ctx context.Context, conn *pgx.Conn, command string) (restartNeeded bool, err error) {
	restartNeeded, err = configureArchiving(ctx, conn, command)
	if err != nil {
		return false, fmt.Errorf("configure WAL archiving: %w", err)
	}
	return restartNeeded, nil
}

func configureArchiving(ctx context.Context, conn *pgx.Conn, command string) (bool, error) {
	cur, err := readArchiveSettings(ctx, conn)
	if err != nil {
		return false, err
	}
	// A server with archive_mode on and wal_level minimal refuses to
	// start, and an archive library would be used instead of the command.
	if cur["wal_level"].setting == "minimal" {
		return false, fmt.Errorf("%w: wal_level is minimal; archiving needs replica or logical", ErrInvalid)
	}
	if lib := cur["archive_library"].setting; lib != "" {
		return false, fmt.Errorf("%w: archive_library is %q, which PostgreSQL would use instead of archive_command", ErrInvalid, lib)
	}
	var stmts []string
	if cur["archive_command"].setting != command {
		stmts = append(stmts, "ALTER SYSTEM SET archive_command = "+sqlLiteral(command))
	}
	if mode := cur["archive_mode"].setting; mode != "on" && mode != "always" {
		stmts = append(stmts, "ALTER SYSTEM SET archive_mode = 'on'")
	}
	if len(stmts) == 0 {
		// Nothing to change: a reload would only be noise in the log.
		return cur["archive_mode"].setting == "off" || cur["archive_mode"].pendingRestart, nil
	}
	for _, s := range append(stmts, "SELECT pg_reload_conf()") {
		if _, err := conn.Exec(ctx, s); err != nil {
			return false, fmt.Errorf("%s: %w", s, err)
		}
	}
	return awaitReload(ctx, conn, command)
}

// awaitReload waits until this backend has applied the reload, which
// PostgreSQL signals asynchronously: until archive_command reads command.
// Only then does pending_restart say whether archive_mode waits for a
// restart. While archive_mode is off in the running server, a restart is
// needed whatever the reload did, and PostgreSQL 15 shows archive_command
// as "(disabled)", so there is nothing to wait for.
func awaitReload(ctx context.Context, conn *pgx.Conn, command string) (bool, error) {
	for {
		cur, err := readArchiveSettings(ctx, conn)
		if err != nil {
			return false, err
		}
		mode := cur["archive_mode"]
		switch {
		case mode.setting == "off":
			return true, nil
		case cur["archive_command"].setting == command:
			return mode.pendingRestart, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("wait for the configuration reload: %w", ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// readArchiveSettings reads the settings archiving depends on.
func readArchiveSettings(ctx context.Context, conn *pgx.Conn) (archiveSettings, error) {
	rows, err := conn.Query(ctx, `SELECT name, setting, pending_restart FROM pg_settings
		WHERE name IN ('archive_mode', 'archive_command', 'archive_library', 'wal_level')`)
	if err != nil {
		return nil, fmt.Errorf("read archive settings: %w", err)
	}
	defer rows.Close()
	out := archiveSettings{}
	for rows.Next() {
		var name, setting string
		var pending bool
		if err := rows.Scan(&name, &setting, &pending); err != nil {
			return nil, fmt.Errorf("read archive settings: %w", err)
		}
		out[name] = archiveSetting{setting, pending}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read archive settings: %w", err)
	}
	return out, nil
}

// sqlLiteral quotes s as a standard SQL string literal. ALTER SYSTEM
// takes no parameters.
func sqlLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
