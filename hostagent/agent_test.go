package hostagent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/clock"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/hostmetrics"
	"github.com/drplane/drplane/internal/rpcerr"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/testing/metricstest"
	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// testAgent is an agent with fake drivers, reachable through a real gRPC
// client holding a server certificate, as the leader would be.
type testAgent struct {
	t       *testing.T
	tlsDir  string
	cfg     *config.AgentConfig
	fakes   map[string]*driver.Fake
	agent   *Agent
	client  pb.HostAgentClient
	dataDir string
	// real gives services without a fake their real driver.
	real bool
	// guard is Deps.LeaseGuard.
	guard []string
	// clock is Deps.Clock; nil is the real clock.
	clock clock.Clock
	// writeFile is Deps.WriteFile; nil is the real file system.
	writeFile WriteFileFunc
	// backupTick is Deps.BackupTick; zero is the default.
	backupTick time.Duration
	log        *testLogWriter
}

// newTestAgent starts an agent whose services are fakes. The fakes and the
// data dir survive restart, as real services and disks would. opts may
// change the agent before it starts (its config, real drivers).
func newTestAgent(t *testing.T, leaseTTL time.Duration, initial map[string]driver.Role, opts ...func(*testAgent)) *testAgent {
	t.Helper()
	ta := &testAgent{t: t, tlsDir: t.TempDir(), dataDir: t.TempDir(), fakes: map[string]*driver.Fake{}, log: &testLogWriter{t: t}}
	t.Cleanup(ta.log.close) // registered first, so it runs last
	require.NoError(t, tlsutil.CreateCA(ta.tlsDir))
	for name, role := range map[string]tlsutil.Role{"db-1": tlsutil.RoleAgent, "s1": tlsutil.RoleServer, "ops": tlsutil.RoleCLI} {
		_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: ta.tlsDir, Name: name, Role: role})
		require.NoError(t, err)
	}
	for name, role := range initial {
		ta.fakes[name] = driver.NewFake(role)
	}
	ta.cfg = &config.AgentConfig{
		HostID: "db-1", Site: "primary", DataDir: ta.dataDir, Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0",
		Servers: []string{"127.0.0.1:1"}, LeaseTTL: leaseTTL, LogLevel: "debug",
		TLS: config.TLSConfig{CAFile: filepath.Join(ta.tlsDir, "ca.pem"), CertFile: filepath.Join(ta.tlsDir, "db-1.pem"), KeyFile: filepath.Join(ta.tlsDir, "db-1-key.pem")},
		Services: []config.ServiceConfig{
			{Name: "pg", Driver: config.DriverPostgres},
			{Name: "app", Driver: config.DriverProcess, DependsOn: []string{"pg"}},
		},
		Hooks: []config.HookConfig{
			{Name: "trip", Command: []string{"/bin/echo", "circuit breaker tripped"}, Timeout: 5 * time.Second},
			{Name: "broken", Command: []string{"/bin/false"}, Timeout: 5 * time.Second},
		},
	}
	for _, opt := range opts {
		opt(ta)
	}
	ta.start()
	return ta
}

func (ta *testAgent) material(name string) *tlsutil.Material {
	m, err := tlsutil.Load(filepath.Join(ta.tlsDir, "ca.pem"), filepath.Join(ta.tlsDir, name+".pem"), filepath.Join(ta.tlsDir, name+"-key.pem"))
	require.NoError(ta.t, err)
	return m
}

func (ta *testAgent) start() {
	t := ta.t
	a, err := New(ta.cfg, Deps{
		Logger: hclog.New(&hclog.LoggerOptions{Name: "agent", Level: hclog.Debug, Output: ta.log}),
		TLS:    ta.material("db-1"),
		NewDriver: func(sc config.ServiceConfig, stateDir string, logger hclog.Logger) (driver.Driver, error) {
			if f, ok := ta.fakes[sc.Name]; ok {
				return f, nil
			}
			if ta.real {
				return RealDrivers(ta.cfg.HostID)(sc, stateDir, logger)
			}
			return nil, fmt.Errorf("no fake for %s", sc.Name)
		},
		LeaseGuard: ta.guard,
		Clock:      ta.clock,
		WriteFile:  ta.writeFile,
		BackupTick: ta.backupTick,
	})
	require.NoError(t, err)
	ta.agent = a
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	ta.client = pb.NewHostAgentClient(ta.dial("s1"))
}

