package hostagent

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testing/pgtest"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// drillWait bounds the polls of these tests.
const drillWait = 30 * time.Second

// runStepOK executes a step that must succeed and returns its progress
// lines and outputs.
func (ta *testAgent) runStepOK(req *pb.ExecuteRequest) ([]string, map[string]string) {
	ta.t.Helper()
	lines, res, err := ta.execute(req)
	require.NoError(ta.t, err)
	require.True(ta.t, res.GetOk(), "%s; progress: %q", res.GetMessage(), lines)
	return lines, res.GetOutputs()
}

// quietProbe probes without renewing or revoking the lease: it names no
// active site.
func (ta *testAgent) quietProbe() *pb.ProbeResponse {
	ta.t.Helper()
	resp, err := ta.client.Probe(ctxT(ta.t), &pb.ProbeRequest{Epoch: 1, LeaderId: "s1"})
	require.NoError(ta.t, err)
	return resp
}

func serviceMessage(resp *pb.ProbeResponse, name string) string {
	for _, s := range resp.GetServices() {
		if s.GetName() == name {
			return s.GetMessage()
		}
	}
	return ""
}

func drillReq(step, action, target, id string) *pb.ExecuteRequest {
	return &pb.ExecuteRequest{ExecutionId: "drill-" + id, StepId: step, Epoch: 1, Action: structs.ActionToProto(action), Target: target,
		Args: map[string]string{"drill": id}, TimeoutMs: uint64(drillWait.Milliseconds())}
}

func hasLine(lines []string, substr string) bool {
	for _, l := range lines {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

// readPid reads the pid a process driver's pid file records.
func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	require.NoError(t, err)
	return pid
}

// pidGone reports that pid no longer runs; a zombie counts as gone.
func pidGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || len(b) < i+3 || b[i+2] == 'Z' || b[i+2] == 'X'
}

// killGroupOnCleanup kills pid's process group when the test ends, in
// case the test failed before stopping it: services outlive the agent.
func killGroupOnCleanup(t *testing.T, pid int) {
	t.Cleanup(func() {
		if !pidGone(pid) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		testutil.WaitForResult(t, drillWait, func() (bool, error) {
			return pidGone(pid), fmt.Errorf("pid %d still runs", pid)
		})
	})
}

// processDrillAgent is an agent whose app is a real process: it writes
// its MODE into the file OUT names, then sleeps. Its drill block points
// OUT elsewhere and checks that file; withDrill false leaves it out.
func processDrillAgent(t *testing.T, leaseTTL time.Duration, fakes map[string]driver.Role, withDrill bool) (ta *testAgent, live, drill string) {
	dir := t.TempDir()
	live, drill = filepath.Join(dir, "live"), filepath.Join(dir, "drill")
	ta = newTestAgent(t, leaseTTL, fakes, func(ta *testAgent) {
		ta.real = true
		ta.cfg.Services[1] = config.ServiceConfig{
			Name: "app", Driver: config.DriverProcess, DependsOn: []string{"pg"},
			Command: []string{"/bin/sh", "-c", `echo "$MODE" > "$OUT"; exec sleep 1000`},
			Env:     map[string]string{"MODE": "live", "OUT": live}, Restart: "no", StopTimeout: 5 * time.Second,
			Drill: &config.DrillConfig{
				Env:    map[string]string{"MODE": "drill", "OUT": drill},
				Health: &config.HealthConfig{Exec: []string{"/bin/grep", "-qx", "drill", drill}, Interval: 20 * time.Millisecond, Timeout: time.Second},
			},
		}
		if !withDrill {
			ta.cfg.Services[1].Drill = nil
		}
	})
	return ta, live, drill
}

