package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/cli"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// devReadyTimeout bounds `drplane dev` from start to its ready line: a
// race-built binary on a small machine initdbs, clones and starts nine
// processes.
const devReadyTimeout = 90 * time.Second

// devProcess is a running `drplane dev` and what it printed.
type devProcess struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{}

	mu     sync.Mutex
	out    bytes.Buffer
	stderr bytes.Buffer
	ready  chan struct{}
}

// startDev runs `drplane dev --dir dir --port 0` in its own process
// group. On cleanup a dev still running is interrupted, then killed with
// every process whose command line names dir.
func startDev(t *testing.T, dir string) *devProcess {
	t.Helper()
	d := &devProcess{dir: dir, done: make(chan struct{}), ready: make(chan struct{})}
	d.cmd = exec.Command(drplaneBin, "dev", "--dir", dir, "--port", "0")
	d.cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := d.cmd.StdoutPipe()
	require.NoError(t, err)
	d.cmd.Stderr = &lockedWriter{mu: &d.mu, w: &d.stderr}
	require.NoError(t, d.cmd.Start())
	go d.readOutput(stdout)
	t.Cleanup(func() {
		if d.running() {
			_ = d.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-d.done:
			case <-time.After(time.Minute):
				_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
				<-d.done
			}
		}
		for _, pid := range processesNaming(dir) {
			t.Errorf("process %d outlived drplane dev; killing it", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("--- drplane dev output ---\n%s\n--- stderr ---\n%s", d.output(), d.errOutput())
			logs, _ := filepath.Glob(filepath.Join(dir, "agents", "*", "agent.log"))
			servers, _ := filepath.Glob(filepath.Join(dir, "s*", "server.log"))
			for _, l := range append(logs, servers...) {
				t.Logf("--- end of %s ---\n%s", l, devcluster.Tail(l, logTailBytes/4))
			}
		}
	})
	return d
}

// readOutput collects stdout and closes ready at the ready line; done
// is closed once the process exited.
func (d *devProcess) readOutput(r interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(r)
	isReady := false
	for sc.Scan() {
		line := sc.Text()
		d.mu.Lock()
		d.out.WriteString(line + "\n")
		d.mu.Unlock()
		if !isReady && strings.HasPrefix(line, "ready") {
			isReady = true
			close(d.ready)
		}
	}
	_ = d.cmd.Wait()
	close(d.done)
}

func (d *devProcess) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

func (d *devProcess) output() string    { d.mu.Lock(); defer d.mu.Unlock(); return d.out.String() }
func (d *devProcess) errOutput() string { d.mu.Lock(); defer d.mu.Unlock(); return d.stderr.String() }

// waitReady waits for the ready line.
func (d *devProcess) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-d.ready:
	case <-d.done:
		t.Fatalf("drplane dev exited before it was ready: %v", d.cmd.ProcessState)
	case <-time.After(devReadyTimeout):
		t.Fatalf("drplane dev printed no ready line within %s", devReadyTimeout)
	}
}

// cli runs a drplane command with the environment of D/env.sh.
func (d *devProcess) cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(drplaneBin, args...)
	cmd.Env = append(os.Environ(), readEnvFile(t, filepath.Join(d.dir, "env.sh"))...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "drplane %s: %s", strings.Join(args, " "), out)
	return string(out)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// readEnvFile reads the export lines of env.sh as KEY=value.
func readEnvFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var env []string
	for _, line := range strings.Split(string(b), "\n") {
		kv, ok := strings.CutPrefix(line, "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		require.True(t, len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'', "env.sh quotes every value: %q", line)
		env = append(env, k+"="+strings.ReplaceAll(v[1:len(v)-1], `'\''`, `'`))
	}
	return env
}

// readPIDFiles reads D/pids/<site>/<name>.pid as "site/name" -> pid.
func readPIDFiles(t *testing.T, dir string) map[string]int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "pids", "*", "*.pid"))
	require.NoError(t, err)
	pids := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since the glob: its process is gone
		}
		require.NoError(t, err)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		require.NoError(t, err, "pid file %s holds %q", f, b)
		pids[filepath.Base(filepath.Dir(f))+"/"+strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
	}
	return pids
}

