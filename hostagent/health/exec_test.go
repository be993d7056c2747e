package health

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

func TestExec_Check(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		argv    []string
		wantErr []string
	}{
		{name: "true", argv: []string{"true"}},
		{name: "false", argv: []string{"false"}, wantErr: []string{"exec false: exit status 1"}},
		{name: "output tail", argv: []string{"sh", "-c", "echo starting; echo db down >&2; exit 3"},
			wantErr: []string{"exit status 3: starting\ndb down"}},
		{name: "long output keeps the end", argv: []string{"sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a; echo END; exit 1"},
			wantErr: []string{": ...aaa", "aEND"}},
		{name: "no shell", argv: []string{"echo", "$HOME; false"}},
		{name: "timeout", argv: []string{"sleep", "1000"}, wantErr: []string{"timed out", "deadline exceeded"}},
		{name: "missing binary", argv: []string{"/nonexistent/check"}, wantErr: []string{"no such file"}},
		{name: "empty", argv: nil, wantErr: []string{"no command"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := NewExec(tc.argv, 300*time.Millisecond).Check(context.Background())
			require.Less(t, time.Since(start), 5*time.Second)
			if len(tc.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tc.wantErr {
				require.Contains(t, err.Error(), want)
			}
			require.LessOrEqual(t, len(err.Error()), execOutputTail+200)
		})
	}
}

// A timed-out check kills the script's children too, and does not wait
// for them to close its output.
func TestExec_TimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	c := NewExec([]string{"sh", "-c", "sleep 1000 & echo $! > " + pidFile + "; wait"}, 300*time.Millisecond)
	start := time.Now()
	require.ErrorContains(t, c.Check(context.Background()), "timed out")
	require.Less(t, time.Since(start), 5*time.Second)
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid := strings.TrimSpace(string(b))
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		// Gone, or a zombie waiting for a parent that is not the test.
		return err != nil || strings.Contains(string(stat), ") Z "), fmt.Errorf("child %s survived the timeout", pid)
	})
}

func TestExec_String(t *testing.T) {
	t.Parallel()
	argv := []string{"pg_isready", "-p", "5432"}
	c := NewExec(argv, time.Second)
	argv[0] = "changed"
	require.Equal(t, "exec pg_isready -p 5432", c.String(), "the check keeps its own copy of argv")
}
