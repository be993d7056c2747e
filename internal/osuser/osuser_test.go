package osuser

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckReachable: a directory above dir that the user may not search
// is named; o+x makes it reachable. Needs root, to own the directory as
// someone else than nobody.
func TestCheckReachable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	u, err := Lookup("nobody")
	require.NoError(t, err)
	require.NotNil(t, u.Credential(), "root runs programs as nobody by switching")
	top := t.TempDir()
	for _, d := range []string{top, filepath.Dir(top)} {
		require.NoError(t, os.Chmod(d, 0o711))
	}
	closed := filepath.Join(top, "closed")
	dir := filepath.Join(closed, "data")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.Chmod(closed, 0o700))

	err = u.CheckReachable(dir)
	require.EqualError(t, err, "run_as user nobody cannot reach "+dir+": "+closed+" (mode -rwx------) is not traversable by it; give it o+x")
	require.NoError(t, os.Chmod(closed, 0o701))
	require.NoError(t, u.CheckReachable(dir))

	root, err := Lookup("root")
	require.NoError(t, err)
	require.Nil(t, root.Credential(), "no switch to the user this process runs as")
	require.Contains(t, root.LoginEnv(), "USER=root")
}