// TestAgent_ProcessDrill_Lifecycle starts, checks and stops a drill copy
// of a process service beside its running production instance, across an
// agent restart: production is never touched, the copy has its own env,
// pid file, log and process group, and stops are idempotent.
func TestAgent_ProcessDrill_Lifecycle(t *testing.T) {
	ta, live, drillOut := processDrillAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby}, true)
	ta.runStepOK(&pb.ExecuteRequest{ExecutionId: "e", StepId: "start-app", Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "app"})
	prodPid := readPid(t, filepath.Join(ta.dataDir, "services", "app", "process.pid"))
	killGroupOnCleanup(t, prodPid)

	lines, out := ta.runStepOK(drillReq("start", "start", "app", "d1"))
	copyDir := filepath.Join(ta.dataDir, "drill", "d1", "app")
	require.Equal(t, copyDir, out["dir"])
	require.True(t, hasLine(lines, "drill copy of app is healthy"), "progress: %q", lines)
	copyPid := readPid(t, filepath.Join(copyDir, "process.pid"))
	killGroupOnCleanup(t, copyPid)
	require.NotEqual(t, prodPid, copyPid)
	require.FileExists(t, filepath.Join(copyDir, "process.log"))
	b, err := os.ReadFile(live)
	require.NoError(t, err)
	require.Equal(t, "live\n", string(b), "production keeps its own env")
	b, err = os.ReadFile(drillOut)
	require.NoError(t, err)
	require.Equal(t, "drill\n", string(b), "the drill env is merged over the service's")
	pgid, err := syscall.Getpgid(copyPid)
	require.NoError(t, err)
	require.Equal(t, copyPid, pgid, "the copy leads its own process group")

	resp := ta.quietProbe()
	require.Equal(t, string(driver.RolePrimary), serviceRole(resp, "app"))
	require.Contains(t, serviceMessage(resp, "app"), fmt.Sprintf("pid %d", prodPid), "the role is production's")
	require.Contains(t, serviceMessage(resp, "app"), "drill copies: d1")

	lines, _ = ta.runStepOK(drillReq("check", "check", "app", "d1"))
	require.True(t, hasLine(lines, "passes exec"), "progress: %q", lines)

	// A restarted agent finds the copy by its pid file.
	ta.restart()
	ta.runStepOK(drillReq("check-after-restart", "check", "app", "d1"))
	ta.runStepOK(drillReq("stop", "stop", "app", "d1"))
	testutil.WaitForResult(t, drillWait, func() (bool, error) {
		return pidGone(copyPid), fmt.Errorf("drill copy %d still runs", copyPid)
	})
	require.NoDirExists(t, filepath.Join(ta.dataDir, "drill", "d1"))
	require.False(t, pidGone(prodPid), "stopping the drill leaves production running")
	require.NotContains(t, serviceMessage(ta.quietProbe(), "app"), "drill")

	lines, _ = ta.runStepOK(drillReq("stop-again", "stop", "app", "d1"))
	require.True(t, hasLine(lines, "does not exist (already cleaned up)"), "progress: %q", lines)
	_, res, err := ta.execute(drillReq("check-after-stop", "check", "app", "d1"))
	require.NoError(t, err)
	require.False(t, res.GetOk())
	require.Contains(t, res.GetMessage(), "start the drill first")
}

// TestAgent_ProcessDrill_NotFenced lets the boot lease lapse while a
// drill copy runs: the fencer stops the adopted primary, never the copy,
// and the probe never reports the copy as the service's role.
func TestAgent_ProcessDrill_NotFenced(t *testing.T) {
	ta, _, _ := processDrillAgent(t, 2*time.Second, map[string]driver.Role{"pg": driver.RolePrimary}, true)
	ta.runStepOK(drillReq("start", "start", "app", "d2"))
	require.Equal(t, driver.RolePrimary, ta.fakes["pg"].Role(), "the drill started within the boot lease")
	copyPid := readPid(t, filepath.Join(ta.dataDir, "drill", "d2", "app", "process.pid"))
	killGroupOnCleanup(t, copyPid)

	testutil.WaitForResult(t, drillWait, func() (bool, error) {
		role := ta.fakes["pg"].Role()
		return role == driver.RoleStopped, fmt.Errorf("pg is %s", role)
	})
	require.False(t, pidGone(copyPid), "a drill copy holds no production role and is never fenced")
	resp := ta.quietProbe()
	require.Equal(t, string(driver.RoleStopped), serviceRole(resp, "app"), "the copy is not the service's role")
	require.Equal(t, string(driver.RoleFenced), serviceRole(resp, "pg"))
	ta.runStepOK(drillReq("stop", "stop", "app", "d2"))
	require.True(t, pidGone(copyPid))
}