func (ta *testAgent) dial(certName string) *grpc.ClientConn {
	conn, err := grpc.NewClient(ta.agent.Addr(), grpc.WithTransportCredentials(ta.material(certName).ClientCredentials(tlsutil.RoleAgent)))
	require.NoError(ta.t, err)
	ta.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func (ta *testAgent) restart() {
	require.NoError(ta.t, ta.agent.Shutdown(context.Background()))
	ta.start()
}

// testLogWriter logs through t until the test ends, then drops lines:
// real drivers' watchers may log after the test's last cleanup.
type testLogWriter struct {
	t      *testing.T
	mu     sync.Mutex
	closed bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// execute runs one step and returns its progress lines and result.
func (ta *testAgent) execute(req *pb.ExecuteRequest) ([]string, *pb.StepResult, error) {
	stream, err := ta.client.Execute(ctxT(ta.t), req)
	if err != nil {
		return nil, nil, err
	}
	var lines []string
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return lines, nil, fmt.Errorf("stream ended without a result")
		}
		if err != nil {
			return lines, nil, err
		}
		if r := ev.GetResult(); r != nil {
			return lines, r, nil
		}
		lines = append(lines, ev.GetProgress())
	}
}

// observe probes without renewing the lease: it names another site active.
func (ta *testAgent) observe(epoch uint64) *pb.ProbeResponse {
	resp, err := ta.client.Probe(ctxT(ta.t), &pb.ProbeRequest{Epoch: epoch, LeaderId: "s1", ActiveSite: "dr"})
	require.NoError(ta.t, err)
	return resp
}

func TestAgent_Epoch_PersistedAndLowerRefused(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	ta.observe(5)
	data, err := os.ReadFile(filepath.Join(ta.dataDir, "epoch"))
	require.NoError(t, err)
	require.JSONEq(t, `{"epoch":5}`, string(data), "the epoch is on disk before the probe is answered")

	_, err = ta.client.Probe(ctxT(t), &pb.ProbeRequest{Epoch: 4, ActiveSite: "primary"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "epoch 4")
	require.Contains(t, status.Convert(err).Message(), "epoch 5")

	_, _, err = ta.execute(&pb.ExecuteRequest{ExecutionId: "e1", StepId: "s1", Epoch: 4, Action: pb.StepAction_STEP_ACTION_START, Target: "app"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	starts, _ := ta.fakes["app"].Counts()
	require.Zero(t, starts, "a step with a stale epoch must not run")

	ta.restart()
	_, err = ta.client.Probe(ctxT(t), &pb.ProbeRequest{Epoch: 4, ActiveSite: "primary"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "the epoch survives an agent restart")
}

func TestAgent_Step_RunsAtMostOnce(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	req := &pb.ExecuteRequest{ExecutionId: "exec-1", StepId: "start-app", Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "app"}
	_, first, err := ta.execute(req)
	require.NoError(t, err)
	require.True(t, first.GetOk(), first.GetMessage())

	_, again, err := ta.execute(req)
	require.NoError(t, err)
	require.True(t, again.GetReplayed())
	require.Equal(t, first.GetStartedAt().AsTime(), again.GetStartedAt().AsTime())

	ta.restart()
	_, afterRestart, err := ta.execute(req)
	require.NoError(t, err)
	require.True(t, afterRestart.GetReplayed(), "the journal survives an agent restart")
	starts, _ := ta.fakes["app"].Counts()
	require.Equal(t, 1, starts)
}

func TestAgent_Step_ResentWhileRunning_Attaches(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	release := make(chan struct{})
	ta.fakes["app"].Block = release
	req := &pb.ExecuteRequest{ExecutionId: "exec-2", StepId: "start-app", Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "app"}

	results := make([]*pb.StepResult, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, res, err := ta.execute(req)
			if err == nil {
				results[i] = res
			}
		}()
	}
	// Both streams must be attached before the start may finish.
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		starts, _ := ta.fakes["app"].Counts()
		return starts == 1, fmt.Errorf("starts = %d", starts)
	})
	close(release)
	wg.Wait()
	for _, r := range results {
		require.NotNil(t, r)
		require.True(t, r.GetOk())
	}
	starts, _ := ta.fakes["app"].Counts()
	require.Equal(t, 1, starts, "a step re-sent while it runs must attach, not run again")
}

// journalIntent leaves in the journal what a SIGKILLed agent leaves: the
// intent of a step and no result.
func journalIntent(t *testing.T, dataDir, execID, stepID, action, target string) {
	t.Helper()
	dir := filepath.Join(dataDir, "journal", execID)
	require.NoError(t, os.MkdirAll(dir, 0o700))
	rec := fmt.Sprintf(`{"action":%q,"target":%q,"done":false}`, action, target)
	require.NoError(t, os.WriteFile(filepath.Join(dir, stepID+".json"), []byte(rec), 0o600))
}

// A hook the agent died during is never run again: its outcome is unknown
// and running it twice may do twice what must happen once.
func TestAgent_Step_InterruptedHook_NotRerun(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	journalIntent(t, ta.dataDir, "exec-3", "trip", "hook", "trip")

	lines, res, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "exec-3", StepId: "trip", Epoch: 1, Action: pb.StepAction_STEP_ACTION_HOOK, Target: "trip"})
	require.NoError(t, err)
	require.False(t, res.GetOk())
	require.False(t, res.GetVerified())
	require.Contains(t, res.GetMessage(), "interrupted")
	require.Empty(t, lines, "the hook did not run again")
}

