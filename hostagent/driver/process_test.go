package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testutil"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// procTestWait bounds every poll in these tests.
const procTestWait = 10 * time.Second

// procTestLogger logs through t until the test ends, then drops lines:
// watchers may log after the test's last assertion.
func procTestLogger(t *testing.T) hclog.Logger {
	w := &procLogWriter{t: t}
	t.Cleanup(w.close)
	return hclog.New(&hclog.LoggerOptions{Name: "driver", Level: hclog.Debug, Output: w})
}

type procLogWriter struct {
	mu     sync.Mutex
	t      *testing.T
	closed bool
}

func (w *procLogWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func (w *procLogWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

func procNoProgress(string, ...any) {}

// newTestProcess returns a process driver with its state and log in a
// temp dir, stopped when the test ends.
func newTestProcess(t *testing.T, cfg ProcessConfig) *Process {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "app"
	}
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.LogFile == "" {
		cfg.LogFile = filepath.Join(cfg.StateDir, "app.log")
	}
	p, err := NewProcess(cfg, procTestLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Stop(context.Background(), procNoProgress)) })
	return p
}

func procStatus(t *testing.T, p *Process) Status {
	t.Helper()
	st, err := p.Status(context.Background())
	require.NoError(t, err)
	return st
}

// procPid is the pid of the running process, or 0.
func procPid(p *Process) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		return 0
	}
	return p.current.pid
}

// waitStatus polls until the status satisfies ok.
func waitStatus(t *testing.T, p *Process, ok func(Status) bool) Status {
	t.Helper()
	var st Status
	testutil.WaitForResult(t, procTestWait, func() (bool, error) {
		st = procStatus(t, p)
		return ok(st), fmt.Errorf("status is %s: %s", st.Role, st.Message)
	})
	return st
}

// procGone reports that pid no longer runs (a zombie waiting for a parent
// that is not the test counts as gone).
func procGone(pid int) bool {
	st, err := readProcStat(pid)
	return err != nil || st.gone()
}

// waitFileContains polls until path contains want.
func waitFileContains(t *testing.T, path, want string) string {
	t.Helper()
	var got string
	testutil.WaitForResult(t, procTestWait, func() (bool, error) {
		b, _ := os.ReadFile(path)
		got = string(b)
		return strings.Contains(got, want), fmt.Errorf("%s has %q, want %q", path, got, want)
	})
	return got
}

func TestProcess_StartStop(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t, ProcessConfig{Command: []string{"sleep", "1000"}})
	ctx := context.Background()

	st := procStatus(t, p)
	require.Equal(t, RoleStopped, st.Role)
	require.Contains(t, st.Message, "never started")

	var lines []string
	progress := func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
	require.NoError(t, p.Start(ctx, progress))
	pid := procPid(p)
	require.NotZero(t, pid)
	st = procStatus(t, p)
	require.Equal(t, RolePrimary, st.Role)
	require.Contains(t, st.Message, fmt.Sprintf("pid %d", pid))
	require.Contains(t, st.Message, "restarts: 0")

	gotPid, ticks, err := readPidFile(p.pidPath())
	require.NoError(t, err)
	require.Equal(t, pid, gotPid)
	pst, err := readProcStat(pid)
	require.NoError(t, err)
	require.Equal(t, pst.startTicks, ticks)
	require.Equal(t, pid, pst.pgrp, "the service leads its own process group")

	require.NoError(t, p.Start(ctx, progress), "start on a running service is a no-op")
	require.Equal(t, pid, procPid(p))
	require.Contains(t, lines[len(lines)-1], "already runs")

	require.NoError(t, p.Stop(ctx, progress))
	st = procStatus(t, p)
	require.Equal(t, RoleStopped, st.Role, "stopped as soon as Stop returns")
	require.Contains(t, st.Message, "stopped (killed by signal 15")
	require.True(t, procGone(pid))
	require.NoFileExists(t, p.pidPath())

	require.NoError(t, p.Stop(ctx, progress), "stop on a stopped service is a no-op")
}

func TestProcess_EnvDirLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := newTestProcess(t, ProcessConfig{
		Command: []string{"sh", "-c", `echo "mode=$DRILL_MODE home=$HOME path_set=${PATH:+yes}"; pwd`},
		Env:     map[string]string{"DRILL_MODE": "safe", "HOME": "/nowhere"},
		Dir:     dir,
	})
	for range 2 {
		require.NoError(t, p.Start(context.Background(), procNoProgress))
		waitStatus(t, p, func(st Status) bool { return st.Role == RoleStopped })
	}
	st := procStatus(t, p)
	require.Contains(t, st.Message, "exited with status 0")
	b, err := os.ReadFile(p.cfg.LogFile)
	require.NoError(t, err)
	want := fmt.Sprintf("mode=safe home=/nowhere path_set=yes\n%s\n", dir)
	require.Equal(t, want+want, string(b), "each run appends to the log")
}

