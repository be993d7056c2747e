package snapshot

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testRestic returns a restic engine on a copy of testdata/restic-repo,
// skipping the test when restic is not installed.
func testRestic(t *testing.T) *Restic {
	t.Helper()
	if _, err := exec.LookPath("restic"); err != nil {
		t.Skip("restic is not installed (apt-get install restic); skipping the restic engine test")
	}
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	require.NoError(t, os.CopyFS(repo, os.DirFS("testdata/restic-repo")))
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte("drplane-test-password"), 0o600))
	r, err := NewRestic(ResticConfig{Repository: repo, PasswordFile: pw, CacheDir: filepath.Join(dir, "cache")}, testLogger(t))
	require.NoError(t, err)
	require.True(t, r.Available())
	return r
}

func TestRestic_RoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := testRestic(t)
	m := NewManager(r, testLogger(t))
	root := makeStateTree(t)
	original := readTree(t, root)

	snap, err := m.Create(ctx, "state", []string{root}, ReasonManual)
	require.NoError(t, err)
	require.Equal(t, EngineRestic, snap.Engine)
	require.Equal(t, "state", snap.Name)
	require.Equal(t, ReasonManual, snap.Reason)
	require.Equal(t, []string{root}, snap.Paths)
	require.EqualValues(t, 6, snap.Files, "restic counts regular files")
	require.NoError(t, r.Verify(ctx, snap.ID))

	mutateTree(t, root)
	modified := readTree(t, root)
	pre, err := m.Restore(ctx, snap.ID)
	require.NoError(t, err)
	require.Equal(t, original, readTree(t, root))
	requireNoStaging(t, root)
	require.Equal(t, ReasonPreRestore, pre.Reason)

	list, err := r.List(ctx, "state")
	require.NoError(t, err)
	require.Equal(t, []string{pre.ID, snap.ID}, metaIDs(list))
	other, err := r.List(ctx, "other")
	require.NoError(t, err)
	require.Empty(t, other)

	require.NoError(t, r.Restore(ctx, pre.ID))
	require.Equal(t, modified, readTree(t, root))

	// A snapshot drplane did not take is not found, even by id.
	foreign, err := r.run(ctx, "backup", "--json", "--tag", "other", "--", root)
	require.NoError(t, err)
	var summary resticMessage
	for line := range strings.SplitSeq(strings.TrimSpace(string(foreign)), "\n") {
		require.NoError(t, json.Unmarshal([]byte(line), &summary))
	}
	require.ErrorIs(t, r.Delete(ctx, summary.SnapshotID), ErrNotFound)

	require.NoError(t, r.Delete(ctx, snap.ID))
	list, err = r.List(ctx, "")
	require.NoError(t, err)
	require.Equal(t, []string{pre.ID}, metaIDs(list))
	require.ErrorIs(t, r.Restore(ctx, snap.ID), ErrNotFound)
}

func TestRestic_PasswordNeverAnArgument(t *testing.T) {
	r, err := NewRestic(ResticConfig{Repository: "rest:https://u:p@host/", PasswordFile: "/etc/drplane/restic.pw"}, nil)
	require.NoError(t, err)
	t.Setenv("RESTIC_PASSWORD", "leaked")
	args := strings.Join(r.globalArgs([]string{"snapshots"}), " ")
	require.Equal(t, "--password-file /etc/drplane/restic.pw snapshots", args)
	env := strings.Join(r.env(), "\n")
	require.NotContains(t, env, "leaked")
	require.Contains(t, env, "RESTIC_REPOSITORY=rest:https://u:p@host/")
}

func TestRestic_Unavailable(t *testing.T) {
	r, err := NewRestic(ResticConfig{Repository: "/r", PasswordFile: "/p", Binary: "/nonexistent/restic"}, nil)
	require.NoError(t, err)
	require.False(t, r.Available())
	_, err = NewRestic(ResticConfig{Repository: "/r"}, nil)
	require.ErrorIs(t, err, ErrInvalid)
}