// A start the agent died during, whose service is not running, is run
// again (Start is idempotent); a stop whose service is stopped is found
// done without stopping again.
func TestAgent_Step_Interrupted_RerunOrVerified(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStopped, "app": driver.RoleStopped})
	journalIntent(t, ta.dataDir, "exec-4", "start-app", "start", "app")
	journalIntent(t, ta.dataDir, "exec-4", "stop-pg", "stop", "pg")

	_, res, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "exec-4", StepId: "start-app", Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "app"})
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	require.False(t, res.GetVerified())
	starts, _ := ta.fakes["app"].Counts()
	require.Equal(t, 1, starts, "the effect was absent: the start ran again")

	_, res, err = ta.execute(&pb.ExecuteRequest{ExecutionId: "exec-4", StepId: "stop-pg", Epoch: 1, Action: pb.StepAction_STEP_ACTION_STOP, Target: "pg"})
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	require.True(t, res.GetVerified())
	require.Contains(t, res.GetMessage(), "the step's effect is in place: pg is stopped")
	require.Equal(t, "0/3000028", res.GetOutputs()["position"], "the stop's final position is output as the step does")
	_, stops := ta.fakes["pg"].Counts()
	require.Zero(t, stops)
}

// TestAgent_Step_PromoteAnswerLost_ResentVerified: the agent stops while
// a promote runs, after the service became primary; the re-sent step, to
// the restarted agent, finds the service primary and records success,
// verified, without promoting again.
func TestAgent_Step_PromoteAnswerLost_ResentVerified(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	ta.fakes["pg"].PromoteHold = make(chan struct{}) // never released
	req := &pb.ExecuteRequest{ExecutionId: "exec-5", StepId: "promote-pg", Epoch: 2, Action: pb.StepAction_STEP_ACTION_PROMOTE, Target: "pg"}
	first := make(chan error, 1)
	go func() {
		_, _, err := ta.execute(req)
		first <- err
	}()
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		role := ta.fakes["pg"].Role()
		return role == driver.RolePrimary, fmt.Errorf("pg is %s", role)
	})
	ta.restart()
	err := <-first
	require.Equal(t, codes.Unavailable, status.Code(err), "the leader sees a transient error and re-sends: %v", err)

	lines, res, err := ta.execute(req)
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	require.True(t, res.GetVerified())
	require.Contains(t, res.GetMessage(), "the step's effect is in place: pg is primary at "+driver.FakePosition)
	require.Equal(t, driver.FakePosition, res.GetOutputs()["position"])
	require.Contains(t, strings.Join(lines, "\n"), "checking whether its effect is in place")
	promotes, _ := ta.fakes["pg"].Transitions()
	require.Equal(t, 1, promotes, "the promote did not run again")

	// The journal says so, and answers the next re-send from it.
	data, err := os.ReadFile(filepath.Join(ta.dataDir, "journal", "exec-5", "promote-pg.json"))
	require.NoError(t, err)
	var rec journalRecord
	require.NoError(t, json.Unmarshal(data, &rec))
	require.True(t, rec.Done && rec.Result.OK && rec.Result.Verified, "%s", data)
	_, again, err := ta.execute(req)
	require.NoError(t, err)
	require.True(t, again.GetReplayed() && again.GetVerified() && again.GetOk())
}

