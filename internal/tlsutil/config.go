// Package tlsutil creates and loads the certificates drplane uses for mutual
// TLS on every connection, and builds the TLS configurations, gRPC
// credentials and Raft stream layer that use them.
//
// drplane runs its own CA, like `consul tls ca create`. Every certificate it
// issues carries a role ("server", "agent" or "cli") as the DNS SAN
// "<role>.drplane", and peers are verified by that name rather than by IP
// address.
package tlsutil

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

var (
	// ErrFileExists is returned when creating a CA or certificate would
	// overwrite an existing file.
	ErrFileExists = errors.New("file already exists")
	// ErrInvalidName is returned for a certificate name that cannot be
	// used as a file name.
	ErrInvalidName = errors.New("invalid certificate name")
	// ErrInvalidRole is returned for a role other than server, agent or
	// cli.
	ErrInvalidRole = errors.New("invalid role")
	// ErrReservedDNSName is returned when an extra DNS SAN falls in the
	// drplane pseudo-domain, which only role names may use.
	ErrReservedDNSName = errors.New("dns name is reserved for drplane roles")
	// ErrNotCA is returned when the CA file holds a certificate that may
	// not sign others.
	ErrNotCA = errors.New("certificate is not a CA")
	// ErrNoCertificate is returned when a PEM file holds no certificate.
	ErrNoCertificate = errors.New("no certificate found")
	// ErrNoPrivateKey is returned when a PEM file holds no private key.
	ErrNoPrivateKey = errors.New("no private key found")
	// ErrKeyMismatch is returned when a private key does not belong to
	// its certificate.
	ErrKeyMismatch = errors.New("private key does not match certificate")
	// ErrExpired is returned for a certificate outside its validity
	// period.
	ErrExpired = errors.New("certificate expired or not yet valid")
	// ErrNoRole is returned for a certificate without a role SAN.
	ErrNoRole = errors.New("certificate has no drplane role")
	// ErrMultipleRoles is returned for a certificate with more than one
	// role SAN.
	ErrMultipleRoles = errors.New("certificate has more than one drplane role")
	// ErrRoleNotAllowed is returned when a peer's role may not use a
	// connection, such as an agent dialing the Raft port.
	ErrRoleNotAllowed = errors.New("peer role not allowed")
	// ErrNoPeer is returned when a context carries no gRPC peer.
	ErrNoPeer = errors.New("no grpc peer in context")
	// ErrNotTLS is returned when a gRPC peer did not connect over TLS.
	ErrNotTLS = errors.New("peer did not connect over tls")
	// ErrUnverifiedPeer is returned when a peer presented no verified
	// certificate chain.
	ErrUnverifiedPeer = errors.New("peer certificate was not verified")
)

// tls12CipherSuites are the TLS 1.2 suites offered: AEAD with forward
// secrecy for the ECDSA keys drplane issues. TLS 1.3 is preferred and its
// suites are not configurable.
var tls12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Material is a loaded CA pool and the certificate this process presents.
// It is read-only after Load and safe for concurrent use.
type Material struct {
	// CAPool holds the CA certificates peers are verified against.
	CAPool *x509.CertPool
	// Certificate is the certificate and key this process presents.
	Certificate tls.Certificate
	// Leaf is the parsed form of Certificate's first certificate.
	Leaf *x509.Certificate

	identity Identity
}

// Load reads the CA certificate, this process's certificate and its private
// key from PEM files. It checks that the key matches the certificate, that
// the certificate is currently valid, signed by the CA and carries a role.
// Errors name the file at fault.
func Load(caFile, certFile, keyFile string) (*Material, error) {
	pool, err := loadCAPool(caFile)
	if err != nil {
		return nil, err
	}
	certs, err := readCertificates(certFile)
	if err != nil {
		return nil, err
	}
	key, err := readPrivateKey(keyFile)
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	if err := checkKeyMatches(leaf, key); err != nil {
		return nil, fmt.Errorf("key %s for certificate %s: %w", keyFile, certFile, err)
	}
	if err := checkValidity(leaf, time.Now()); err != nil {
		return nil, fmt.Errorf("certificate %s: %w", certFile, err)
	}
	if err := verifyLeaf(leaf, certs[1:], pool); err != nil {
		return nil, fmt.Errorf("certificate %s is not signed by CA %s: %w", certFile, caFile, err)
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", certFile, err)
	}
	return &Material{
		CAPool:      pool,
		Certificate: newTLSCertificate(certs, key),
		Leaf:        leaf,
		identity:    id,
	}, nil
}

