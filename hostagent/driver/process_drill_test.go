package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestProcess_Drill runs a drill copy beside the running service: its
// own command and merged env, pid file, log and process group; a fresh
// driver (an agent restart) adopts it from its pid file and stops it;
// the service runs on throughout, and a second stop finds nothing.
func TestProcess_Drill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newTestProcess(t, ProcessConfig{
		Command: []string{"sleep", "1000"},
		Env:     map[string]string{"MODE": "live", "KEEP": "kept"},
	})
	require.NoError(t, p.Start(ctx, procNoProgress))
	prodPid := procPid(p)

	d := Drill{ID: "d1", Dir: filepath.Join(t.TempDir(), "drill", "d1", "app"),
		Command: []string{"sh", "-c", `echo "$MODE $KEEP"; exec sleep 1000`}, Env: map[string]string{"MODE": "drill"}}
	t.Cleanup(func() {
		_, err := p.StopDrill(context.Background(), d, procNoProgress)
		require.NoError(t, err)
	})
	require.NoError(t, p.StartDrill(ctx, d, procNoProgress))
	waitFileContains(t, filepath.Join(d.Dir, processDrillLog), "drill kept\n")
	copyPid, _, err := readPidFile(filepath.Join(d.Dir, pidFileName))
	require.NoError(t, err)
	require.NotEqual(t, prodPid, copyPid)
	st, err := readProcStat(copyPid)
	require.NoError(t, err)
	require.Equal(t, copyPid, st.pgrp, "the copy leads its own process group")
	require.NoError(t, p.StartDrill(ctx, d, procNoProgress), "a second start adopts the running copy")
	gotPid, _, err := readPidFile(filepath.Join(d.Dir, pidFileName))
	require.NoError(t, err)
	require.Equal(t, copyPid, gotPid)

	require.Equal(t, prodPid, procPid(p), "the service is not touched")
	require.Contains(t, procStatus(t, p).Message, fmt.Sprintf("pid %d", prodPid), "the service's status is its own")

	// An agent restart: a new driver of the same service adopts the copy.
	restarted := newTestProcess(t, p.cfg)
	var lines []string
	progress := func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
	require.NoError(t, restarted.CheckDrill(ctx, d, progress))
	require.Contains(t, lines[len(lines)-1], "(adopted)")
	existed, err := restarted.StopDrill(ctx, d, progress)
	require.NoError(t, err)
	require.True(t, existed)
	testutil.WaitForResult(t, procTestWait, func() (bool, error) {
		return procGone(copyPid), fmt.Errorf("drill copy %d still runs", copyPid)
	})
	require.NoDirExists(t, d.Dir)
	require.False(t, procGone(prodPid), "the service runs on")

	existed, err = restarted.StopDrill(ctx, d, progress)
	require.NoError(t, err)
	require.False(t, existed)
	require.Contains(t, lines[len(lines)-1], "already cleaned up")
	require.ErrorContains(t, restarted.CheckDrill(ctx, d, progress), "start the drill first")
	_, err = os.Stat(d.Dir)
	require.ErrorIs(t, err, os.ErrNotExist, "a check does not create the copy's directory")
}