func TestAgent_Lease_LapseFencesPrimaries(t *testing.T) {
	ta := newTestAgent(t, 300*time.Millisecond, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	// The leader's start step vouches for one lease_ttl; no probe renews it.
	_, res, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "start", Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "app"})
	require.NoError(t, err)
	require.True(t, res.GetOk())

	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		role := ta.fakes["app"].Role()
		return role == driver.RoleStopped, fmt.Errorf("app is %s", role)
	})
	resp := ta.observe(1)
	require.True(t, resp.GetFenced())
	require.Contains(t, resp.GetFenceReason(), "lease expired")
	require.Equal(t, string(driver.RoleFenced), serviceRole(resp, "app"))
	require.Equal(t, string(driver.RoleStandby), serviceRole(resp, "pg"), "standbys are not fenced")
	app := serviceStatus(resp, "app")
	require.Equal(t, pb.FenceCause_FENCE_CAUSE_LEASE_LAPSED, app.GetFenceCause(), "a lease the leader granted lapsed")
	require.Equal(t, uint64(1), app.GetFenceEpoch())
	require.Equal(t, pb.FenceCause_FENCE_CAUSE_UNSPECIFIED, serviceStatus(resp, "pg").GetFenceCause())
}

// TestAgent_Lease_RenewalKeepsPrimary renews a 2s lease every 100ms of
// virtual time for 3s, past the boot window: the primary keeps running.
func TestAgent_Lease_RenewalKeepsPrimary(t *testing.T) {
	ctx := ctxT(t)
	clk := clock.NewFake(time.Now())
	start := clk.Now()
	ta := newTestAgent(t, 2*time.Second, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RolePrimary}, func(ta *testAgent) {
		ta.clock = clk
	})
	for now := start; now.Before(start.Add(3 * time.Second)); now = now.Add(100 * time.Millisecond) {
		advanceTo(t, ctx, clk, now)
		_, err := ta.client.Probe(ctx, &pb.ProbeRequest{Epoch: 1, ActiveSite: "primary", LeaseTtlMs: 2000})
		require.NoError(t, err)
	}
	require.Equal(t, driver.RolePrimary, ta.fakes["app"].Role(), "renewals within lease_ttl keep the primary running")
}

func TestAgent_BootFencing_AdoptedPrimaryWithoutLease(t *testing.T) {
	ta := newTestAgent(t, 300*time.Millisecond, map[string]driver.Role{"pg": driver.RolePrimary, "app": driver.RolePrimary})
	// Nobody renews: both adopted primaries are fenced once the boot
	// window of one lease_ttl passes, and nothing was started.
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		pg, app := ta.fakes["pg"].Role(), ta.fakes["app"].Role()
		return pg == driver.RoleStopped && app == driver.RoleStopped, fmt.Errorf("pg %s, app %s", pg, app)
	})
	for _, f := range ta.fakes {
		starts, _ := f.Counts()
		require.Zero(t, starts, "an agent never starts a service on its own at boot")
	}
	resp, err := ta.client.Probe(ctxT(t), &pb.ProbeRequest{ObserveOnly: true})
	require.NoError(t, err)
	require.Equal(t, pb.FenceCause_FENCE_CAUSE_BOOT_WINDOW, serviceStatus(resp, "pg").GetFenceCause())
}

