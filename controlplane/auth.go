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
// servers' services. TLS already proved the certificate is the cluster CA's; this
// decides what its holder may do. A method missing here is refused.
var methodRoles = map[string][]tlsutil.Role{
	// Operator: the CLI. Servers may call every method (forwarding).
	pb.Operator_GetStatus_FullMethodName:         {tlsutil.RoleServer, tlsutil.RoleCLI, tlsutil.RoleAgent},
	pb.Operator_ListMembers_FullMethodName:       {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_RemoveMember_FullMethodName:      {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_SetActiveSite_FullMethodName:     {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_ListAudit_FullMethodName:         {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_RunHostStep_FullMethodName:       {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_ListHostSnapshots_FullMethodName: {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_StartExecution_FullMethodName:    {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_GetExecution_FullMethodName:      {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_ListExecutions_FullMethodName:    {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_ApproveExecution_FullMethodName:  {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_CancelExecution_FullMethodName:   {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_SetAutomation_FullMethodName:     {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Operator_RecoverQuorum_FullMethodName:     {tlsutil.RoleServer, tlsutil.RoleCLI},
	// AgentRegistry: the host agents (and an operator deregistering one).
	pb.AgentRegistry_RegisterAgent_FullMethodName:   {tlsutil.RoleServer, tlsutil.RoleAgent},
	pb.AgentRegistry_DeregisterAgent_FullMethodName: {tlsutil.RoleServer, tlsutil.RoleCLI, tlsutil.RoleAgent},
	// Peer: the other servers (and an operator asking a server about itself).
	pb.Peer_NodeInfo_FullMethodName:      {tlsutil.RoleServer, tlsutil.RoleCLI},
	pb.Peer_JoinCluster_FullMethodName:   {tlsutil.RoleServer},
	pb.Peer_ObserveSite_FullMethodName:   {tlsutil.RoleServer},
	pb.Peer_NotifyRemoved_FullMethodName: {tlsutil.RoleServer},
}

// authorize is a unary interceptor that refuses callers whose certificate
// role may not call the method.
func authorize(logger hclog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		id, err := tlsutil.IdentityFromContext(ctx)
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