// TestAgent_DrillAndCatchUp_BadArgs checks that malformed drill ids and
// WAL positions, and args on actions they do not apply to, are refused
// as invalid steps before anything runs.
func TestAgent_DrillAndCatchUp_BadArgs(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	cases := []struct {
		name   string
		action string
		target string
		args   map[string]string
		want   string
	}{
		{"drill id with a path", "start", "app", map[string]string{"drill": "../../etc"}, "is not a drill id"},
		{"empty drill id", "stop", "app", map[string]string{"drill": ""}, "is not a drill id"},
		{"drill id with a space", "check", "app", map[string]string{"drill": "a b"}, "is not a drill id"},
		{"drill id too long", "stop", "app", map[string]string{"drill": strings.Repeat("a", 65)}, "is not a drill id"},
		{"drill promote", "promote", "pg", map[string]string{"drill": "d1"}, "never runs promote"},
		{"drill demote", "demote", "pg", map[string]string{"drill": "d1", "upstream_host": "127.0.0.1", "upstream_port": "5432"}, "never runs demote"},
		{"drill with after_position", "check", "pg", map[string]string{"drill": "d1", "after_position": "0/3000028"}, "after_position does not apply"},
		{"service without a drill block", "start", "pg", map[string]string{"drill": "d1"}, "declares no drill block"},
		{"after_position without slash", "check", "pg", map[string]string{"after_position": "3000028"}, "after_position"},
		{"after_position empty", "check", "pg", map[string]string{"after_position": ""}, "invalid WAL position"},
		{"after_position with shell", "check", "pg", map[string]string{"after_position": "0/3000028; rm -rf /"}, "invalid WAL position"},
		{"after_position not hex", "check", "pg", map[string]string{"after_position": "0/30G0028"}, "invalid WAL position"},
		{"after_position too wide", "check", "pg", map[string]string{"after_position": "123456789/0"}, "invalid WAL position"},
		{"after_position three parts", "check", "pg", map[string]string{"after_position": "1/2/3"}, "invalid WAL position"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "bad", StepId: strconv.Itoa(i), Epoch: 1, Action: structs.ActionToProto(tc.action), Target: tc.target, Args: tc.args})
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			require.Contains(t, status.Convert(err).Message(), tc.want)
		})
	}
	starts, stops := ta.fakes["app"].Counts()
	require.Zero(t, starts+stops, "refused steps run nothing")
}

// TestAgent_ProcessDrill_NeedsDrillBlock refuses a drill start of a
// service without a drill block (its copy would run as production), but
// lets a stop clean up.
func TestAgent_ProcessDrill_NeedsDrillBlock(t *testing.T) {
	ta, _, _ := processDrillAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby}, false)
	_, _, err := ta.execute(drillReq("start", "start", "app", "d3"))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "declares no drill block")
	lines, _ := ta.runStepOK(drillReq("stop", "stop", "app", "d3"))
	require.True(t, hasLine(lines, "already cleaned up"), "progress: %q", lines)
}

