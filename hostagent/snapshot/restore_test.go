package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuiltin_Restore_Exact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		mutate func(t testing.TB, root string)
	}{
		{"modified, added and deleted files", mutateTree},
		{"whole path deleted", func(t testing.TB, root string) { require.NoError(t, os.RemoveAll(root)) }},
		{"path replaced by a file", func(t testing.TB, root string) {
			require.NoError(t, os.RemoveAll(root))
			require.NoError(t, os.WriteFile(root, []byte("not a dir"), 0o600))
		}},
		{"unchanged", func(testing.TB, string) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBuiltin(t)
			root := makeStateTree(t)
			want := readTree(t, root)
			meta, err := b.Create(ctx, "state", []string{root}, ReasonManual)
			require.NoError(t, err)

			tc.mutate(t, root)
			require.NoError(t, b.Restore(ctx, meta.ID))
			require.Equal(t, want, readTree(t, root))
			requireNoStaging(t, root)
		})
	}
}

func TestBuiltin_Restore_SeveralPaths(t *testing.T) {
	ctx := context.Background()
	b := testBuiltin(t)
	dir := makeStateTree(t)
	file := filepath.Join(t.TempDir(), "wal.conf")
	require.NoError(t, os.WriteFile(file, []byte("wal_level = replica\n"), 0o640))
	wantDir, wantFile := readTree(t, dir), readTree(t, file)
	meta, err := b.Create(ctx, "state", []string{dir, file}, ReasonManual)
	require.NoError(t, err)

	mutateTree(t, dir)
	require.NoError(t, os.WriteFile(file, []byte("changed"), 0o600))
	require.NoError(t, b.Restore(ctx, meta.ID))
	require.Equal(t, wantDir, readTree(t, dir))
	require.Equal(t, wantFile, readTree(t, file))
}

func TestBuiltin_Restore_CorruptChangesNothing(t *testing.T) {
	ctx := context.Background()
	b := testBuiltin(t)
	root := makeStateTree(t)
	meta, err := b.Create(ctx, "state", []string{root}, ReasonManual)
	require.NoError(t, err)
	mutateTree(t, root)
	want := readTree(t, root)

	// The corrupt byte is near the end, so most of the archive has been
	// extracted into staging before the mismatch is found.
	archive := filepath.Join(b.dir, meta.ID, archiveFile)
	info, err := os.Stat(archive)
	require.NoError(t, err)
	flipByte(t, archive, info.Size()-40)

	err = b.Restore(ctx, meta.ID)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Equal(t, want, readTree(t, root))
	requireNoStaging(t, root)
}

func TestBuiltin_Restore_NotFound(t *testing.T) {
	b := testBuiltin(t)
	require.ErrorIs(t, b.Restore(context.Background(), "state-20260101T000000Z-0000"), ErrNotFound)
}

// TestStaging_Swap_RollsBack makes the second of two swaps fail and checks
// that the first target gets its original content back.
func TestStaging_Swap_RollsBack(t *testing.T) {
	parent := t.TempDir()
	first, second := filepath.Join(parent, "first"), filepath.Join(parent, "second")
	for _, p := range []string{first, second} {
		require.NoError(t, os.Mkdir(p, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(p, "f"), []byte("original "+p), 0o600))
	}
	wantFirst, wantSecond := readTree(t, first), readTree(t, second)

	st, err := newStaging([]string{first, second}, nil, testLogger(t))
	require.NoError(t, err)
	require.NoError(t, os.Mkdir(st.paths[0].next, 0o755))
	// second's new content is never built, so its swap fails.
	err = st.swap()
	require.ErrorContains(t, err, "restored content for "+second)
	st.cleanup()

	require.Equal(t, wantFirst, readTree(t, first))
	require.Equal(t, wantSecond, readTree(t, second))
	requireNoStaging(t, first)
}
