package tlsutil

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Role is what a certificate's holder is allowed to be in a drplane
// cluster. It is carried in the certificate as the DNS SAN "<role>.drplane".
type Role string

const (
	// RoleServer is a drplane server: a Raft voter that serves gRPC.
	RoleServer Role = "server"
	// RoleAgent is a drplane agent running on a protected host.
	RoleAgent Role = "agent"
	// RoleCLI is an operator using the drplane CLI.
	RoleCLI Role = "cli"
	// RoleMonitor reads the HTTP endpoints alone (/metrics, /v1/health,
	// /v1/role/...): Prometheus, a load balancer. No gRPC method accepts
	// it, so it can change nothing.
	RoleMonitor Role = "monitor"
)

// DNSDomain is the pseudo-domain under which role names live. DNS SANs in
// this domain are reserved: only CreateCert puts them into certificates.
const DNSDomain = "drplane"

// roles lists every valid role, in a stable order.
var roles = []Role{RoleServer, RoleAgent, RoleCLI, RoleMonitor}

// Validate returns an error wrapping ErrInvalidRole unless r is one of the
// known roles.
func (r Role) Validate() error {
	for _, known := range roles {
		if r == known {
			return nil
		}
	}
	return fmt.Errorf("%w %q: want one of %q, %q, %q or %q", ErrInvalidRole, string(r), RoleServer, RoleAgent, RoleCLI, RoleMonitor)
}

// RoleDNSName returns the DNS SAN that marks a certificate as belonging to
// role, such as "server.drplane". Peers are verified by this name, the way
// Consul verifies servers by "server.<dc>.consul".
func RoleDNSName(role Role) string {
	return string(role) + "." + DNSDomain
}

// Identity is who a certificate says its holder is.
type Identity struct {
	// Name is the certificate's common name: a server's node ID, an
	// agent's host ID or an operator's name.
	Name string
	// Role is taken from the certificate's "<role>.drplane" DNS SAN.
	Role Role
}

// IdentityFromCert reads the identity out of a certificate made by
// CreateCert. It fails with ErrNoRole when the certificate carries no role
// SAN and with ErrMultipleRoles when it carries more than one.
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("read identity: %w", ErrNoCertificate)
	}
	var found []Role
	for _, name := range cert.DNSNames {
		if role, ok := roleFromDNSName(name); ok {
			found = append(found, role)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("certificate %q: %w", cert.Subject.CommonName, ErrNoRole)
	case 1:
		return Identity{Name: cert.Subject.CommonName, Role: found[0]}, nil
	default:
		return Identity{}, fmt.Errorf("certificate %q: %w: %q", cert.Subject.CommonName, ErrMultipleRoles, found)
	}
}

// IdentityFromContext returns the identity of the gRPC peer that made the
// request in ctx, taken from the certificate chain verified during the TLS
// handshake.
func IdentityFromContext(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, ErrNoPeer
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, fmt.Errorf("peer %s: %w", p.Addr, ErrNotTLS)
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return Identity{}, fmt.Errorf("peer %s: %w", p.Addr, ErrUnverifiedPeer)
	}
	id, err := IdentityFromCert(chains[0][0])
	if err != nil {
		return Identity{}, fmt.Errorf("peer %s: %w", p.Addr, err)
	}
	return id, nil
}

// roleFromDNSName reports the role that name stands for, if any.
func roleFromDNSName(name string) (Role, bool) {
	prefix, ok := strings.CutSuffix(strings.ToLower(name), "."+DNSDomain)
	if !ok {
		return "", false
	}
	role := Role(prefix)
	if role.Validate() != nil {
		return "", false
	}
	return role, true
}