func TestAgent_Fence_OtherSiteActiveIsNotALapse(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	_, res, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "start", Epoch: 1, Action: pb.StepAction_STEP_ACTION_START, Target: "app"})
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	// A leader names another site active: the lease is revoked and the
	// primary fenced at once, for a cause no restart in place accepts.
	ta.observe(1)
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		role := ta.fakes["app"].Role()
		return role == driver.RoleStopped, fmt.Errorf("app is %s", role)
	})
	app := serviceStatus(ta.observe(1), "app")
	require.Equal(t, pb.FenceCause_FENCE_CAUSE_OTHER_SITE_ACTIVE, app.GetFenceCause())
	require.Equal(t, uint64(1), app.GetFenceEpoch())
	require.False(t, structs.RestartableInPlace(app.GetFenceCause()))
}

func TestAgent_StaleEpoch_TypedRefusal(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	ta.observe(3)
	cases := []struct {
		name string
		call func() error
	}{
		{"execute", func() error {
			_, _, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "1", Epoch: 2, Action: pb.StepAction_STEP_ACTION_STOP, Target: "app"})
			return err
		}},
		{"probe", func() error {
			_, err := ta.client.Probe(context.Background(), &pb.ProbeRequest{Epoch: 2, LeaderId: "s1"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
			info := rpcerr.Info(err)
			require.NotNil(t, info, "the refusal names both epochs as fields")
			require.Equal(t, pb.ErrorReason_ERROR_REASON_STALE_EPOCH, info.GetReason())
			require.Equal(t, uint64(3), info.GetEpoch())
			require.Equal(t, uint64(2), info.GetRequestEpoch())
		})
	}
}

func TestAgent_BadInput_ClearErrorsAndKeepsServing(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	ta.observe(3)
	cases := []struct {
		name string
		req  *pb.ExecuteRequest
		code codes.Code
		want string
	}{
		{"unknown service", &pb.ExecuteRequest{ExecutionId: "e", StepId: "1", Epoch: 3, Action: pb.StepAction_STEP_ACTION_START, Target: "redis"}, codes.InvalidArgument, `service "redis" is not declared`},
		{"undeclared hook", &pb.ExecuteRequest{ExecutionId: "e", StepId: "2", Epoch: 3, Action: pb.StepAction_STEP_ACTION_HOOK, Target: "rm-rf"}, codes.InvalidArgument, `hook "rm-rf" is not declared`},
		{"missing ids", &pb.ExecuteRequest{Epoch: 3, Action: pb.StepAction_STEP_ACTION_START, Target: "app"}, codes.InvalidArgument, "malformed step"},
		{"unknown action", &pb.ExecuteRequest{ExecutionId: "e", StepId: "3", Epoch: 3, Action: pb.StepAction(99), Target: "app"}, codes.InvalidArgument, `unknown action 99`},
		{"bad step id", &pb.ExecuteRequest{ExecutionId: "e", StepId: "../../etc", Epoch: 3, Action: pb.StepAction_STEP_ACTION_STOP, Target: "app"}, codes.InvalidArgument, "must match"},
		{"bad upstream", &pb.ExecuteRequest{ExecutionId: "e", StepId: "5", Epoch: 3, Action: pb.StepAction_STEP_ACTION_DEMOTE, Target: "pg", Args: map[string]string{"upstream_host": "h; rm -rf /", "upstream_port": "5432"}}, codes.InvalidArgument, "upstream_host"},
		{"wrong epoch", &pb.ExecuteRequest{ExecutionId: "e", StepId: "6", Epoch: 2, Action: pb.StepAction_STEP_ACTION_STOP, Target: "app"}, codes.FailedPrecondition, "epoch 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ta.execute(tc.req)
			require.Equal(t, tc.code, status.Code(err), "%v", err)
			require.Contains(t, status.Convert(err).Message(), tc.want)
		})
	}
	require.Equal(t, uint64(3), ta.observe(3).GetEpoch(), "the agent keeps serving after bad input")
}

