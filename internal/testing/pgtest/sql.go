package pgtest

import (
	"context"
	"fmt"
	"testing"

	"github.com/drplane/drplane/internal/testutil"
	"github.com/jackc/pgx/v5"
)

// Exec runs sql on n and fails the test on error.
func (p *Pair) Exec(t testing.TB, n *Node, sql string, args ...any) {
	t.Helper()
	err := withConn(n, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, sql, args...)
		return err
	})
	if err != nil {
		t.Fatalf("pgtest: exec on %s: %q: %v", n.Name, sql, err)
	}
}

// QueryString runs a query returning one value on n and returns it as
// text ("" for NULL); cast in SQL (::text) what pgx would not scan into a
// string.
func (p *Pair) QueryString(t testing.TB, n *Node, sql string, args ...any) string {
	t.Helper()
	s, err := queryString(n, sql, args...)
	if err != nil {
		t.Fatalf("pgtest: query on %s: %v", n.Name, err)
	}
	return s
}

// WaitFor polls a one-value query on n until it returns want, and fails
// the test with the last value or error after a minute.
func (p *Pair) WaitFor(t testing.TB, n *Node, want, sql string, args ...any) {
	t.Helper()
	testutil.WaitForResult(t, opTimeout, func() (bool, error) {
		got, err := queryString(n, sql, args...)
		if err != nil {
			return false, err
		}
		return got == want, fmt.Errorf("%s: %q returns %q, want %q", n.Name, sql, got, want)
	})
}

// WaitStreaming waits until n is a standby whose WAL receiver streams.
func (p *Pair) WaitStreaming(t testing.TB, n *Node) {
	t.Helper()
	p.WaitFor(t, n, "true", `SELECT (pg_is_in_recovery() AND
		EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'))::text`)
}

// queryString runs a one-value query on n and returns it as text.
func queryString(n *Node, sql string, args ...any) (string, error) {
	var s *string
	err := withConn(n, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, sql, args...).Scan(&s)
	})
	if err != nil || s == nil {
		return "", err
	}
	return *s, nil
}

// withConn runs f on a fresh connection to n.
func withConn(n *Node, f func(context.Context, *pgx.Conn) error) error {
	ctx, cancel := opContext()
	defer cancel()
	conn, err := pgx.Connect(ctx, n.ConnString())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return f(ctx, conn)
}
