package driver_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestPostgres_FenceTargets checks what the lease guard is given for a
// PostgreSQL service: the postmaster with SIGQUIT, which stops it at once
// (immediate shutdown); nothing once it is gone, nor for a stale
// postmaster.pid whose pid now belongs to another process.
func TestPostgres_FenceTargets(t *testing.T) {
	t.Parallel()
	pair := pgtest.NewPair(t)
	ctx := testContext(t)
	d := newPostgresDriver(t, pair.Primary)
	requireRole(ctx, t, d, driver.RolePrimary)

	targets := d.FenceTargets()
	require.Len(t, targets, 1)
	pid := pair.Primary.PostmasterPID()
	require.Equal(t, pid, targets[0].Pid)
	require.Equal(t, syscall.SIGQUIT, targets[0].Signal)
	require.False(t, targets[0].Group, "the postmaster stops its own children")
	require.False(t, targets[0].Primary, "a database's role needs a query")

	// The guard's signal, as it sends it.
	ticks, alive := driver.ProcStartTicks(pid)
	require.True(t, alive)
	require.Equal(t, targets[0].StartTicks, ticks)
	require.NoError(t, syscall.Kill(pid, targets[0].Signal))
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		_, alive := driver.ProcStartTicks(pid)
		return !alive, fmt.Errorf("postmaster %d still runs after SIGQUIT", pid)
	})
	requireRole(ctx, t, d, driver.RoleStopped)
	require.Empty(t, d.FenceTargets())

	// A postmaster.pid left by a crash, naming a pid since given to
	// another process (this test), is not a target.
	// It is removed before the pair's cleanup, whose pg_ctl stop would
	// signal that pid.
	path := filepath.Join(pair.Primary.DataDir, "postmaster.pid")
	t.Cleanup(func() { _ = os.Remove(path) })
	stale := fmt.Sprintf("%d\n%s\n%d\n%d\n", os.Getpid(), pair.Primary.DataDir, time.Now().Add(-time.Hour).Unix(), pair.Primary.Port)
	require.NoError(t, os.WriteFile(path, []byte(stale), 0o600))
	require.Empty(t, d.FenceTargets())
	require.NoError(t, os.Remove(path))
}