func TestAgent_Hook_RunsDeclaredCommandOnly(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	_, res, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "trip", Epoch: 1, Action: pb.StepAction_STEP_ACTION_HOOK, Target: "trip",
		Args: map[string]string{"command": "/bin/rm -rf /"}})
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	require.Equal(t, "circuit breaker tripped", res.GetOutputs()["output"], "args never change the declared command")

	_, res, err = ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "broken", Epoch: 1, Action: pb.StepAction_STEP_ACTION_HOOK, Target: "broken"})
	require.NoError(t, err)
	require.False(t, res.GetOk())
	require.Contains(t, res.GetMessage(), "hook broken")
}

func TestAgent_Permissions(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	cli := pb.NewHostAgentClient(ta.dial("ops"))
	_, err := cli.Probe(ctxT(t), &pb.ProbeRequest{Epoch: 1})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "only servers may drive an agent")
}

func TestAgent_LoadBalancerEndpoint(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: ta.material("ops").ClientConfig(tlsutil.RoleAgent)}}
	get := func(svc string) (int, map[string]any) {
		resp, err := client.Get("https://" + ta.agent.HTTPAddr() + "/v1/role/" + svc)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body
	}
	code, body := get("pg")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "standby", body["role"])

	_, res, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "promote", Epoch: 1, Action: pb.StepAction_STEP_ACTION_PROMOTE, Target: "pg"})
	require.NoError(t, err)
	require.True(t, res.GetOk())
	require.Equal(t, "0/3000060", res.GetOutputs()["position"])
	code, body = get("pg")
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.Equal(t, true, body["lease_valid"])

	code, _ = get("nope")
	require.Equal(t, http.StatusNotFound, code)

	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ta.material("ops").CAPool, ServerName: tlsutil.RoleDNSName(tlsutil.RoleAgent)}}}
	_, err = noCert.Get("https://" + ta.agent.HTTPAddr() + "/v1/role/pg")
	require.Error(t, err, "the endpoint requires a client certificate")
}

func serviceStatus(resp *pb.ProbeResponse, name string) *pb.ServiceStatus {
	for _, s := range resp.GetServices() {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

func serviceRole(resp *pb.ProbeResponse, name string) string {
	for _, s := range resp.GetServices() {
		if s.GetName() == name {
			return structs.RoleName(s.GetRole())
		}
	}
	return ""
}

// TestAgent_Metrics_MatchProbe: the agent's /metrics, parsed with
// Prometheus's text parser, says what its probe answer says: epoch,
// lease, each service's role (a state set) and health, before and after
// a promotion.
func TestAgent_Metrics_MatchProbe(t *testing.T) {
	ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: ta.material("ops").ClientConfig(tlsutil.RoleAgent)}}
	scrape := func() metricstest.Families {
		f, err := metricstest.Scrape(ctxT(t), client, "https://"+ta.agent.HTTPAddr()+"/metrics")
		require.NoError(t, err)
		return f
	}
	value := func(f metricstest.Families, name string, labels map[string]string) float64 {
		v, ok, err := f.Value(name, labels)
		require.NoError(t, err)
		require.True(t, ok, "no series %s%v", name, labels)
		return v
	}
	role := func(f metricstest.Families, svc string) string {
		current := ""
		for _, r := range hostmetrics.Roles {
			if value(f, "drplane_agent_service_role", map[string]string{"service": svc, "role": r}) == 1 {
				require.Empty(t, current, "%s has one role", svc)
				current = r
			}
		}
		return current
	}

	_, res, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "promote", Epoch: 3, Action: pb.StepAction_STEP_ACTION_PROMOTE, Target: "pg"})
	require.NoError(t, err)
	require.True(t, res.GetOk(), res.GetMessage())
	f := scrape()
	resp := ta.agent.probeResponse(ctxT(t))
	host := map[string]string{"host": resp.GetHostId(), "site": resp.GetSite()}
	require.Equal(t, float64(resp.GetEpoch()), value(f, "drplane_agent_epoch", host))
	require.Equal(t, 3.0, value(f, "drplane_agent_epoch", host))
	require.Equal(t, 1.0, value(f, "drplane_agent_lease_valid", host))
	require.InDelta(t, float64(resp.GetLease().GetRemainingMs())/1000, value(f, "drplane_agent_lease_remaining_seconds", host), 5)
	require.Equal(t, "primary", role(f, "pg"))
	require.Equal(t, "stopped", role(f, "app"))
	require.Equal(t, 0.0, value(f, "drplane_agent_service_healthy", map[string]string{"service": "app"}))
	require.Positive(t, f.Series("process_resident_memory_bytes"), "the process's own metrics")
}