// Identity returns the name and role of this process's certificate.
func (m *Material) Identity() Identity {
	return m.identity
}

// ServerConfig returns a TLS configuration for accepting connections. It
// presents this process's certificate and requires every client to present
// one signed by the CA and carrying a drplane role. It allows TLS 1.2 but
// negotiates TLS 1.3 whenever the client supports it.
func (m *Material) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     tls12CipherSuites,
		Certificates:     []tls.Certificate{m.Certificate},
		ClientCAs:        m.CAPool,
		ClientAuth:       tls.RequireAndVerifyClientCert,
		VerifyConnection: verifyPeerRole(),
	}
}

// ClientConfig returns a TLS configuration for dialing a peer that holds a
// peerRole certificate. The peer's chain is verified against the CA and its
// name against RoleDNSName(peerRole), so IP SANs are not needed.
func (m *Material) ClientConfig(peerRole Role) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     tls12CipherSuites,
		Certificates:     []tls.Certificate{m.Certificate},
		RootCAs:          m.CAPool,
		ServerName:       RoleDNSName(peerRole),
		VerifyConnection: verifyPeerRole(peerRole),
	}
}

// verifyPeerRole returns a tls.Config.VerifyConnection hook that accepts a
// verified peer whose certificate has one of the allowed roles, or any role
// when allowed is empty.
func verifyPeerRole(allowed ...Role) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return ErrUnverifiedPeer
		}
		id, err := IdentityFromCert(cs.VerifiedChains[0][0])
		if err != nil {
			return err
		}
		if len(allowed) == 0 {
			return nil
		}
		for _, role := range allowed {
			if id.Role == role {
				return nil
			}
		}
		return fmt.Errorf("%w: %s certificate %q, want %q", ErrRoleNotAllowed, id.Role, id.Name, allowed)
	}
}

// loadCAPool reads every certificate in the CA file into a pool.
func loadCAPool(path string) (*x509.CertPool, error) {
	certs, err := readCertificates(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, cert := range certs {
		if !cert.IsCA {
			return nil, fmt.Errorf("CA certificate %s: %w", path, ErrNotCA)
		}
		pool.AddCert(cert)
	}
	return pool, nil
}

// readCertificates parses every CERTIFICATE block of a PEM file, in order.
func readCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate %s: %w", path, err)
	}
	var certs []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %s: %w", path, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("parse certificate %s: %w", path, ErrNoCertificate)
	}
	return certs, nil
}

// readPrivateKey parses the first private key of a PEM file, in SEC 1,
// PKCS #8 or PKCS #1 form.
func readPrivateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key %s: %w", path, err)
	}
	key, err := parsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse private key %s: %w", path, err)
	}
	return key, nil
}

// parsePrivateKey decodes the first PEM block holding a private key.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		switch block.Type {
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			signer, ok := key.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported key type %T", key)
			}
			return signer, nil
		}
	}
	return nil, ErrNoPrivateKey
}

// checkKeyMatches reports whether key is the private half of cert's public
// key.
func checkKeyMatches(cert *x509.Certificate, key crypto.Signer) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return ErrKeyMismatch
	}
	return nil
}

// checkValidity reports whether now falls within cert's validity period.
func checkValidity(cert *x509.Certificate, now time.Time) error {
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("%w: valid from %s until %s", ErrExpired,
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyLeaf checks that leaf chains up to a CA in pool, through any
// intermediates that came with it.
func verifyLeaf(leaf *x509.Certificate, intermediates []*x509.Certificate, pool *x509.CertPool) error {
	opts := x509.VerifyOptions{
		Roots:         pool,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, cert := range intermediates {
		opts.Intermediates.AddCert(cert)
	}
	_, err := leaf.Verify(opts)
	return err
}

// newTLSCertificate assembles a tls.Certificate from a parsed chain and key.
func newTLSCertificate(chain []*x509.Certificate, key crypto.Signer) tls.Certificate {
	cert := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert
}