func TestProcess_StopTimeoutKills(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t, ProcessConfig{
		Command:     []string{"sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.05; done`},
		StopTimeout: 200 * time.Millisecond,
	})
	require.NoError(t, p.Start(context.Background(), procNoProgress))
	waitFileContains(t, p.cfg.LogFile, "ready")

	start := time.Now()
	require.NoError(t, p.Stop(context.Background(), procNoProgress))
	require.Less(t, time.Since(start), 5*time.Second)
	st := procStatus(t, p)
	require.Equal(t, RoleStopped, st.Role)
	require.Contains(t, st.Message, "killed by signal 9")
}

func TestProcess_StopCtxEnds(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t, ProcessConfig{
		Command:     []string{"sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.05; done`},
		StopTimeout: time.Hour,
	})
	require.NoError(t, p.Start(context.Background(), procNoProgress))
	waitFileContains(t, p.cfg.LogFile, "ready")

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := p.Stop(ctx, procNoProgress)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, RolePrimary, procStatus(t, p).Role, "still running: it ignores SIGTERM")

	// Cleanup would wait an hour: kill it here.
	require.NoError(t, syscall.Kill(procPid(p), syscall.SIGKILL))
	waitStatus(t, p, func(st Status) bool { return st.Role == RoleStopped })
}

func TestProcess_StopKillsGroup(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	childPidFile := filepath.Join(state, "child.pid")
	p := newTestProcess(t, ProcessConfig{
		StateDir: state,
		Command:  []string{"sh", "-c", `sleep 1000 & echo $! > ` + childPidFile + `; wait`},
	})
	require.NoError(t, p.Start(context.Background(), procNoProgress))
	s := waitFileContains(t, childPidFile, "\n")
	child, err := strconv.Atoi(strings.TrimSpace(s))
	require.NoError(t, err)
	require.False(t, procGone(child))

	require.NoError(t, p.Stop(context.Background(), procNoProgress))
	testutil.WaitForResult(t, procTestWait, func() (bool, error) {
		return procGone(child), fmt.Errorf("child %d still runs", child)
	})
}

func TestProcess_LeaderExitKillsGroup(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	childPidFile := filepath.Join(state, "child.pid")
	p := newTestProcess(t, ProcessConfig{
		StateDir: state,
		Command:  []string{"sh", "-c", `sleep 1000 & echo $! > ` + childPidFile + `; exit 0`},
	})
	require.NoError(t, p.Start(context.Background(), procNoProgress))
	s := waitFileContains(t, childPidFile, "\n")
	child, err := strconv.Atoi(strings.TrimSpace(s))
	require.NoError(t, err)
	waitStatus(t, p, func(st Status) bool { return st.Role == RoleStopped })
	testutil.WaitForResult(t, procTestWait, func() (bool, error) {
		return procGone(child), fmt.Errorf("worker %d outlived its leader", child)
	})
}

func TestProcess_RestartPolicy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		policy   string
		exit     int
		restarts bool
		lastExit string
	}{
		{name: "no after failure", policy: "no", exit: 1, lastExit: "exited with status 1"},
		{name: "default after failure", policy: "", exit: 3, lastExit: "exited with status 3"},
		{name: "on-failure after success", policy: "on-failure", exit: 0, lastExit: "exited with status 0"},
		{name: "on-failure after failure", policy: "on-failure", exit: 2, restarts: true},
		{name: "always after success", policy: "always", exit: 0, restarts: true},
		{name: "always after failure", policy: "always", exit: 1, restarts: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			state := t.TempDir()
			runs := filepath.Join(state, "runs")
			p := newTestProcess(t, ProcessConfig{
				StateDir:     state,
				Command:      []string{"sh", "-c", fmt.Sprintf("echo run >> %s; exit %d", runs, tc.exit)},
				Restart:      tc.policy,
				RestartDelay: 10 * time.Millisecond,
			})
			require.NoError(t, p.Start(context.Background(), procNoProgress))
			if !tc.restarts {
				st := waitStatus(t, p, func(st Status) bool { return strings.Contains(st.Message, "exited") })
				require.Equal(t, tc.lastExit+", restarts: 0", st.Message)
				b, err := os.ReadFile(runs)
				require.NoError(t, err)
				require.Equal(t, "run\n", string(b))
				return
			}
			waitStatus(t, p, func(st Status) bool { return strings.Contains(st.Message, "restarts: 3") })
			require.NoError(t, p.Stop(context.Background(), procNoProgress))
			st := procStatus(t, p)
			require.Equal(t, RoleStopped, st.Role)
			require.NotContains(t, st.Message, "restarting", "stop cancels a pending restart")
			p.mu.Lock()
			defer p.mu.Unlock()
			require.Nil(t, p.restartTimer)
			require.True(t, p.stopped)
		})
	}
}

