package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCreateCA_WritesFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls", "ca")
	require.NoError(t, CreateCA(dir))

	requireMode(t, dir, os.ModeDir|0o700)
	requireMode(t, filepath.Join(dir, CAKeyFile), 0o600)
	requireMode(t, filepath.Join(dir, CACertFile), 0o644)

	certs, err := readCertificates(filepath.Join(dir, CACertFile))
	require.NoError(t, err)
	require.Len(t, certs, 1)
	ca := certs[0]
	require.True(t, ca.IsCA)
	require.Equal(t, CACommonName, ca.Subject.CommonName)
	require.NoError(t, ca.CheckSignatureFrom(ca))
	require.WithinDuration(t, time.Now().Add(CAValidity), ca.NotAfter, 2*time.Minute)

	key, err := readPrivateKey(filepath.Join(dir, CAKeyFile))
	require.NoError(t, err)
	ecKey, ok := key.(*ecdsa.PrivateKey)
	require.True(t, ok, "CA key is %T, want ECDSA", key)
	require.Equal(t, elliptic.P256(), ecKey.Curve)
	require.NoError(t, checkKeyMatches(ca, key))
}

func TestCreateCA_RefusesOverwrite(t *testing.T) {
	cases := []struct {
		name     string
		existing string
	}{
		{name: "both files", existing: ""},
		{name: "certificate only", existing: CACertFile},
		{name: "key only", existing: CAKeyFile},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, CreateCA(dir))
			if tc.existing != "" {
				for _, f := range []string{CACertFile, CAKeyFile} {
					if f != tc.existing {
						require.NoError(t, os.Remove(filepath.Join(dir, f)))
					}
				}
			}
			before := readDir(t, dir)

			err := CreateCA(dir)
			require.ErrorIs(t, err, ErrFileExists)
			require.ErrorContains(t, err, "remove it first")
			if tc.existing != "" {
				require.ErrorContains(t, err, filepath.Join(dir, tc.existing))
			}
			require.Equal(t, before, readDir(t, dir), "existing files must be left untouched")
		})
	}
}

// requireMode checks a file's type and permission bits.
func requireMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, want, info.Mode()&(os.ModeType|os.ModePerm), "mode of %s", path)
}

// readDir returns every file in dir by name with its contents.
func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := make(map[string]string, len(entries))
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = string(data)
	}
	return files
}
