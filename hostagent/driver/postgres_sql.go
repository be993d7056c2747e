package driver

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgConnectTimeout bounds one connection attempt.
const pgConnectTimeout = 10 * time.Second

// connect opens a SQL connection to the local server as User over its
// unix socket. It takes the socket directory and port from postmaster.pid
// when there is one, so an adopted server started with other settings is
// still reached.
func (p *Postgres) connect(ctx context.Context) (*pgx.Conn, error) {
	host, port := p.localAddr()
	return p.connectTo(ctx, host, port)
}

// localAddr is the socket directory and port of the local server, from
// postmaster.pid when there is one.
func (p *Postgres) localAddr() (socketDir string, port int) {
	socketDir, port = p.cfg.SocketDir, p.cfg.Port
	if lines := p.postmasterLines(); len(lines) > 4 {
		if n, err := strconv.Atoi(strings.TrimSpace(lines[3])); err == nil {
			port = n
		}
		if dir := strings.TrimSpace(lines[4]); dir != "" {
			socketDir = dir
		}
	}
	return socketDir, port
}

// connectTo opens a SQL connection as User to host (a socket directory or
// a validated network host) and port, database postgres. Passwords, if
// any, come from the agent's PGPASSFILE or ~/.pgpass; settings spelt out
// here win over PG* environment variables.
func (p *Postgres) connectTo(ctx context.Context, host string, port int) (*pgx.Conn, error) {
	connString := fmt.Sprintf("host=%s port=%d user=%s dbname=postgres application_name=drplane connect_timeout=%d",
		pgQuote(host), port, pgQuote(p.cfg.User), int(pgConnectTimeout.Seconds()))
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("connection config: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s port %d: %w", host, port, err)
	}
	return conn, nil
}

// pgQuote quotes a connection string value: in single quotes, with
// backslash and quote escaped by a backslash.
func pgQuote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// LocalAddr is the unix socket directory and port the local server
// listens on: postmaster.pid's when it runs, else the configured ones.
func (p *Postgres) LocalAddr() (socketDir string, port int) { return p.localAddr() }

// WithConn runs f on a fresh superuser connection to the local server,
// for what other packages set over SQL (the backup engine's archiving).
func (p *Postgres) WithConn(ctx context.Context, f func(*pgx.Conn) error) error {
	return p.withConn(ctx, f)
}

// withConn runs f on a fresh connection to the local server.
func (p *Postgres) withConn(ctx context.Context, f func(*pgx.Conn) error) error {
	conn, err := p.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(conn)
}

// queryStatus reads the role and replication position of a running
// server.
func (p *Postgres) queryStatus(ctx context.Context) (Status, error) {
	var st Status
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		var inRecovery bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			return fmt.Errorf("query recovery state: %w", err)
		}
		var err error
		if inRecovery {
			st, err = pgStandbyStatus(ctx, conn)
			if err == nil {
				st.Replication.LastReceivedAt = p.lastHeard(st.Replication.LastReceivedAt)
			}
		} else {
			st, err = pgPrimaryStatus(ctx, conn)
			p.forgetHeard()
		}
		return err
	})
	return st, err
}

// lastHeard records when this standby last heard from its primary, as
// pg_stat_wal_receiver says now (zero when it cannot say), and returns the
// latest such time it knows.
func (p *Postgres) lastHeard(now time.Time) time.Time {
	p.heardMu.Lock()
	defer p.heardMu.Unlock()
	if now.After(p.heard) {
		p.heard = now
	}
	return p.heard
}

// forgetHeard clears the time: a primary hears from no one, and once
// demoted it follows a new upstream.
func (p *Postgres) forgetHeard() {
	p.heardMu.Lock()
	defer p.heardMu.Unlock()
	p.heard = time.Time{}
}

// pgPrimaryStatus reports a primary at its current WAL position, with
// the synchronous_standby_names in effect (the connection is fresh, so
// it has the configuration the postmaster last read) and its standbys.
func pgPrimaryStatus(ctx context.Context, conn *pgx.Conn) (Status, error) {
	r := &Replication{}
	err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text, current_setting('synchronous_standby_names')").
		Scan(&r.Position, &r.SynchronousStandbyNames)
	if err != nil {
		return Status{}, fmt.Errorf("query wal position: %w", err)
	}
	if r.Standbys, err = pgStandbys(ctx, conn); err != nil {
		return Status{}, err
	}
	return Status{Role: RolePrimary, Message: "accepting writes", Replication: r}, nil
}