func TestProcess_RestartAfterKill(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t, ProcessConfig{
		Command:      []string{"sleep", "1000"},
		Restart:      "on-failure",
		RestartDelay: 10 * time.Millisecond,
	})
	require.NoError(t, p.Start(context.Background(), procNoProgress))
	first := procPid(p)
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	st := waitStatus(t, p, func(st Status) bool {
		return st.Role == RolePrimary && strings.Contains(st.Message, "restarts: 1")
	})
	require.NotContains(t, st.Message, fmt.Sprintf("pid %d,", first))
	pid, _, err := readPidFile(p.pidPath())
	require.NoError(t, err)
	require.Equal(t, procPid(p), pid, "the pid file follows the restart")
}

func TestProcess_StartReplacesPendingRestart(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t, ProcessConfig{
		Command:      []string{"sh", "-c", "exit 1"},
		Restart:      "on-failure",
		RestartDelay: time.Hour,
	})
	require.NoError(t, p.Start(context.Background(), procNoProgress))
	st := waitStatus(t, p, func(st Status) bool { return strings.Contains(st.Message, "restarting in 1h") })
	require.Equal(t, RoleStopped, st.Role)
	require.NoError(t, p.Start(context.Background(), procNoProgress))
	waitStatus(t, p, func(st Status) bool { return strings.Contains(st.Message, "restarting in 1h") })
	require.NoError(t, p.Stop(context.Background(), procNoProgress))
	require.Equal(t, "exited with status 1, restarts: 0", procStatus(t, p).Message)
}

func TestProcess_Adopt(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	cfg := ProcessConfig{Command: []string{"sleep", "1000"}, StateDir: state}
	old := newTestProcess(t, cfg)
	require.NoError(t, old.Start(context.Background(), procNoProgress))
	pid := procPid(old)

	// A new driver on the same state dir is what an agent restart makes.
	p := newTestProcess(t, cfg)
	st := procStatus(t, p)
	require.Equal(t, RolePrimary, st.Role)
	require.Contains(t, st.Message, fmt.Sprintf("pid %d (adopted), up ", pid))

	require.NoError(t, p.Start(context.Background(), procNoProgress))
	require.Equal(t, pid, procPid(p), "start adopts, it does not start a second copy")

	require.NoError(t, p.Stop(context.Background(), procNoProgress))
	require.Equal(t, RoleStopped, procStatus(t, p).Role)
	require.True(t, procGone(pid))
	require.NoFileExists(t, p.pidPath())
}

func TestProcess_AdoptedExitNoticed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		policy  string
		restart bool
	}{
		{name: "no", policy: "no"},
		{name: "on-failure cannot tell", policy: "on-failure"},
		{name: "always", policy: "always", restart: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := ProcessConfig{
				Command: []string{"sleep", "1000"}, StateDir: t.TempDir(),
				Restart: tc.policy, RestartDelay: 10 * time.Millisecond,
			}
			old := newTestProcess(t, cfg)
			require.NoError(t, old.Start(context.Background(), procNoProgress))
			// The old driver, whose child it still is, must not restart it:
			// in production it is gone.
			old.mu.Lock()
			old.stopped = true
			old.mu.Unlock()
			pid := procPid(old)

			p := newTestProcess(t, cfg)
			require.Equal(t, pid, procPid(p))
			require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
			if !tc.restart {
				st := waitStatus(t, p, func(st Status) bool { return st.Role == RoleStopped })
				require.Contains(t, st.Message, "exit status unknown")
				return
			}
			st := waitStatus(t, p, func(st Status) bool {
				return st.Role == RolePrimary && strings.Contains(st.Message, "restarts: 1")
			})
			require.NotContains(t, st.Message, fmt.Sprintf("pid %d ", pid))
			require.NotContains(t, st.Message, "adopted")
		})
	}
}

