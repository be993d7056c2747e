package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

const (
	// CACertFile is the CA certificate's file name inside a CA directory.
	CACertFile = "ca.pem"
	// CAKeyFile is the CA private key's file name inside a CA directory.
	CAKeyFile = "ca-key.pem"
	// CACommonName is the subject common name of every drplane CA.
	CACommonName = "drplane CA"
	// CAValidity is how long a new CA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour

	// clockSkew backdates NotBefore so a certificate is usable at once
	// on hosts whose clocks run slightly behind.
	clockSkew = time.Minute
)

// CreateCA creates a new CA in dir: dir/ca.pem holds the self-signed
// certificate and dir/ca-key.pem its ECDSA P-256 key, readable only by the
// owner. dir is created with mode 0700 if missing. CreateCA never overwrites
// an existing CA.
func CreateCA(dir string) error {
	return createCA(dir, time.Now())
}

// createCA is CreateCA with the clock passed in.
func createCA(dir string, now time.Time) error {
	certPath := filepath.Join(dir, CACertFile)
	keyPath := filepath.Join(dir, CAKeyFile)
	if err := checkNotExist(certPath, keyPath); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create CA directory %s: %w", dir, err)
	}
	key, err := generateKey()
	if err != nil {
		return err
	}
	der, err := createCACertificate(key, now)
	if err != nil {
		return err
	}
	return writeKeyAndCert(keyPath, certPath, key, der)
}

// createCACertificate self-signs a CA certificate for key.
func createCACertificate(key crypto.Signer, now time.Time) ([]byte, error) {
	serial, err := newSerialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CACommonName, Organization: []string{"drplane"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	return der, nil
}

// certAuthority is a loaded CA able to sign certificates.
type certAuthority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// loadCA reads the CA certificate and key from dir for signing.
func loadCA(dir string) (*certAuthority, error) {
	certPath := filepath.Join(dir, CACertFile)
	keyPath := filepath.Join(dir, CAKeyFile)
	certs, err := readCertificates(certPath)
	if err != nil {
		return nil, err
	}
	cert := certs[0]
	if !cert.IsCA {
		return nil, fmt.Errorf("CA certificate %s: %w", certPath, ErrNotCA)
	}
	key, err := readPrivateKey(keyPath)
	if err != nil {
		return nil, err
	}
	if err := checkKeyMatches(cert, key); err != nil {
		return nil, fmt.Errorf("CA key %s for certificate %s: %w", keyPath, certPath, err)
	}
	return &certAuthority{cert: cert, key: key}, nil
}

// generateKey creates an ECDSA P-256 private key.
func generateKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
	}
	return key, nil
}

// newSerialNumber returns a random, positive 128-bit serial number.
func newSerialNumber() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	serial, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}
