package controlplane

import (
	"context"
	"fmt"
	"slices"

	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// methodRoles says which certificate roles may call each method of the
// servers' services. TLS already proved the certificate is the cluster CA's;
// this decides what its holder may do. A method missing here is refused.
//
// Who may do what:
//   - cli (an operator): read status, members, audit and history; start,
//     approve and cancel executions; pause, resume and ack automation;
//     recover quorum; run a host snapshot or restore; remove a server.
//     Never set the active site: only plans change it (their activate
//     step, applied by the leader), so a fence is always followed by a
//     promotion.
//   - agent: register and deregister its own host (the certificate name
//     must be the host id, checked by the endpoint).
//   - server: the Peer service. A server reaches the Operator and
//     AgentRegistry services only by forwarding another caller's request,
//     and then that caller's role is checked (see callerIdentity), so a
//     server certificate used as a CLI is refused like an agent's.
//
// SetActiveSite is the one exception, kept for test harnesses that need an
// epoch change without a plan (internal/testing/clustertest): it admits a
// server certificate only. A server certificate is the cluster's root
// secret anyway (it may join Raft as a voter and drive every agent), so it
// must be kept like one: on the servers, never handed to an operator.
var methodRoles = map[string][]tlsutil.Role{
	pb.Operator_GetStatus_FullMethodName:            {tlsutil.RoleCLI},
	pb.Operator_ListMembers_FullMethodName:          {tlsutil.RoleCLI},
	pb.Operator_RemoveMember_FullMethodName:         {tlsutil.RoleCLI},
	pb.Operator_SetActiveSite_FullMethodName:        {tlsutil.RoleServer},
	pb.Operator_ListAudit_FullMethodName:            {tlsutil.RoleCLI},
	pb.Operator_ListNotifications_FullMethodName:    {tlsutil.RoleCLI},
	pb.Operator_AckNotifications_FullMethodName:     {tlsutil.RoleCLI},
	pb.Operator_TestNotification_FullMethodName:     {tlsutil.RoleCLI},
	pb.Operator_CheckReadiness_FullMethodName:       {tlsutil.RoleCLI},
	pb.Operator_VerifyEvidence_FullMethodName:       {tlsutil.RoleCLI},
	pb.Operator_ListSchedules_FullMethodName:        {tlsutil.RoleCLI},
	pb.Operator_GetKPIs_FullMethodName:              {tlsutil.RoleCLI},
	pb.Operator_RunHostStep_FullMethodName:          {tlsutil.RoleCLI},
	pb.Operator_ListHostSnapshots_FullMethodName:    {tlsutil.RoleCLI},
	pb.Operator_ListHostBackups_FullMethodName:      {tlsutil.RoleCLI},
	pb.Operator_StartExecution_FullMethodName:       {tlsutil.RoleCLI},
	pb.Operator_GetExecution_FullMethodName:         {tlsutil.RoleCLI},
	pb.Operator_ListExecutions_FullMethodName:       {tlsutil.RoleCLI},
	pb.Operator_ListPlans_FullMethodName:            {tlsutil.RoleCLI},
	pb.Operator_ApproveExecution_FullMethodName:     {tlsutil.RoleCLI},
	pb.Operator_CancelExecution_FullMethodName:      {tlsutil.RoleCLI},
	pb.Operator_SetAutomation_FullMethodName:        {tlsutil.RoleCLI},
	pb.Operator_RecoverQuorum_FullMethodName:        {tlsutil.RoleCLI},
	pb.AgentRegistry_RegisterAgent_FullMethodName:   {tlsutil.RoleAgent},
	pb.AgentRegistry_DeregisterAgent_FullMethodName: {tlsutil.RoleAgent},
	// NodeInfo is a read an operator may make of one server too.
	pb.Peer_NodeInfo_FullMethodName:      {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Peer_JoinCluster_FullMethodName:   {tlsutil.RoleServer},
	pb.Peer_ObserveSite_FullMethodName:   {tlsutil.RoleServer},
	pb.Peer_NotifyRemoved_FullMethodName: {tlsutil.RoleServer},
}

// authorize is a unary interceptor that refuses callers whose role may not
// call the method: the certificate's, or for a request a server forwarded,
// the original caller's.
func authorize(logger hclog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		id, err := callerIdentity(ctx)
		if err != nil {
			logger.Warn("refused request without identity", "method", info.FullMethod, "error", err)
			return nil, toStatus(fmt.Errorf("%w: %v", errPermissionDenied, err))
		}
		if !slices.Contains(methodRoles[info.FullMethod], id.Role) {
			logger.Warn("refused request", "method", info.FullMethod, "caller", id.Name, "role", id.Role)
			return nil, toStatus(fmt.Errorf("%w: a %s certificate (%s) may not call %s", errPermissionDenied, id.Role, id.Name, info.FullMethod))
		}
		return handler(ctx, req)
	}
}

// callerIdentity is who made the request in ctx. For a request a server
// forwarded (mdForwarded), it is the original caller that the forwarding
// server checked and named (mdCallerRole, mdCallerName), so the leader
// checks the same role again: a follower is no way around methodRoles. The
// leader trusts those names only from a server certificate; a forwarded
// request without them (a follower of an older version) is refused, which
// is why followers are upgraded before the leader. A call a server makes to
// itself carries no peer and is the server's own.
func callerIdentity(ctx context.Context) (tlsutil.Identity, error) {
	id, err := tlsutil.IdentityFromContext(ctx)
	if err != nil || id.Role != tlsutil.RoleServer || !isForwarded(ctx) {
		return id, err
	}
	md, _ := metadata.FromIncomingContext(ctx)
	role, name := md.Get(mdCallerRole), md.Get(mdCallerName)
	if len(role) != 1 || len(name) != 1 {
		return tlsutil.Identity{}, fmt.Errorf("request forwarded by server %s does not name its original caller", id.Name)
	}
	orig := tlsutil.Identity{Role: tlsutil.Role(role[0]), Name: name[0]}
	if err := orig.Role.Validate(); err != nil {
		return tlsutil.Identity{}, fmt.Errorf("request forwarded by server %s: %w", id.Name, err)
	}
	return orig, nil
}

// selfIdentity is callerIdentity, with the server itself for calls that
// carry no peer.
func selfIdentity(ctx context.Context, self string) tlsutil.Identity {
	id, err := callerIdentity(ctx)
	if err != nil {
		return tlsutil.Identity{Role: tlsutil.RoleServer, Name: self}
	}
	return id
}

// actorFromContext names the caller for the audit trail: the certificate
// name, with the operator's user name when the CLI sent one. A request
// forwarded by a server carries the original caller's name.
func actorFromContext(ctx context.Context, self string) string {
	id, err := tlsutil.IdentityFromContext(ctx)
	if err != nil {
		// Calls the server makes to itself carry no peer.
		return "server:" + self
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if id.Role == tlsutil.RoleServer {
		if a := md.Get(mdActor); len(a) > 0 {
			return a[0]
		}
	}
	actor := string(id.Role) + ":" + id.Name
	if u := md.Get(mdUser); len(u) > 0 && id.Role == tlsutil.RoleCLI {
		actor = u[0] + "@" + actor
	}
	return actor
}