// pgStandbyQuery reads a standby's replay and receive positions, what
// replay lags behind receive, where it streams from and what tells the
// name it streams as. Receive is NULL until the first byte streamed, the
// replay timestamp until the first transaction replayed since startup,
// the WAL receiver's columns while none runs.
const pgStandbyQuery = `
SELECT pg_last_wal_replay_lsn()::text,
       pg_last_wal_receive_lsn()::text,
       pg_last_xact_replay_timestamp(),
       GREATEST(COALESCE(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0), 0)::bigint,
       (SELECT status || ' from ' || sender_host || ':' || sender_port FROM pg_stat_wal_receiver),
       (SELECT last_msg_receipt_time FROM pg_stat_wal_receiver),
       (SELECT conninfo FROM pg_stat_wal_receiver),
       current_setting('primary_conninfo'),
       current_setting('cluster_name')`

// pgStandbyStatus reports a standby with its positions and lag.
func pgStandbyStatus(ctx context.Context, conn *pgx.Conn) (Status, error) {
	var replay, receive, receiver, receiverConnInfo *string
	var replayAt, heardAt *time.Time
	var lagBytes int64
	var primaryConnInfo, clusterName string
	err := conn.QueryRow(ctx, pgStandbyQuery).Scan(&replay, &receive, &replayAt, &lagBytes, &receiver, &heardAt,
		&receiverConnInfo, &primaryConnInfo, &clusterName)
	if err != nil {
		return Status{}, fmt.Errorf("query replication state: %w", err)
	}
	r := &Replication{Position: pgDeref(replay), ReceivePosition: pgDeref(receive), LagBytes: uint64(lagBytes),
		ApplicationName: pgStandbyApplicationName(pgDeref(receiverConnInfo), primaryConnInfo, clusterName)}
	if heardAt != nil {
		r.LastReceivedAt = *heardAt
	}
	if replayAt != nil {
		r.LastReplayAt = *replayAt
		// Caught up means no lag however long ago the last commit was.
		if lagBytes > 0 {
			r.Lag = max(time.Since(*replayAt), 0)
		}
	}
	msg := "in recovery, not streaming"
	if receiver != nil {
		msg = "wal receiver " + *receiver
	}
	return Status{Role: RoleStandby, Message: msg, Replication: r}, nil
}

// pgDeref returns *s, or "" for NULL.
func pgDeref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// inRecovery reports whether the local server is a standby.
func (p *Postgres) inRecovery(ctx context.Context) (bool, error) {
	var in bool
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&in)
	})
	if err != nil {
		return false, fmt.Errorf("query recovery state: %w", err)
	}
	return in, nil
}

// currentLSN returns a primary's current WAL position.
func (p *Postgres) currentLSN(ctx context.Context) (string, error) {
	var lsn string
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
	})
	if err != nil {
		return "", fmt.Errorf("query wal position: %w", err)
	}
	return lsn, nil
}

// writableLSN checks that the server takes writes and returns the WAL
// position where it did. Assigning a transaction id is a write that
// touches no user data: a standby refuses it, and its commit goes to WAL.
// The commit waits for no synchronous standby: a primary promoted in
// strict mode has none streaming yet, and the check is about this server.
func (p *Postgres) writableLSN(ctx context.Context) (string, error) {
	var lsn string
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, "SET synchronous_commit = local"); err != nil {
			return err
		}
		var xid string
		return conn.QueryRow(ctx, "SELECT pg_current_xact_id()::text, pg_current_wal_lsn()::text").Scan(&xid, &lsn)
	})
	return lsn, err
}

// checkpoint runs CHECKPOINT on the local server.
func (p *Postgres) checkpoint(ctx context.Context) error {
	return p.withConn(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "CHECKPOINT")
		return err
	})
}

// checkpointUpstream runs CHECKPOINT on the upstream so that its control
// file names its new timeline, which pg_rewind reads to find where the
// histories forked (PostgreSQL documents this for a just-promoted source).
func (p *Postgres) checkpointUpstream(ctx context.Context, up Upstream) error {
	conn, err := p.connectTo(ctx, up.Host, up.Port)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CHECKPOINT")
	return err
}

// streamingFrom reports whether the local server is a standby whose WAL
// receiver streams from up.
func (p *Postgres) streamingFrom(ctx context.Context, up Upstream) (bool, error) {
	var n int
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_wal_receiver
			WHERE pg_is_in_recovery() AND status = 'streaming' AND sender_host = $1 AND sender_port = $2`,
			up.Host, up.Port).Scan(&n)
	})
	if err != nil {
		return false, fmt.Errorf("query wal receiver: %w", err)
	}
	return n > 0, nil
}

// pgHostPort renders an upstream for progress lines.
func pgHostPort(up Upstream) string {
	return net.JoinHostPort(up.Host, strconv.Itoa(up.Port))
}
