package tlsutil

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testPKI is a CA in a temporary directory that issues certificates for
// tests.
type testPKI struct {
	t   *testing.T
	dir string
}

// newTestPKI creates a fresh CA.
func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, CreateCA(dir))
	return &testPKI{t: t, dir: dir}
}

// caFile returns the path of the CA certificate.
func (p *testPKI) caFile() string {
	return filepath.Join(p.dir, CACertFile)
}

// issue creates and loads a certificate for name with role.
func (p *testPKI) issue(name string, role Role) *Material {
	p.t.Helper()
	certPath, keyPath, err := CreateCert(CertOptions{Dir: p.dir, Name: name, Role: role})
	require.NoError(p.t, err)
	m, err := Load(p.caFile(), certPath, keyPath)
	require.NoError(p.t, err)
	return m
}

func TestCreateCert_Roles(t *testing.T) {
	cases := []struct {
		name string
		role Role
	}{
		{name: "server-1", role: RoleServer},
		{name: "host-42", role: RoleAgent},
		{name: "alice", role: RoleCLI},
	}
	pki := newTestPKI(t)
	for _, tc := range cases {
		t.Run(string(tc.role), func(t *testing.T) {
			certPath, keyPath, err := CreateCert(CertOptions{
				Dir:      pki.dir,
				Name:     tc.name,
				Role:     tc.role,
				IPs:      []net.IP{net.ParseIP("10.0.0.7"), net.ParseIP("127.0.0.1")},
				DNSNames: []string{"node.example.com", "localhost"},
			})
			require.NoError(t, err)
			require.Equal(t, filepath.Join(pki.dir, tc.name+".pem"), certPath)
			require.Equal(t, filepath.Join(pki.dir, tc.name+"-key.pem"), keyPath)
			requireMode(t, keyPath, 0o600)
			requireMode(t, certPath, 0o644)

			m, err := Load(pki.caFile(), certPath, keyPath)
			require.NoError(t, err)
			require.Equal(t, Identity{Name: tc.name, Role: tc.role}, m.Identity())

			leaf := m.Leaf
			require.Equal(t, tc.name, leaf.Subject.CommonName)
			require.Equal(t, []string{string(tc.role)}, leaf.Subject.OrganizationalUnit)
			require.Equal(t, []string{RoleDNSName(tc.role), "localhost", "node.example.com"}, leaf.DNSNames)
			require.Len(t, leaf.IPAddresses, 2)
			require.True(t, leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)))
			require.True(t, leaf.IPAddresses[1].Equal(net.ParseIP("10.0.0.7")))
			require.ElementsMatch(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
			require.False(t, leaf.IsCA)
			require.WithinDuration(t, time.Now().Add(DefaultCertValidity), leaf.NotAfter, 2*time.Minute)
		})
	}
}

func TestCreateCert_Validity(t *testing.T) {
	pki := newTestPKI(t)
	certPath, keyPath, err := CreateCert(CertOptions{Dir: pki.dir, Name: "short", Role: RoleAgent, Validity: 48 * time.Hour})
	require.NoError(t, err)
	m, err := Load(pki.caFile(), certPath, keyPath)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(48*time.Hour), m.Leaf.NotAfter, 2*time.Minute)
}

func TestCreateCert_RefusesOverwrite(t *testing.T) {
	pki := newTestPKI(t)
	opts := CertOptions{Dir: pki.dir, Name: "server-1", Role: RoleServer}
	certPath, _, err := CreateCert(opts)
	require.NoError(t, err)
	before := readDir(t, pki.dir)

	_, _, err = CreateCert(opts)
	require.ErrorIs(t, err, ErrFileExists)
	require.ErrorContains(t, err, certPath)
	require.ErrorContains(t, err, "remove it first")
	require.Equal(t, before, readDir(t, pki.dir))
}

func TestCreateCert_InvalidOptions(t *testing.T) {
	cases := []struct {
		name    string
		opts    CertOptions
		wantErr error
	}{
		{name: "empty name", opts: CertOptions{Role: RoleServer}, wantErr: ErrInvalidName},
		{name: "slash in name", opts: CertOptions{Name: "../evil", Role: RoleServer}, wantErr: ErrInvalidName},
		{name: "backslash in name", opts: CertOptions{Name: `a\b`, Role: RoleServer}, wantErr: ErrInvalidName},
		{name: "dot dot", opts: CertOptions{Name: "..", Role: RoleServer}, wantErr: ErrInvalidName},
		{name: "ca name", opts: CertOptions{Name: "ca", Role: RoleServer}, wantErr: ErrInvalidName},
		{name: "empty role", opts: CertOptions{Name: "n1"}, wantErr: ErrInvalidRole},
		{name: "unknown role", opts: CertOptions{Name: "n1", Role: "admin"}, wantErr: ErrInvalidRole},
		{name: "reserved dns name", opts: CertOptions{Name: "n1", Role: RoleAgent, DNSNames: []string{"Server.drplane"}}, wantErr: ErrReservedDNSName},
		{name: "empty dns name", opts: CertOptions{Name: "n1", Role: RoleAgent, DNSNames: []string{""}}},
		{name: "bad ip", opts: CertOptions{Name: "n1", Role: RoleAgent, IPs: []net.IP{{1, 2, 3}}}},
		{name: "negative validity", opts: CertOptions{Name: "n1", Role: RoleAgent, Validity: -time.Hour}},
	}
	pki := newTestPKI(t)
	before := readDir(t, pki.dir)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Dir = pki.dir
			_, _, err := CreateCert(tc.opts)
			require.Error(t, err)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			}
			require.Equal(t, before, readDir(t, pki.dir), "no file may be written")
		})
	}
}

func TestCreateCert_MissingCA(t *testing.T) {
	dir := t.TempDir()
	_, _, err := CreateCert(CertOptions{Dir: dir, Name: "n1", Role: RoleServer})
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, filepath.Join(dir, CACertFile))
	require.Empty(t, readDir(t, dir))
}