// TestAgent_CheckEndpoint_NoClientCertificate: with a check_endpoint
// block, the role, health and metrics endpoints answer a checker that
// has no client certificate, over plain HTTP or server-only TLS, as on
// the mutual-TLS port; nothing else is served there, and the mutual-TLS
// port still refuses a client without a certificate.
func TestAgent_CheckEndpoint_NoClientCertificate(t *testing.T) {
	for _, mode := range []string{config.CheckTLSNone, config.CheckTLSServer} {
		t.Run(mode, func(t *testing.T) {
			ta := newTestAgent(t, time.Hour, map[string]driver.Role{"pg": driver.RoleStandby, "app": driver.RoleStopped}, func(ta *testAgent) {
				ta.cfg.CheckEndpoint = &config.CheckEndpointConfig{Listen: "127.0.0.1:0", TLS: mode}
			})
			scheme, client := "http", &http.Client{Timeout: 10 * time.Second}
			if mode == config.CheckTLSServer {
				// The checker verifies the agent by the cluster CA, and
				// presents nothing.
				scheme = "https"
				client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ta.material("ops").CAPool, ServerName: tlsutil.RoleDNSName(tlsutil.RoleAgent)}}
			}
			base := scheme + "://" + ta.agent.CheckAddr()
			get := func(method, path string) int {
				req, err := http.NewRequestWithContext(ctxT(t), method, base+path, nil)
				require.NoError(t, err)
				resp, err := client.Do(req)
				require.NoError(t, err)
				_ = resp.Body.Close()
				return resp.StatusCode
			}
			require.Equal(t, http.StatusServiceUnavailable, get(http.MethodGet, "/v1/role/pg"), "a standby")
			_, res, err := ta.execute(&pb.ExecuteRequest{ExecutionId: "e", StepId: "promote", Epoch: 1, Action: pb.StepAction_STEP_ACTION_PROMOTE, Target: "pg"})
			require.NoError(t, err)
			require.True(t, res.GetOk(), res.GetMessage())
			require.Equal(t, http.StatusOK, get(http.MethodGet, "/v1/role/pg"), "the primary with a valid lease")
			require.Equal(t, http.StatusOK, get(http.MethodGet, "/v1/health"))
			require.Equal(t, http.StatusOK, get(http.MethodGet, "/metrics"))
			require.Equal(t, http.StatusMethodNotAllowed, get(http.MethodPost, "/v1/role/pg"), "read-only")
			require.Equal(t, http.StatusNotFound, get(http.MethodGet, "/v1/execute"))

			noCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ta.material("ops").CAPool, ServerName: tlsutil.RoleDNSName(tlsutil.RoleAgent)}}}
			_, err = noCert.Get("https://" + ta.agent.HTTPAddr() + "/v1/role/pg")
			require.Error(t, err, "the mutual-TLS port still asks for a certificate")
		})
	}
}
