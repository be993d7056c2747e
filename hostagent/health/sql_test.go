package health

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// SQL against a real server is tested with the postgres driver; here
// only failures that need none.
func TestSQL_Check(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	cases := []struct {
		name     string
		conn     string
		query    string
		wantDesc string
		wantErr  string
	}{
		{
			name:     "unreachable",
			conn:     "postgres://drplane:s3cret@" + addr + "/app?sslmode=disable",
			wantDesc: "sql SELECT 1 on " + addr + "/app",
			wantErr:  "sql SELECT 1 on " + addr + "/app",
		},
		{
			name:     "keyword form and query",
			conn:     "host=127.0.0.1 port=" + portOf(t, addr) + " dbname=app user=drplane password=s3cret sslmode=disable",
			query:    "SELECT pg_is_in_recovery()",
			wantDesc: "sql SELECT pg_is_in_recovery() on " + addr + "/app",
			wantErr:  "connect",
		},
		{
			name:     "bad connection string",
			conn:     "postgres://drplane:s3cret@[::1/app",
			wantDesc: "sql SELECT 1",
			wantErr:  "parse connection string",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := NewSQL(tc.conn, tc.query, 2*time.Second)
			require.Equal(t, tc.wantDesc, c.String())
			err := c.Check(context.Background())
			require.ErrorContains(t, err, tc.wantErr)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return port
}
