package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultQuery is the SQL check's query when none is given.
const defaultQuery = "SELECT 1"

// sqlCloseTimeout bounds closing a check's connection.
const sqlCloseTimeout = time.Second

// sqlCheck is healthy when a PostgreSQL query returns a row.
type sqlCheck struct {
	connString string
	query      string
	timeout    time.Duration
	desc       string
}

var _ Check = (*sqlCheck)(nil)

// NewSQL returns a check that connects with connString (a pgx connection
// string: URL or key=value), runs query ("SELECT 1" when empty) and is
// healthy when it returns at least one row without error. Each check
// opens and closes its own connection.
func NewSQL(connString, query string, timeout time.Duration) Check {
	if query == "" {
		query = defaultQuery
	}
	return &sqlCheck{connString: connString, query: query, timeout: timeout, desc: sqlDescription(connString, query)}
}

// sqlDescription names the check without the connection string, which
// may hold a password.
func sqlDescription(connString, query string) string {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return "sql " + query
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	return fmt.Sprintf("sql %s on %s/%s", query, addr, cfg.Database)
}

// Check connects and runs the query.
func (c *sqlCheck) Check(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx, c.timeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(c.connString)
	if err != nil {
		return fmt.Errorf("parse connection string: %w", err)
	}
	// The simple protocol needs one round trip and no prepared statement,
	// and works through poolers such as pgbouncer.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", c.desc, err)
	}
	defer closeConn(ctx, conn)
	if err := runQuery(ctx, conn, c.query); err != nil {
		return fmt.Errorf("%s: %w", c.desc, err)
	}
	return nil
}

// closeConn closes conn even when ctx has ended, bounding the goodbye
// to the server by sqlCloseTimeout.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sqlCloseTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

// runQuery runs query and requires a row.
func runQuery(ctx context.Context, conn *pgx.Conn, query string) error {
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return errors.New("query returned no rows")
	}
	rows.Close()
	return rows.Err()
}

func (c *sqlCheck) String() string { return c.desc }
