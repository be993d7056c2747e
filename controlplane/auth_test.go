package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"slices"
	"testing"

	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// peerContext is the context of a request from a peer holding a
// certificate of role named name, with incoming metadata md.
func peerContext(role tlsutil.Role, name string, md ...string) context.Context {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: name}, DNSNames: []string{tlsutil.RoleDNSName(role)}}
	info := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}}
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, AuthInfo: info})
	return metadata.NewIncomingContext(ctx, metadata.Pairs(md...))
}

// forwarded is the metadata of a request server s2 forwarded for the
// caller role:name.
func forwarded(role tlsutil.Role, name string) []string {
	return []string{mdForwarded, "s2", mdActor, string(role) + ":" + name, mdCallerRole, string(role), mdCallerName, name}
}

// TestAuth_MethodRoles_Matrix checks every method of the servers' services
// against who may do what: operators read and drive plans, never set the
// active site; agents only register and deregister; servers make the peer
// calls, and what they forward is checked as the original caller.
func TestAuth_MethodRoles_Matrix(t *testing.T) {
	const (
		cli    = tlsutil.RoleCLI
		agent  = tlsutil.RoleAgent
		server = tlsutil.RoleServer
	)
	want := map[string][]tlsutil.Role{
		pb.Operator_GetStatus_FullMethodName:            {cli},
		pb.Operator_ListMembers_FullMethodName:          {cli},
		pb.Operator_RemoveMember_FullMethodName:         {cli},
		pb.Operator_SetActiveSite_FullMethodName:        {server},
		pb.Operator_ListAudit_FullMethodName:            {cli},
		pb.Operator_StartExecution_FullMethodName:       {cli},
		pb.Operator_GetExecution_FullMethodName:         {cli},
		pb.Operator_ListExecutions_FullMethodName:       {cli},
		pb.Operator_ListPlans_FullMethodName:            {cli},
		pb.Operator_ApproveExecution_FullMethodName:     {cli},
		pb.Operator_CancelExecution_FullMethodName:      {cli},
		pb.Operator_SetAutomation_FullMethodName:        {cli},
		pb.Operator_RecoverQuorum_FullMethodName:        {cli},
		pb.Operator_RunHostStep_FullMethodName:          {cli},
		pb.Operator_ListHostSnapshots_FullMethodName:    {cli},
		pb.Operator_ListHostBackups_FullMethodName:      {cli},
		pb.Operator_ListNotifications_FullMethodName:    {cli},
		pb.Operator_AckNotifications_FullMethodName:     {cli},
		pb.Operator_TestNotification_FullMethodName:     {cli},
		pb.Operator_CheckReadiness_FullMethodName:       {cli},
		pb.Operator_VerifyEvidence_FullMethodName:       {cli},
		pb.Operator_ListSchedules_FullMethodName:        {cli},
		pb.Operator_GetKPIs_FullMethodName:              {cli},
		pb.AgentRegistry_RegisterAgent_FullMethodName:   {agent},
		pb.AgentRegistry_DeregisterAgent_FullMethodName: {agent},
		pb.Peer_NodeInfo_FullMethodName:                 {server, cli},
		pb.Peer_JoinCluster_FullMethodName:              {server},
		pb.Peer_ObserveSite_FullMethodName:              {server},
		pb.Peer_NotifyRemoved_FullMethodName:            {server},
	}
	// Every method served has an entry: a new method must be decided.
	for _, sd := range []grpc.ServiceDesc{pb.Operator_ServiceDesc, pb.AgentRegistry_ServiceDesc, pb.Peer_ServiceDesc} {
		for _, m := range sd.Methods {
			_, ok := want[grpcMethod(sd, m.MethodName)]
			require.True(t, ok, "no expected roles for %s", grpcMethod(sd, m.MethodName))
		}
	}
	require.Len(t, methodRoles, len(want))

	callers := []struct {
		name string
		ctx  context.Context
		// role is who the check must see; "" means always refused.
		role tlsutil.Role
	}{
		{"cli", peerContext(cli, "ops"), cli},
		// A monitor (Prometheus, a load balancer) reads HTTP alone.
		{"monitor", peerContext(tlsutil.RoleMonitor, "prometheus"), ""},
		{"agent", peerContext(agent, "db-1"), agent},
		{"server", peerContext(server, "s1"), server},
		{"server forwarding cli", peerContext(server, "s1", forwarded(cli, "ops")...), cli},
		{"server forwarding agent", peerContext(server, "s1", forwarded(agent, "db-1")...), agent},
		{"server forwarding server", peerContext(server, "s1", forwarded(server, "s3")...), server},
		{"server forwarding nobody", peerContext(server, "s1", mdForwarded, "s2"), ""},
		{"server forwarding a bad role", peerContext(server, "s1", forwarded("root", "x")...), ""},
		// Only a server's forwarding is believed.
		{"cli claiming to forward a server", peerContext(cli, "ops", forwarded(server, "s3")...), cli},
		{"no certificate", metadata.NewIncomingContext(context.Background(), metadata.MD{}), ""},
	}
	check := authorize(hclog.NewNullLogger())
	for method, roles := range want {
		for _, c := range callers {
			t.Run(method+"/"+c.name, func(t *testing.T) {
				called := false
				_, err := check(c.ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) {
					called = true
					return nil, nil
				})
				allowed := c.role != "" && slices.Contains(roles, c.role)
				require.Equal(t, allowed, called)
				if !allowed {
					require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
				}
			})
		}
	}
}

func grpcMethod(sd grpc.ServiceDesc, name string) string { return "/" + sd.ServiceName + "/" + name }
