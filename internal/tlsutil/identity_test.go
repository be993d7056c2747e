package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

func TestRoleDNSName(t *testing.T) {
	require.Equal(t, "server.drplane", RoleDNSName(RoleServer))
	require.Equal(t, "agent.drplane", RoleDNSName(RoleAgent))
	require.Equal(t, "cli.drplane", RoleDNSName(RoleCLI))
}

func TestRole_Validate(t *testing.T) {
	cases := []struct {
		role  Role
		valid bool
	}{
		{role: RoleServer, valid: true},
		{role: RoleAgent, valid: true},
		{role: RoleCLI, valid: true},
		{role: "", valid: false},
		{role: "Server", valid: false},
		{role: "admin", valid: false},
	}
	for _, tc := range cases {
		t.Run(string(tc.role), func(t *testing.T) {
			err := tc.role.Validate()
			if tc.valid {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidRole)
		})
	}
}

func TestIdentityFromCert_Cases(t *testing.T) {
	cert := func(dnsNames ...string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: "n1"}, DNSNames: dnsNames}
	}
	cases := []struct {
		name    string
		cert    *x509.Certificate
		want    Identity
		wantErr error
	}{
		{name: "server", cert: cert("localhost", "server.drplane"), want: Identity{Name: "n1", Role: RoleServer}},
		{name: "agent", cert: cert("agent.drplane", "host.example.com"), want: Identity{Name: "n1", Role: RoleAgent}},
		{name: "cli", cert: cert("cli.drplane"), want: Identity{Name: "n1", Role: RoleCLI}},
		{name: "no role", cert: cert("localhost"), wantErr: ErrNoRole},
		{name: "unknown role", cert: cert("admin.drplane"), wantErr: ErrNoRole},
		{name: "two roles", cert: cert("agent.drplane", "server.drplane"), wantErr: ErrMultipleRoles},
		{name: "nil", cert: nil, wantErr: ErrNoCertificate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := IdentityFromCert(tc.cert)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, id)
		})
	}
}

func TestIdentityFromContext_Errors(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	cases := []struct {
		name    string
		ctx     context.Context
		wantErr error
	}{
		{name: "no peer", ctx: context.Background(), wantErr: ErrNoPeer},
		{
			name:    "not tls",
			ctx:     peer.NewContext(context.Background(), &peer.Peer{Addr: addr}),
			wantErr: ErrNotTLS,
		},
		{
			name: "unverified",
			ctx: peer.NewContext(context.Background(), &peer.Peer{
				Addr:     addr,
				AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{}},
			}),
			wantErr: ErrUnverifiedPeer,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := IdentityFromContext(tc.ctx)
			require.ErrorIs(t, err, tc.wantErr)
		})
	}
}
