package pgtest

import (
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNewPair_Replicates checks the pair a test gets: a primary, a
// standby in recovery, and rows that reach the standby.
func TestNewPair_Replicates(t *testing.T) {
	t.Parallel()
	p := NewPair(t)

	require.Equal(t, "false", p.QueryString(t, p.Primary, "SELECT pg_is_in_recovery()::text"))
	require.Equal(t, "true", p.QueryString(t, p.Standby, "SELECT pg_is_in_recovery()::text"))
	require.NotZero(t, p.Primary.PostmasterPID())
	require.NotEqual(t, p.Primary.Port, p.Standby.Port)

	p.Exec(t, p.Primary, "CREATE TABLE t (id int)")
	p.Exec(t, p.Primary, "INSERT INTO t VALUES ($1)", 42)
	p.WaitFor(t, p.Standby, "42", "SELECT max(id)::text FROM t")

	p.Stop(t, p.Standby)
	require.Zero(t, p.Standby.PostmasterPID())
	// Someone else took the standby's port while it was down: it starts
	// on another one.
	taken, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.Standby.Port))
	require.NoError(t, err)
	defer taken.Close()
	old := p.Standby.Port
	p.Start(t, p.Standby)
	require.NotEqual(t, old, p.Standby.Port)
	p.WaitStreaming(t, p.Standby)
	require.Equal(t, "42", p.QueryString(t, p.Standby, "SELECT max(id)::text FROM t"))
}
