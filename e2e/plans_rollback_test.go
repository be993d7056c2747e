package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestPlans_SwitchoverAgentKilledAtStop_RollsBack is the failed switchover
// of the failure-path sweep, with real processes: db-1's agent is
// SIGKILLed while it stops the primary PostgreSQL, and comes back only
// once the switchover gave its step up. The switchover fails before dr is
// activated and rolls back: PostgreSQL on db-1, then the engine and the
// gateway on app-1 run again, in that order, and primary takes writes;
// the execution's message says so, and status says production is up.
func TestPlans_SwitchoverAgentKilledAtStop_RollsBack(t *testing.T) {
	hold := holdingStopBinDir(t)
	ps := newPlanSitesWith(t, func(host string, svc *config.ServiceConfig) {
		if host == "db-1" {
			svc.BinDir = hold.dir
		}
	})
	pair := ps.pair
	pair.Exec(t, pair.Primary, "INSERT INTO trades VALUES (1)")

	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, err = ps.cli(t, "switchover", "--to", "dr", "--yes")
		done <- err
	}()
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		_, err := os.Stat(hold.called)
		return err == nil, fmt.Errorf("pg_ctl stop not called yet: %v", err)
	})
	require.NoError(t, ps.db1.Kill())
	hold.release(t) // the held pg_ctl exits with its agent; later stops pass

	// The agent stays away until the switchover gave its step up.
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		ex := ps.lastExecution(t)
		st := stepJSONOf(t, ex, "stop:postgres@db-1")
		return st.State == "failed", fmt.Errorf("stop:postgres@db-1 is %s", st.State)
	})
	require.NoError(t, ps.db1.Start())

	select {
	case err := <-done:
		require.Error(t, err, "the switchover fails:\n%s", out)
	case <-time.After(3 * time.Minute):
		t.Fatal("the switchover did not end")
	}
	t.Logf("switchover:\n%s", out)
	ex := ps.lastExecution(t)
	require.Equal(t, "failed", ex.Result, ex.Message)
	require.Contains(t, ex.Message, "step stop:postgres@db-1 failed on db-1")
	require.Contains(t, ex.Message, "rolled back: primary was not activated and serves as before; started again: postgres on db-1, engine on app-1, gateway on app-1")
	require.Contains(t, out, "rolled back", "the operator's own output says it")
	pg, engine, gateway := stepJSONOf(t, ex, "rollback:postgres@db-1"), stepJSONOf(t, ex, "rollback:engine@app-1"), stepJSONOf(t, ex, "rollback:gateway@app-1")
	for _, st := range []cli.StepJSON{pg, engine, gateway} {
		require.Equal(t, "succeeded", st.State, "%s: %s", st.ID, st.Message)
	}
	require.False(t, engine.Started.Before(*pg.Ended), "the engine starts once its database runs")
	require.False(t, gateway.Started.Before(*engine.Ended), "the gateway once the engine runs")
	require.Equal(t, "skipped", stepJSONOf(t, ex, "activate:dr").State)

	primary := ps.node(pair.Primary)
	pair.Exec(t, primary, "INSERT INTO trades VALUES (2)")
	require.Equal(t, "true", pair.QueryString(t, pair.Standby, "SELECT pg_is_in_recovery()::text"), "dr was never promoted")
	waitForAgent(t, ps.c, "app-1", 30*time.Second, hasRole("engine", "primary", false))
	waitForAgent(t, ps.c, "app-1", 30*time.Second, hasRole("gateway", "primary", false))
	for _, svc := range []string{"engine", "gateway"} {
		pid, err := ps.app1.ServicePID(svc)
		require.NoError(t, err)
		require.NotZero(t, pid, svc)
		require.NoError(t, syscall.Kill(pid, 0), "%s runs on app-1", svc)
	}
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		status, err := ps.cli(t, "status")
		if err != nil {
			return false, err
		}
		return strings.Contains(status, "Production:   up"), fmt.Errorf("status:\n%s", status)
	})
}

// stopHold is a PostgreSQL bin directory whose pg_ctl holds a stop before
// it stops anything: it touches called, then waits until release exists
// (then stops) or its agent is gone (then exits 1, nothing stopped).
type stopHold struct {
	dir, called, releaseFile string
}

func holdingStopBinDir(t *testing.T) *stopHold {
	t.Helper()
	h := &stopHold{dir: filepath.Join(t.TempDir(), "bin")}
	require.NoError(t, os.Mkdir(h.dir, 0o755))
	traversable(t, h.dir)
	h.called, h.releaseFile = filepath.Join(h.dir, "stop-called"), filepath.Join(h.dir, "release")
	t.Cleanup(func() { h.release(t) })
	entries, err := os.ReadDir(pgtest.BinDir)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() != "pg_ctl" {
			require.NoError(t, os.Symlink(filepath.Join(pgtest.BinDir, e.Name()), filepath.Join(h.dir, e.Name())))
		}
	}
	// The directory is the postgres user's to write the marker in.
	require.NoError(t, os.Chmod(h.dir, 0o777))
	script := fmt.Sprintf(`#!/bin/sh
if [ "$1" = stop ]; then
	touch %[1]q
	while [ ! -e %[2]q ]; do
		[ -d /proc/$PPID ] || exit 1
		sleep 0.1
	done
fi
exec %[3]q "$@"
`, h.called, h.releaseFile, filepath.Join(pgtest.BinDir, "pg_ctl"))
	require.NoError(t, os.WriteFile(filepath.Join(h.dir, "pg_ctl"), []byte(script), 0o755))
	return h
}

func (h *stopHold) release(t *testing.T) {
	t.Helper()
	require.NoError(t, os.WriteFile(h.releaseFile, nil, 0o644))
}