// TestAgent_PostgresDrill clones the DR standby into a writable drill
// copy on its own port, checks and tears it down, and shows that the
// production standby kept streaming, kept its role, and that the copy
// and production never saw each other's writes.
func TestAgent_PostgresDrill(t *testing.T) {
	t.Parallel()
	pair := pgtest.NewPair(t)
	drillPort := freeTCPPort(t)
	ta := newTestAgent(t, time.Hour, nil, func(ta *testAgent) {
		ta.real = true
		// run_as must pass through the test's temporary directories to
		// reach the copy; the agent itself opens up data_dir.
		require.NoError(t, os.Chmod(filepath.Dir(ta.dataDir), 0o711))
		ta.cfg.Services = []config.ServiceConfig{{
			Name: "pg", Driver: config.DriverPostgres, DataDir: pair.Standby.DataDir, Port: pair.Standby.Port,
			BinDir: pgtest.BinDir, RunAs: pgtest.RunAs, StopTimeout: 10 * time.Second,
			Drill: &config.DrillConfig{Port: drillPort},
		}}
	})
	copyDir := filepath.Join(ta.dataDir, "drill", "d1", "pg")
	copyNode := &pgtest.Node{Name: "drill", DataDir: filepath.Join(copyDir, "data"), Port: drillPort, SocketDir: filepath.Join(copyDir, "run")}
	t.Cleanup(func() {
		if _, err := os.Stat(copyNode.DataDir); err == nil {
			pair.Stop(t, copyNode)
		}
	})

	pair.Exec(t, pair.Primary, "CREATE TABLE t (id int PRIMARY KEY)")
	pair.Exec(t, pair.Primary, "INSERT INTO t SELECT generate_series(1, 3)")
	pair.WaitFor(t, pair.Standby, "3", "SELECT count(*)::text FROM t")

	lines, _ := ta.runStepOK(drillReq("start", "start", "pg", "d1"))
	require.True(t, hasLine(lines, "cloning pg"), "progress: %q", lines)
	require.True(t, hasLine(lines, "drill copy is writable"), "progress: %q", lines)
	require.Equal(t, "false", pair.QueryString(t, copyNode, "SELECT pg_is_in_recovery()::text"))
	require.Equal(t, "3", pair.QueryString(t, copyNode, "SELECT count(*)::text FROM t"), "the copy has production's data")
	pair.Exec(t, copyNode, "INSERT INTO t VALUES (100)")
	require.Equal(t, "off", pair.QueryString(t, copyNode, "SHOW archive_mode"))
	require.Equal(t, "", pair.QueryString(t, copyNode, "SHOW primary_conninfo"))
	require.Equal(t, "pg-drill-d1", pair.QueryString(t, copyNode, "SHOW cluster_name"))
	require.Equal(t, filepath.Join(copyDir, "run", "external.pid"), pair.QueryString(t, copyNode, "SHOW external_pid_file"))
	require.FileExists(t, filepath.Join(copyDir, "run", "external.pid"))
	copyPid := copyNode.PostmasterPID()
	require.NotZero(t, copyPid)

	resp := ta.quietProbe()
	require.Equal(t, string(driver.RoleStandby), serviceRole(resp, "pg"), "the copy is not the service's role")
	require.Contains(t, serviceMessage(resp, "pg"), "drill copies: d1")

	// Production replicates on, and the two never see each other's rows.
	pair.Exec(t, pair.Primary, "INSERT INTO t VALUES (4)")
	pair.WaitFor(t, pair.Standby, "1,2,3,4", "SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
	pair.WaitStreaming(t, pair.Standby)
	require.Equal(t, "1,2,3,100", pair.QueryString(t, copyNode, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t"))

	lines, _ = ta.runStepOK(drillReq("check", "check", "pg", "d1"))
	require.True(t, hasLine(lines, "is primary at"), "progress: %q", lines)

	ta.runStepOK(drillReq("stop", "stop", "pg", "d1"))
	require.NoDirExists(t, filepath.Join(ta.dataDir, "drill", "d1"))
	testutil.WaitForResult(t, drillWait, func() (bool, error) {
		return pidGone(copyPid), fmt.Errorf("drill postmaster %d still runs", copyPid)
	})
	pair.Exec(t, pair.Primary, "INSERT INTO t VALUES (5)")
	pair.WaitFor(t, pair.Standby, "5", "SELECT max(id)::text FROM t")
	pair.WaitStreaming(t, pair.Standby)
	require.Equal(t, string(driver.RoleStandby), serviceRole(ta.quietProbe(), "pg"))

	lines, _ = ta.runStepOK(drillReq("stop-again", "stop", "pg", "d1"))
	require.True(t, hasLine(lines, "already cleaned up"), "progress: %q", lines)

	// A drill clones the running local server; with none it says so.
	pair.Stop(t, pair.Standby)
	_, res, err := ta.execute(drillReq("start-stopped", "start", "pg", "d2"))
	require.NoError(t, err)
	require.False(t, res.GetOk())
	require.Contains(t, res.GetMessage(), "postgres is not running: a drill clones the running local server")
}

// freeTCPPort returns a port nothing listens on right now.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
