package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

const (
	// readyCheckInterval is how often a step waiting for its agent's
	// connection looks again at whether the prober has given the host up.
	readyCheckInterval = time.Second
	// resendBackoffMax bounds the pause between re-sends of a step.
	resendBackoffMax = time.Second
)

// newAgentConnPool is the pool of the leader's connections to agents.
func newAgentConnPool(m *tlsutil.Material) *connPool { return newConnPool(m, tlsutil.RoleAgent) }

// stepDelivery says how hard sendStep tries to reach the agent.
type stepDelivery int

const (
	// deliverPatiently waits for a ready connection and re-sends the
	// step after a transient Unavailable until ctx ends or the prober
	// gives the host up: an agent that restarts, or whose connection is
	// being re-established, gets the step once it is back. Re-sending is
	// safe because the agent journals (execution id, step id) and answers
	// a re-sent step with the recorded outcome or attaches to the run in
	// progress (invariant 3).
	deliverPatiently stepDelivery = iota
	// deliverOnce fails on the first transport error: a fence of a host
	// the plan fails away from must not hold up the failover; that host
	// fences itself when its lease lapses.
	deliverOnce
)

// sendStep sends one step to an agent and returns its result, passing
// each progress line to progress.
func (s *Server) sendStep(ctx context.Context, agent structs.Agent, req *pb.ExecuteRequest, progress func(string), how stepDelivery) (*pb.StepResult, error) {
	pause := 100 * time.Millisecond
	for sends := 1; ; sends++ {
		res, err := s.streamOnAgent(ctx, agent, req, progress, how)
		var givenUp *givenUpError
		if err == nil || how == deliverOnce || status.Code(err) != codes.Unavailable || errors.As(err, &givenUp) {
			return res, err
		}
		if why := s.hostGivenUp(agent.HostID); why != "" {
			return nil, fmt.Errorf("%w; %s", err, why)
		}
		s.logger.Debug("re-sending step after a transient error", "host_id", agent.HostID, "execution_id", req.GetExecutionId(), "step_id", req.GetStepId(), "sends", sends, "error", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (sent %d times until the step's timeout)", err, sends)
		case <-time.After(pause):
		}
		pause = min(2*pause, resendBackoffMax)
	}
}

// givenUpError is a step not sent because the prober gave its host up;
// it says why. Its code is Unavailable, as any failure to reach the agent.
type givenUpError struct{ why string }

func (e *givenUpError) Error() string { return e.why }

// GRPCStatus makes status.Code see Unavailable.
func (e *givenUpError) GRPCStatus() *status.Status { return status.New(codes.Unavailable, e.why) }

// hostGivenUp says why the leader stops trying to reach a host: its
// probes have gone unanswered for failover_timeout, the time after which
// a silent host counts as lost (DESIGN.md section 5). Empty while the
// host answers, or while this server has no probe of it.
func (s *Server) hostGivenUp(hostID string) string {
	r, ok := s.probes.get(hostID)
	if !ok || r.err == nil || r.firstMissAt.IsZero() {
		return ""
	}
	silent := s.clock.Now().Sub(r.firstMissAt)
	if silent < s.config.Failover.FailoverTimeout {
		return ""
	}
	return fmt.Sprintf("host %s has not answered the leader's probes for %s (%v)", hostID, silent.Round(100*time.Millisecond), r.err)
}

// streamOnAgent sends one step and passes each progress line to progress
// until the result arrives. A patient delivery first waits for a ready
// connection, looking every readyCheckInterval whether the host was
// given up. Transport errors keep their status code through the
// wrapping (status.Code unwraps).
func (s *Server) streamOnAgent(ctx context.Context, agent structs.Agent, req *pb.ExecuteRequest, progress func(string), how stepDelivery) (*pb.StepResult, error) {
	fail := func(err error) error {
		return fmt.Errorf("%s %s on %s: %w", structs.ActionName(req.GetAction()), req.GetTarget(), agent.HostID, err)
	}
	conn, err := s.agentConns.get(agent.Address)
	if err != nil {
		return nil, err
	}
	var opts []grpc.CallOption
	switch how {
	case deliverPatiently:
		if err := s.waitReady(ctx, conn, agent.HostID); err != nil {
			return nil, fail(err)
		}
		opts = append(opts, grpc.WaitForReady(true))
	case deliverOnce:
		if err := s.connectWithin(ctx, conn, s.config.Failover.ProbeTimeout); err != nil {
			return nil, fail(err)
		}
		var stop func()
		ctx, stop = s.cancelWhenSilent(ctx, agent.HostID)
		defer stop()
	}
	stream, err := pb.NewHostAgentClient(conn).Execute(ctx, req, opts...)
	if err != nil {
		return nil, fail(err)
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s %s on %s: stream ended without a result", structs.ActionName(req.GetAction()), req.GetTarget(), agent.HostID)
		}
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errWentSilent) {
				err = cause
			}
			return nil, fail(err)
		}
		if r := ev.GetResult(); r != nil {
			return r, nil
		}
		progress(ev.GetProgress())
	}
}

// errWentSilent ends a step sent once whose host stopped answering the
// leader's probes while it ran.
var errWentSilent = errors.New("the host stopped answering the leader's probes while the step ran; it fences itself when its lease lapses")

// connectWithin waits until conn is ready, at most d (probe_timeout): a
// step sent once (a fence of the site being failed away from) must not
// wait out a TCP connect to a host that is gone, which takes gRPC's 20s
// minimum connect timeout when the host drops packets instead of
// refusing.
func (s *Server) connectWithin(ctx context.Context, conn *grpc.ClientConn, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		st := conn.GetState()
		switch st {
		case connectivity.Ready:
			return nil
		case connectivity.Idle:
			conn.Connect()
		case connectivity.TransientFailure, connectivity.Shutdown:
			return status.Errorf(codes.Unavailable, "no connection to the agent (%s)", st)
		}
		if !conn.WaitForStateChange(wctx, st) {
			return status.Errorf(codes.Unavailable, "no connection to the agent within %s (%s); it fences itself when its lease lapses", d, st)
		}
	}
}

// cancelWhenSilent returns ctx cancelled, with cause errWentSilent, once a
// probe of hostID sent after now goes unanswered; stop releases it.
func (s *Server) cancelWhenSilent(ctx context.Context, hostID string) (context.Context, func()) {
	since := s.clock.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if r, ok := s.probes.get(hostID); ok && r.err != nil && !r.sentAt.Before(since) {
				cancel(errWentSilent)
				return
			}
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}

// waitReady waits until conn is ready, ctx ends, or the prober gives the
// host up. An idle connection is asked to connect.
func (s *Server) waitReady(ctx context.Context, conn *grpc.ClientConn, hostID string) error {
	for {
		st := conn.GetState()
		if st == connectivity.Ready {
			return nil
		}
		if st == connectivity.Idle {
			conn.Connect()
		}
		if why := s.hostGivenUp(hostID); why != "" {
			return &givenUpError{fmt.Sprintf("no connection to the agent (%s); %s", st, why)}
		}
		wctx, cancel := context.WithTimeout(ctx, readyCheckInterval)
		conn.WaitForStateChange(wctx, st)
		cancel()
		if ctx.Err() != nil {
			return status.Errorf(codes.Unavailable, "no connection to the agent before the step's timeout (%s)", st)
		}
	}
}
