package hostagent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/rpcerr"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/tlsutil"
	"github.com/drplane/drplane/internal/wirecheck"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// hostAgentEndpoint serves the HostAgent gRPC service.
type hostAgentEndpoint struct {
	pb.UnimplementedHostAgentServer
	agent *Agent
}

// methodRoles says which certificate roles may call each method: only
// servers (the leader) drive the agent; peer agents may only pull syncs.
var methodRoles = map[string][]tlsutil.Role{
	pb.HostAgent_Probe_FullMethodName:         {tlsutil.RoleServer},
	pb.HostAgent_Execute_FullMethodName:       {tlsutil.RoleServer},
	pb.HostAgent_SyncTunnel_FullMethodName:    {tlsutil.RoleAgent},
	pb.HostAgent_ListSnapshots_FullMethodName: {tlsutil.RoleServer},
	pb.HostAgent_ListBackups_FullMethodName:   {tlsutil.RoleServer},
}

// setupGRPC creates the gRPC server: mutual TLS, the role check, then the
// bounds on every request's ids and strings (wirecheck).
func (a *Agent) setupGRPC() {
	a.grpcServer = grpc.NewServer(
		grpc.Creds(a.tls.ServerCredentials(a.logger.Named("grpc"))),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := a.authorize(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}, wirecheck.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := a.authorize(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}, wirecheck.StreamServerInterceptor()),
	)
	pb.RegisterHostAgentServer(a.grpcServer, &hostAgentEndpoint{agent: a})
}

func (a *Agent) authorize(ctx context.Context, method string) error {
	id, err := tlsutil.IdentityFromContext(ctx)
	if err != nil || !slices.Contains(methodRoles[method], id.Role) {
		a.logger.Warn("refused request", "method", method, "caller", id.Name, "role", id.Role)
		return status.Errorf(codes.PermissionDenied, "a %s certificate (%s) may not call %s", id.Role, id.Name, method)
	}
	return nil
}

// Probe reports the host and renews the lease when the caller leads an
// epoch at least as new as the agent's and names this site active.
func (e *hostAgentEndpoint) Probe(ctx context.Context, req *pb.ProbeRequest) (*pb.ProbeResponse, error) {
	a := e.agent
	if req.GetObserveOnly() {
		// Another server checking that this host answers: report,
		// change nothing.
		return a.probeResponse(ctx), nil
	}
	if err := a.epoch.observe(req.GetEpoch()); err != nil {
		return nil, toStatus(err)
	}
	receivedAt := a.clock.Now()
	a.probeReceipts.record(req.GetLeaderId(), req.GetProbeId(), receivedAt)
	a.mu.Lock()
	a.activeSite, a.leaderID = req.GetActiveSite(), req.GetLeaderId()
	a.mu.Unlock()
	a.setSyncSources(req.GetSyncSources())
	if req.GetLeaseTtlMs() > 0 {
		a.lease.learnTTL(time.Duration(req.GetLeaseTtlMs()) * time.Millisecond)
	}
	switch {
	case req.GetActiveSite() == a.config.Site && req.GetLeaseTtlMs() > 0:
		from := receivedAt
		if anchor := req.GetLeaseAnchor(); anchor != 0 {
			at, ok := a.probeReceipts.receivedAt(req.GetLeaderId(), anchor)
			if !ok {
				// Not remembered (this agent restarted since, say): the
				// leader counts the lease from that probe's answer, so
				// a lease counted from anything later could outlive its
				// count. The next probe anchors on this one.
				a.logger.Debug("renewal anchored on a probe not remembered: not renewed", "leader_id", req.GetLeaderId(), "lease_anchor", anchor)
				break
			}
			from = at
		}
		a.lease.renew(from, time.Duration(req.GetLeaseTtlMs())*time.Millisecond, req.GetEpoch())
		a.recordLease(a.clock.Now())
	case req.GetActiveSite() != "" && req.GetActiveSite() != a.config.Site:
		// The leader says another site is active: fence now rather than
		// at the end of the lease (invariant 1).
		now := a.clock.Now()
		a.lease.revoke(now, req.GetEpoch())
		a.recordLease(now)
	}
	return a.probeResponse(ctx), nil
}

