package controlplane

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/clock"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// stepAgent is a HostAgent that answers Execute with success, after
// refusing the first failFirst calls as Unavailable, and records the
// (execution id, step id) of every call.
type stepAgent struct {
	pb.UnimplementedHostAgentServer
	mu        sync.Mutex
	failFirst int
	calls     []string
	// hang, when set, makes Execute hold until the call ends.
	hang bool
}

func (a *stepAgent) Execute(req *pb.ExecuteRequest, stream pb.HostAgent_ExecuteServer) error {
	a.mu.Lock()
	a.calls = append(a.calls, req.GetExecutionId()+"/"+req.GetStepId())
	fail := len(a.calls) <= a.failFirst
	a.mu.Unlock()
	if fail {
		return status.Error(codes.Unavailable, "agent is shutting down")
	}
	if a.hang {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return stream.Send(&pb.ExecuteResponse{Event: &pb.ExecuteResponse_Result{Result: &pb.StepResult{Ok: true}}})
}

func (a *stepAgent) callIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}

// stepSendFixture is a leader's step sender and an agent address whose
// server the test starts and stops.
type stepSendFixture struct {
	srv   *Server
	agent structs.Agent
	creds *tlsutil.Material
}

func newStepSendFixture(t *testing.T) *stepSendFixture {
	dir := t.TempDir()
	require.NoError(t, tlsutil.CreateCA(dir))
	for name, role := range map[string]tlsutil.Role{"s1": tlsutil.RoleServer, "db-1": tlsutil.RoleAgent} {
		_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: dir, Name: name, Role: role})
		require.NoError(t, err)
	}
	load := func(name string) *tlsutil.Material {
		m, err := tlsutil.Load(filepath.Join(dir, "ca.pem"), filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
		require.NoError(t, err)
		return m
	}
	cfg := &config.ServerConfig{NodeID: "s1"}
	cfg.Failover.FailoverTimeout, cfg.Failover.ProbeTimeout = 5*time.Second, time.Second
	srv := &Server{config: cfg, logger: hclog.NewNullLogger(), clock: clock.Real(), probes: newProbeTable(), agentConns: newAgentConnPool(load("s1"))}
	t.Cleanup(srv.agentConns.close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return &stepSendFixture{srv: srv, agent: structs.Agent{HostID: "db-1", Address: addr}, creds: load("db-1")}
}

// serve runs agent on the fixture's address until the returned stop.
func (f *stepSendFixture) serve(t *testing.T, agent *stepAgent) (stop func()) {
	ln, err := net.Listen("tcp", f.agent.Address)
	require.NoError(t, err)
	g := grpc.NewServer(grpc.Creds(f.creds.ServerCredentials(nil)))
	pb.RegisterHostAgentServer(g, agent)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return g.Stop
}

func (f *stepSendFixture) send(ctx context.Context, how stepDelivery) error {
	req := &pb.ExecuteRequest{ExecutionId: "ex-1", StepId: "demote:postgres@db-1", Epoch: 2, Action: pb.StepAction_STEP_ACTION_DEMOTE, Target: "postgres"}
	_, err := f.srv.sendStep(ctx, f.agent, req, func(string) {}, how)
	return err
}

// A step sent while the agent is down (its connection failing, as after
// the old primary's host restarts) waits for the agent and reaches it
// once it is back, instead of failing on the first Unavailable; a fence
// still fails at once.
func TestSendStep_WaitsForAgentThatComesBack(t *testing.T) {
	f := newStepSendFixture(t)
	agent := &stepAgent{}
	stop := f.serve(t, agent)
	require.NoError(t, f.send(testCtx(t), deliverPatiently))
	stop() // the shared connection breaks and starts reconnecting

	ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
	defer cancel()
	err := f.send(ctx, deliverOnce)
	require.Equal(t, codes.Unavailable, status.Code(err), "a fence is sent once: %v", err)

	done := make(chan error, 1)
	go func() { done <- f.send(testCtx(t), deliverPatiently) }()
	time.Sleep(1500 * time.Millisecond) // the agent is down meanwhile
	f.serve(t, agent)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the step did not reach the agent that came back")
	}
	ids := agent.callIDs()
	require.Equal(t, "ex-1/demote:postgres@db-1", ids[len(ids)-1])
}

// A step the agent answers Unavailable (shutting down) is re-sent with
// the same execution and step ids, which the agent's journal makes safe.
func TestSendStep_ResendsSameStepAfterUnavailable(t *testing.T) {
	f := newStepSendFixture(t)
	agent := &stepAgent{failFirst: 2}
	f.serve(t, agent)
	require.NoError(t, f.send(testCtx(t), deliverPatiently))
	require.Equal(t, []string{"ex-1/demote:postgres@db-1", "ex-1/demote:postgres@db-1", "ex-1/demote:postgres@db-1"}, agent.callIDs())
}

// A host the prober has not heard from for failover_timeout is given up
// at once: the step fails naming the silence instead of waiting out its
// timeout.
func TestSendStep_GivesUpHostSilentForFailoverTimeout(t *testing.T) {
	f := newStepSendFixture(t)
	f.srv.probes.put("db-1", probeResult{sentAt: time.Now().Add(-6 * time.Second), err: errors.New("connection refused")})
	start := time.Now()
	err := f.send(testCtx(t), deliverPatiently)
	require.ErrorContains(t, err, "host db-1 has not answered the leader's probes for")
	require.Less(t, time.Since(start), 5*time.Second)
}

// A fence (sent once) to a host that is gone without refusing connections
// (it accepts TCP but never completes the TLS handshake, as a host whose
// packets are dropped never answers the SYN) ends within probe_timeout
// instead of waiting out gRPC's 20s connect timeout.
func TestSendStep_FenceOfSilentHost_EndsWithinProbeTimeout(t *testing.T) {
	f := newStepSendFixture(t)
	f.srv.config.Failover.ProbeTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", f.agent.Address)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() }) // never accepted: the handshake hangs
	start := time.Now()
	err = f.send(testCtx(t), deliverOnce)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "no connection to the agent within 300ms")
	require.Less(t, time.Since(start), 5*time.Second)
}

// A fence that reached its host but whose host then stops answering the
// leader's probes ends once a probe sent after it went unanswered,
// instead of waiting out the step's timeout.
func TestSendStep_FenceEndsWhenItsHostGoesSilent(t *testing.T) {
	f := newStepSendFixture(t)
	f.serve(t, &stepAgent{hang: true})
	done := make(chan error, 1)
	go func() { done <- f.send(testCtx(t), deliverOnce) }()
	time.Sleep(300 * time.Millisecond) // the fence is in flight
	select {
	case err := <-done:
		t.Fatalf("the fence ended while its host answered: %v", err)
	default:
	}
	f.srv.probes.put("db-1", probeResult{sentAt: time.Now(), err: errors.New("context deadline exceeded")})
	select {
	case err := <-done:
		require.ErrorContains(t, err, "the host stopped answering the leader's probes while the step ran")
	case <-time.After(10 * time.Second):
		t.Fatal("the fence did not end when its host went silent")
	}
}