func TestProcess_StalePidFile(t *testing.T) {
	t.Parallel()
	// A reaped process: its pid is free or belongs to someone else now.
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	self, err := readProcStat(os.Getpid())
	require.NoError(t, err)

	cases := []struct {
		name    string
		content string
	}{
		{name: "recycled pid", content: fmt.Sprintf("%d %d\n", os.Getpid(), self.startTicks+1)},
		{name: "dead pid", content: fmt.Sprintf("%d 1\n", dead.Process.Pid)},
		{name: "garbage", content: "not a pid file"},
		{name: "no start time", content: fmt.Sprintf("%d\n", os.Getpid())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			state := t.TempDir()
			path := filepath.Join(state, pidFileName)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			p := newTestProcess(t, ProcessConfig{Command: []string{"sleep", "1000"}, StateDir: state})
			require.Equal(t, RoleStopped, procStatus(t, p).Role)
			require.NoFileExists(t, path)
			// Stop must not signal whatever now has that pid (here: the test).
			require.NoError(t, p.Stop(context.Background(), procNoProgress))
		})
	}
}

func TestProcess_StartFails(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t, ProcessConfig{Command: []string{"/nonexistent/drplane-test-binary"}})
	err := p.Start(context.Background(), procNoProgress)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.Contains(t, err.Error(), "start app: run /nonexistent/drplane-test-binary")
	require.Equal(t, RoleStopped, procStatus(t, p).Role)
	require.NoFileExists(t, p.pidPath())
}

func TestProcess_RunAs(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("run_as needs root")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres user")
	}
	p := newTestProcess(t, ProcessConfig{
		Command: []string{"sh", "-c", `echo "$(id -u):$(id -g) $HOME"`},
		RunAs:   "postgres",
	})
	require.NoError(t, p.Start(context.Background(), procNoProgress))
	waitStatus(t, p, func(st Status) bool { return st.Role == RoleStopped })
	b, err := os.ReadFile(p.cfg.LogFile)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("%s:%s %s\n", u.Uid, u.Gid, u.HomeDir), string(b))
}

func TestNewProcess_Invalid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  ProcessConfig
		want string
	}{
		{name: "no name", cfg: ProcessConfig{Command: []string{"true"}, StateDir: "x"}, want: "service name is empty"},
		{name: "no command", cfg: ProcessConfig{Name: "a", StateDir: "x"}, want: "command is empty"},
		{name: "empty argv0", cfg: ProcessConfig{Name: "a", Command: []string{""}, StateDir: "x"}, want: "command is empty"},
		{name: "no state dir", cfg: ProcessConfig{Name: "a", Command: []string{"true"}}, want: "state dir is empty"},
		{name: "bad restart", cfg: ProcessConfig{Name: "a", Command: []string{"true"}, StateDir: "x", Restart: "sometimes"}, want: `restart "sometimes"`},
		{name: "unknown user", cfg: ProcessConfig{Name: "a", Command: []string{"true"}, StateDir: "x", RunAs: "drplane-no-such-user"}, want: "look up run_as user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewProcess(tc.cfg, hclog.NewNullLogger())
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestProcess_ConcurrentCalls(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t, ProcessConfig{
		Command:      []string{"sleep", "1000"},
		Restart:      "always",
		RestartDelay: time.Millisecond,
		StopTimeout:  time.Second,
	})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 10 {
				var err error
				switch (i + j) % 3 {
				case 0:
					err = p.Start(context.Background(), procNoProgress)
				case 1:
					err = p.Stop(context.Background(), procNoProgress)
				default:
					_, err = p.Status(context.Background())
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, p.Start(context.Background(), procNoProgress))
	require.Equal(t, RolePrimary, procStatus(t, p).Role)
	require.NoError(t, p.Stop(context.Background(), procNoProgress))
	require.Equal(t, RoleStopped, procStatus(t, p).Role)
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	rest := " S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10"
	cases := []struct {
		name    string
		line    string
		wantErr bool
	}{
		{name: "plain", line: "4242 (sleep)" + rest},
		{name: "spaces and parens in comm", line: "4242 (a) b (c)" + rest},
		{name: "no comm", line: "4242 sleep" + rest, wantErr: true},
		{name: "short", line: "4242 (sleep) S 1 4242", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseProcStat([]byte(tc.line))
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, procStat{state: 'S', pgrp: 4242, startTicks: 987654}, st)
		})
	}
	_, err := readProcStat(1 << 30)
	require.True(t, errors.Is(err, os.ErrNotExist))
}