// ceilMillis is d in whole milliseconds, rounded up: the leader counts
// the lease an agent reports as running that long (controlplane
// leaseTable.report), so it must not come out shorter than it is.
func ceilMillis(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64((d + time.Millisecond - 1) / time.Millisecond)
}

func (a *Agent) probeResponse(ctx context.Context) *pb.ProbeResponse {
	now := a.clock.Now()
	valid, remaining, epoch, granted := a.lease.snapshot(now)
	resp := &pb.ProbeResponse{
		HostId: a.config.HostID, Site: a.config.Site, Epoch: a.epoch.current(),
		Lease: &pb.Lease{Valid: valid, Epoch: epoch, RemainingMs: ceilMillis(remaining), ExpiresAt: timestamppb.New(now.Add(remaining)),
			Granted: valid && granted},
		StartedAt: timestamppb.New(a.startedAt), Now: timestamppb.New(now),
		LeaseAnchors: true,
	}
	for _, name := range a.order {
		svc := a.services[name]
		resp.Services = append(resp.Services, a.serviceStatus(ctx, svc))
		if fenced, f := svc.isFenced(); fenced {
			resp.Fenced, resp.FenceReason = true, f.reason
		}
	}
	resp.Syncs = a.syncStatuses()
	resp.Backups = a.backupStatuses()
	resp.Problems = a.dataDir.problems()
	return resp
}

// serviceStatus is one service's role, health and replication.
func (a *Agent) serviceStatus(ctx context.Context, svc *service) *pb.ServiceStatus {
	out := &pb.ServiceStatus{Name: svc.cfg.Name, Driver: svc.cfg.Driver, DependsOn: svc.cfg.DependsOn}
	st, err := svc.status(ctx)
	if err != nil {
		out.Role, out.Message = pb.ServiceRole_SERVICE_ROLE_UNKNOWN, err.Error()
		return out
	}
	out.Role, out.Message = structs.RoleToProto(string(st.Role)), st.Message
	out.Healthy = st.Role != driver.RoleStopped && st.Role != driver.RoleFenced
	if fenced, f := svc.isFenced(); fenced && st.Role == driver.RoleFenced {
		out.FenceCause, out.FenceEpoch = f.cause, f.epoch
	}
	if svc.monitor != nil {
		r := svc.monitor.Latest()
		out.Healthy = out.Healthy && r.Healthy
		if r.Err != "" {
			out.Message = r.Err
		}
	}
	// Drill copies hold no role: they are only named, so an operator
	// sees why the host runs a second instance.
	if ids := a.drillIDs(svc.cfg.Name); len(ids) > 0 {
		out.Message += "; drill copies: " + strings.Join(ids, ", ")
	}
	if r := st.Replication; r != nil {
		out.Replication = replicationToProto(r)
	}
	return out
}

// replicationToProto is the wire form of a data service's replication
// state; the standbys' states become enums here, once.
func replicationToProto(r *driver.Replication) *pb.Replication {
	out := &pb.Replication{
		Position: r.Position, ReceivePosition: r.ReceivePosition,
		LagMs: uint64(r.Lag.Milliseconds()), LagBytes: r.LagBytes,
		SynchronousStandbyNames: r.SynchronousStandbyNames, ApplicationName: r.ApplicationName,
	}
	if !r.LastReplayAt.IsZero() {
		out.LastReplayAt = timestamppb.New(r.LastReplayAt)
	}
	if !r.LastReceivedAt.IsZero() {
		out.LastReceivedAt = timestamppb.New(r.LastReceivedAt)
	}
	for _, s := range r.Standbys {
		out.Standbys = append(out.Standbys, &pb.StandbyReplication{
			ApplicationName: s.ApplicationName, ClientAddr: s.ClientAddr,
			State: structs.WalSenderStateToProto(s.State), SyncState: structs.SyncStateToProto(s.SyncState),
			FlushPosition: s.FlushPosition, ReplayPosition: s.ReplayPosition,
		})
	}
	return out
}

