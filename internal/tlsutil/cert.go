package tlsutil

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultCertValidity is how long a certificate is valid when
// CertOptions.Validity is zero.
const DefaultCertValidity = 365 * 24 * time.Hour

// CertOptions describes a certificate for CreateCert to issue.
type CertOptions struct {
	// Dir holds ca.pem and ca-key.pem; the new files are written there.
	Dir string
	// Name is the certificate's common name and file name stem: a
	// server's node ID, an agent's host ID or an operator's name.
	Name string
	// Role is what the holder may act as.
	Role Role
	// IPs are extra IP SANs; 127.0.0.1 is always included.
	IPs []net.IP
	// DNSNames are extra DNS SANs; RoleDNSName(Role) and localhost are
	// always included. Names under the drplane domain are refused.
	DNSNames []string
	// Validity is how long the certificate is valid; zero means
	// DefaultCertValidity.
	Validity time.Duration
}

// CreateCert issues a certificate signed by the CA in opts.Dir and writes it
// to Dir/<Name>.pem with its ECDSA P-256 key in Dir/<Name>-key.pem, readable
// only by the owner. The certificate is good for both server and client
// authentication, since servers and agents both listen and dial. CreateCert
// never overwrites existing files.
func CreateCert(opts CertOptions) (certPath, keyPath string, err error) {
	return createCert(opts, time.Now())
}

// createCert is CreateCert with the clock passed in.
func createCert(opts CertOptions, now time.Time) (string, string, error) {
	if err := opts.validate(); err != nil {
		return "", "", err
	}
	certPath := filepath.Join(opts.Dir, opts.Name+".pem")
	keyPath := filepath.Join(opts.Dir, opts.Name+"-key.pem")
	if err := checkNotExist(certPath, keyPath); err != nil {
		return "", "", err
	}
	ca, err := loadCA(opts.Dir)
	if err != nil {
		return "", "", err
	}
	key, err := generateKey()
	if err != nil {
		return "", "", err
	}
	der, err := ca.sign(opts.template(now), key)
	if err != nil {
		return "", "", fmt.Errorf("sign certificate %s: %w", opts.Name, err)
	}
	if err := writeKeyAndCert(keyPath, certPath, key, der); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// validate checks the options before any file is touched.
func (o CertOptions) validate() error {
	if err := validateName(o.Name); err != nil {
		return err
	}
	if err := o.Role.Validate(); err != nil {
		return err
	}
	if o.Validity < 0 {
		return fmt.Errorf("certificate validity %s: must not be negative", o.Validity)
	}
	for _, name := range o.DNSNames {
		if err := validateDNSName(name); err != nil {
			return err
		}
	}
	for _, ip := range o.IPs {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return fmt.Errorf("certificate IP SAN %q: invalid IP address", ip.String())
		}
	}
	return nil
}

// validateName accepts names usable as a file name stem inside Dir.
func validateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: name is empty", ErrInvalidName)
	case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, filepath.Separator):
		return fmt.Errorf("%w %q: must not contain a path separator", ErrInvalidName, name)
	case name == "." || name == "..":
		return fmt.Errorf("%w %q", ErrInvalidName, name)
	case name == "ca":
		return fmt.Errorf("%w %q: reserved for the CA files", ErrInvalidName, name)
	}
	return nil
}

// validateDNSName refuses empty names and names in the drplane domain,
// which would let a certificate claim a role it was not issued for.
func validateDNSName(name string) error {
	lower := strings.ToLower(strings.TrimSuffix(name, "."))
	switch {
	case lower == "":
		return fmt.Errorf("certificate DNS SAN: name is empty")
	case lower == DNSDomain || strings.HasSuffix(lower, "."+DNSDomain):
		return fmt.Errorf("certificate DNS SAN %q: %w", name, ErrReservedDNSName)
	}
	return nil
}

// template builds the certificate to sign. The options must be valid.
func (o CertOptions) template(now time.Time) *x509.Certificate {
	validity := o.Validity
	if validity == 0 {
		validity = DefaultCertValidity
	}
	return &x509.Certificate{
		Subject: pkix.Name{
			CommonName:         o.Name,
			Organization:       []string{"drplane"},
			OrganizationalUnit: []string{string(o.Role)},
		},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    o.dnsNames(),
		IPAddresses: o.ipAddresses(),
	}
}

// dnsNames returns the role name, localhost and the extra names, without
// duplicates.
func (o CertOptions) dnsNames() []string {
	names := []string{RoleDNSName(o.Role), "localhost"}
	for _, name := range o.DNSNames {
		dup := false
		for _, have := range names {
			dup = dup || strings.EqualFold(have, name)
		}
		if !dup {
			names = append(names, name)
		}
	}
	return names
}

// ipAddresses returns 127.0.0.1 and the extra addresses, without
// duplicates.
func (o CertOptions) ipAddresses() []net.IP {
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, ip := range o.IPs {
		dup := false
		for _, have := range ips {
			dup = dup || have.Equal(ip)
		}
		if !dup {
			ips = append(ips, ip)
		}
	}
	return ips
}

// sign issues tmpl for key's public half, signed by the CA.
func (ca *certAuthority) sign(tmpl *x509.Certificate, key *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := newSerialNumber()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
}

// checkNotExist refuses to go on when any of paths already exists, so a
// CA or certificate is never half overwritten.
func checkNotExist(paths ...string) error {
	for _, path := range paths {
		_, err := os.Lstat(path)
		switch {
		case err == nil:
			return existsError(path)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("check %s: %w", path, err)
		}
	}
	return nil
}

// existsError tells the operator which file is in the way.
func existsError(path string) error {
	return fmt.Errorf("refusing to overwrite %s (remove it first): %w", path, ErrFileExists)
}

// writeKeyAndCert writes the key (mode 0600) and then the certificate
// (mode 0644) as PEM, removing the key again if the certificate cannot be
// written.
func writeKeyAndCert(keyPath, certPath string, key *ecdsa.PrivateKey, certDER []byte) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode private key %s: %w", keyPath, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	if err := writeNewFile(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNewFile(certPath, certPEM, 0o644); err != nil {
		_ = os.Remove(keyPath)
		return err
	}
	return nil
}

// writeNewFile creates path with perm and writes data, failing if path
// already exists.
func writeNewFile(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return existsError(path)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	_, err = f.Write(data)
	if syncErr := f.Sync(); err == nil {
		err = syncErr
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