// processesNaming lists the live processes whose command line names dir.
func processesNaming(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) && devcluster.ProcessAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestDev runs `drplane dev` as an operator would: it waits for the ready
// line, drives the deployment with the CLI through env.sh (DRPLANE_ADDR
// lists every server), switches over to dr, interrupts it, and checks
// that every process it listed in its pid files is gone, and nothing
// else it started is left.
func TestDev(t *testing.T) {
	dir := t.TempDir()
	started := time.Now()
	d := startDev(t, dir)
	d.waitReady(t)
	t.Logf("ready after %s", time.Since(started).Round(time.Millisecond))
	withPG := strings.Contains(d.output(), "postgres primary db-1 streaming")

	out := d.cli(t, "status")
	require.Contains(t, out, "Active site:  primary")
	require.Contains(t, out, "sampleapp=primary")
	require.Len(t, strings.Split(readEnvFile(t, filepath.Join(dir, "env.sh"))[0], ","), 3, "DRPLANE_ADDR lists the three servers")
	pids := readPIDFiles(t, dir)
	for _, name := range []string{"primary/server-s1", "dr/server-s2", "witness/server-s3", "primary/agent-db-1", "primary/agent-app-1",
		"dr/agent-db-2", "dr/agent-app-2", "primary/sampleapp-app-1"} {
		require.Contains(t, pids, name, "pid files: %v", pids)
	}
	if withPG {
		require.Contains(t, pids, "primary/postgres-db-1", "pid files: %v", pids)
		require.Contains(t, pids, "dr/postgres-db-2", "pid files: %v", pids)
	}
	checkPrometheus(t, dir)
	// A load balancer without a client certificate follows the
	// application through the switchover (agents' check endpoints).
	lb := startPlainCheckHAProxy(t, dir)
	waitServedBy(t, lb, "app-1", 30*time.Second)

	out = d.cli(t, "switchover", "--to", "dr", "--yes", "--note", "Q4 site switchover test, change CHG-1234")
	require.Contains(t, out, "succeeded")
	require.Contains(t, d.cli(t, "report"), "Q4 site switchover test, change CHG-1234", "the note is in the DR test log")
	audit := d.cli(t, "audit", "--since", "1h")
	require.Contains(t, audit, "start-execution", audit)
	require.Contains(t, audit, "cli:operator", "who, by the certificate")
	require.Contains(t, d.cli(t, "report", "--verify"), "evidence chain intact: 1 finished executions sealed")
	junit := filepath.Join(t.TempDir(), "drplane.xml")
	d.cli(t, "report", "--junit", junit)
	b, err := os.ReadFile(junit)
	require.NoError(t, err)
	require.Contains(t, string(b), `<testcase name="activate:dr"`, "a test case per step")
	// The DR programme: the annual drill's next run, outside trading
	// hours, and the KPIs against the objectives.
	var schedules []cli.ScheduleJSON
	require.NoError(t, json.Unmarshal([]byte(d.cli(t, "schedule", "list", "--json")), &schedules))
	require.Len(t, schedules, 1)
	require.Equal(t, "annual-restore-drill", schedules[0].Name)
	require.NotNil(t, schedules[0].NextRun)
	require.Equal(t, 1, schedules[0].NextRun.In(newYork(t)).YearDay(), "New Year's Day: %s", schedules[0].NextRun)
	var kpis cli.KPIsJSON
	require.NoError(t, json.Unmarshal([]byte(d.cli(t, "report", "--kpis", "--json")), &kpis))
	require.Len(t, kpis.KPIs, 4)
	require.Equal(t, "mttr", kpis.KPIs[3].Name)
	require.NotNil(t, kpis.KPIs[3].Target, "the objectives' mttr")
	require.Regexp(t, `(?m)^restore\s+never\s+-\s+\d+d\s+YES: no successful drill on record`, d.cli(t, "status"), "status shows the plan's drill record, overdue")
	t.Logf("switchover:\n%s", out)
	// The pid files follow: the application now runs on app-2, and the
	// old primary was restarted as a standby.
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		pids = readPIDFiles(t, dir)
		_, app1 := pids["primary/sampleapp-app-1"]
		_, app2 := pids["dr/sampleapp-app-2"]
		_, pg1 := pids["primary/postgres-db-1"]
		return !app1 && app2 && (pg1 || !withPG), fmt.Errorf("pid files: %v", pids)
	})
	for name, pid := range pids {
		require.True(t, devcluster.ProcessAlive(pid), "%s: pid %d from its pid file is not running", name, pid)
	}
	waitServedBy(t, lb, "app-2", 30*time.Second)

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		t.Fatal("drplane dev did not exit within a minute of SIGINT")
	}
	require.True(t, d.cmd.ProcessState.Success(), "drplane dev exited with %v", d.cmd.ProcessState)
	for name, pid := range pids {
		require.False(t, devcluster.ProcessAlive(pid), "%s (pid %d) survived drplane dev", name, pid)
	}
	require.Empty(t, processesNaming(dir), "processes naming the dev directory survived drplane dev")
	require.NoDirExists(t, filepath.Join(dir, "pids"), "no pid file may outlive its process")
	t.Logf("TestDev took %s", time.Since(started).Round(time.Millisecond))
}

func newYork(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	return loc
}