// Execute runs one step at most once per (execution id, step id) and
// streams its progress and result. The step runs on the agent's own
// context: a leader that disconnects does not cancel it, and a re-sent
// step attaches to it. A re-sent step this agent (or the one before it)
// stopped during is resumed: its effect is checked on the service, and an
// idempotent one runs again when the effect is absent (resume.go).
func (e *hostAgentEndpoint) Execute(req *pb.ExecuteRequest, stream grpc.ServerStreamingServer[pb.ExecuteResponse]) error {
	a := e.agent
	run, err := a.prepareStep(req)
	if err != nil {
		a.logger.Warn("refused step", "execution_id", req.GetExecutionId(), "step_id", req.GetStepId(), "action", actionName(req), "target", req.GetTarget(), "error", err)
		return toStatus(err)
	}
	if err := a.epoch.observe(req.GetEpoch()); err != nil {
		return toStatus(err)
	}
	resume := a.resumption(req, run)
	c, err := a.journal.begin(req.GetExecutionId(), req.GetStepId(), actionName(req), req.GetTarget(), resume != nil)
	if err != nil {
		return toStatus(err)
	}
	if c.recorded != nil {
		return stream.Send(&pb.ExecuteResponse{Event: &pb.ExecuteResponse_Result{Result: resultToProto(c.recorded, true)}})
	}
	if c.owned {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if c.resumed {
				a.runResumed(req, resume, c.run)
				return
			}
			a.runStep(req, run, c.run)
		}()
	}
	return follow(stream, c.run)
}

// follow streams a run's progress lines and then its result.
func follow(stream grpc.ServerStreamingServer[pb.ExecuteResponse], run *stepRun) error {
	sent := 0
	for {
		lines, res, changed := run.since(sent)
		for _, l := range lines {
			if err := stream.Send(&pb.ExecuteResponse{Event: &pb.ExecuteResponse_Progress{Progress: l}}); err != nil {
				return err
			}
		}
		sent += len(lines)
		if res != nil && res.Interrupted {
			// This agent is stopping: the step's outcome is unknown here,
			// and the leader re-sends it to the agent that comes back,
			// which finds out (resume.go).
			return status.Error(codes.Unavailable, "the agent is stopping while the step runs; re-send it: "+res.Message)
		}
		if res != nil {
			return stream.Send(&pb.ExecuteResponse{Event: &pb.ExecuteResponse_Result{Result: resultToProto(res, false)}})
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-changed:
		}
	}
}

func resultToProto(r *stepResult, replayed bool) *pb.StepResult {
	return &pb.StepResult{
		Ok: r.OK, Message: r.Message, Outputs: r.Outputs, Replayed: replayed, Verified: r.Verified,
		StartedAt: timestamppb.New(r.StartedAt), EndedAt: timestamppb.New(r.EndedAt),
	}
}

// SyncTunnel serves one rsync session to a peer agent.
func (e *hostAgentEndpoint) SyncTunnel(stream grpc.BidiStreamingServer[pb.SyncTunnelRequest, pb.SyncTunnelResponse]) error {
	return e.agent.serveSyncTunnel(stream)
}

// ListSnapshots lists the snapshots of declared snapshot blocks.
func (e *hostAgentEndpoint) ListSnapshots(ctx context.Context, req *pb.ListSnapshotsRequest) (*pb.ListSnapshotsResponse, error) {
	snaps, err := e.agent.listSnapshots(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ListSnapshotsResponse{Snapshots: snaps}, nil
}

// ListBackups lists the backups of the agent's backup blocks.
func (e *hostAgentEndpoint) ListBackups(ctx context.Context, req *pb.ListBackupsRequest) (*pb.ListBackupsResponse, error) {
	sets, err := e.agent.listBackups(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ListBackupsResponse{Sets: sets}, nil
}

// toStatus maps the agent's errors to gRPC codes the leader acts on.
func toStatus(err error) error {
	var invalid *invalidStepError
	var stale *StaleEpochError
	switch {
	case errors.As(err, &stale):
		return rpcerr.New(codes.FailedPrecondition, err.Error(), &pb.ErrorInfo{
			Reason: pb.ErrorReason_ERROR_REASON_STALE_EPOCH, Epoch: stale.Seen, RequestEpoch: stale.Got})
	case errors.As(err, &invalid):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// invalidStepError is a step the agent refuses to run as asked.
type invalidStepError struct{ reason string }

func (e *invalidStepError) Error() string { return e.reason }

func invalidStep(format string, args ...any) error {
	return &invalidStepError{reason: fmt.Sprintf(format, args...)}
}
