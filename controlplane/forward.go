package controlplane

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	// forwardHold is how long a request waits for a leader (an election in
	// progress) before it fails; it scales with raft_multiplier.
	forwardHold = 5 * time.Second
	// forwardRetryInterval is the pause between attempts while holding.
	forwardRetryInterval = 50 * time.Millisecond

	// mdForwarded marks a request forwarded by another server: it is never
	// forwarded again, so two servers that disagree about the leader cannot
	// bounce a request between them.
	mdForwarded = "x-drplane-forwarded"
	// mdActor carries the original caller's name for the audit trail on a
	// forwarded request.
	mdActor = "x-drplane-actor"
	// mdCallerRole and mdCallerName carry the original caller's certificate
	// role and name on a forwarded request, so the leader checks its role
	// again (see callerIdentity).
	mdCallerRole = "x-drplane-caller-role"
	mdCallerName = "x-drplane-caller-name"
	// mdUser carries the operator's user name from the CLI.
	mdUser = "x-drplane-user"
)

// remoteCall makes the request on a connection to the leader.
type remoteCall[Req, Resp any] func(grpc.ClientConnInterface, context.Context, Req) (Resp, error)

// via returns the remoteCall of one service's client method, e.g.
// via(pb.NewOperatorClient, pb.OperatorClient.GetStatus): every service a
// follower forwards (Operator, AgentRegistry, Peer) goes through the same
// withLeader.
func via[C, Req, Resp any](newClient func(grpc.ClientConnInterface) C, method func(C, context.Context, Req, ...grpc.CallOption) (Resp, error)) remoteCall[Req, Resp] {
	return func(conn grpc.ClientConnInterface, ctx context.Context, req Req) (Resp, error) {
		return method(newClient(conn), ctx, req)
	}
}

// withLeader is the one place where requests reach the leader: it serves
// the request with local when this server leads, or forwards it to the
// leader with remote. While no leader is known, or the leader changes under
// the request, it holds and retries; every write carries its request id, so
// a retry after an ambiguous failure is applied at most once.
func withLeader[Req, Resp any](ctx context.Context, s *Server, req Req, remote remoteCall[Req, Resp], local func(context.Context, Req) (Resp, error)) (Resp, error) {
	if isForwarded(ctx) {
		// The forwarding server holds and retries; answering at once lets
		// it look for the leader again.
		resp, err := tryLeaderOnce(ctx, s, req, remote, local, true)
		return resp, toStatus(err)
	}
	hold := forwardHold * time.Duration(max(s.config.RaftMultiplier, 1))
	deadline := time.Now().Add(hold)
	for {
		resp, err := tryLeaderOnce(ctx, s, req, remote, local, false)
		if err == nil || !retryable(err) || time.Now().After(deadline) {
			if err != nil && retryable(err) {
				err = s.noLeaderError(ctx, err)
			}
			return resp, toStatus(err)
		}
		select {
		case <-ctx.Done():
			var zero Resp
			return zero, status.FromContextError(ctx.Err()).Err()
		case <-time.After(forwardRetryInterval):
		}
	}
}

// leaderAddr returns the leader's gRPC address, or self when this server
// leads; both are empty while no leader is known or recorded.
func (s *Server) leaderAddr() (addr string, self bool) {
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return "", false
	}
	if string(id) == s.config.NodeID {
		return "", true
	}
	return s.fsm.view().Servers[string(id)].Address, false
}

// tryLeaderOnce makes one attempt at serving or forwarding.
func tryLeaderOnce[Req, Resp any](ctx context.Context, s *Server, req Req, remote remoteCall[Req, Resp], local func(context.Context, Req) (Resp, error), forwarded bool) (Resp, error) {
	var zero Resp
	addr, self := s.leaderAddr()
	switch {
	case self:
		return local(ctx, req)
	case addr == "" || forwarded:
		return zero, errNoLeader
	}
	conn, err := s.conns.get(addr)
	if err != nil {
		return zero, err
	}
	return remote(conn, forwardContext(ctx, s), req)
}

// forwardContext marks the request as forwarded and carries the caller's
// identity, which the leader trusts because this server's certificate has
// the server role, and checks against methodRoles again.
func forwardContext(ctx context.Context, s *Server) context.Context {
	id := selfIdentity(ctx, s.config.NodeID)
	return metadata.AppendToOutgoingContext(ctx, mdForwarded, s.config.NodeID, mdActor, actorFromContext(ctx, s.config.NodeID),
		mdCallerRole, string(id.Role), mdCallerName, id.Name)
}

func isForwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(mdForwarded)) > 0
}

// retryable reports whether an attempt failed in a way that another
// attempt, here or at a new leader, may fix.
func retryable(err error) bool {
	if isRetryableRaftError(err) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	}
	return false
}

// noLeaderError explains a failure to reach a leader in terms an operator
// can act on: how many servers answer and how many a quorum needs.
func (s *Server) noLeaderError(ctx context.Context, cause error) error {
	members, err := s.members(ctx, false)
	if err != nil || len(members) == 0 {
		return fmt.Errorf("%w: this server knows no cluster configuration yet (%v)", errNoLeader, cause)
	}
	reachable, voters := 0, 0
	for _, m := range members {
		if !m.GetVoter() {
			continue
		}
		voters++
		if m.GetState() != stateUnreachable {
			reachable++
		}
	}
	quorum := voters/2 + 1
	msg := fmt.Sprintf("%d of %d servers reachable; quorum needs %d", reachable, voters, quorum)
	if reachable >= quorum {
		msg += "; an election may be in progress, retry shortly"
	}
	if note := s.quorumNote(); note != "" {
		msg += "; " + note
	}
	return fmt.Errorf("%w: %s", errNoLeader, msg)
}
