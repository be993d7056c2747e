package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestManager_Restore_PreRestoreUndoes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := testBuiltin(t)
	m := NewManager(b, testLogger(t))
	root := makeStateTree(t)
	original := readTree(t, root)
	snap, err := m.Create(ctx, "state", []string{root}, ReasonManual)
	require.NoError(t, err)

	mutateTree(t, root)
	modified := readTree(t, root)
	var lines []string
	pre, err := m.Restore(ctx, snap.ID, WithProgress(func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }))
	require.NoError(t, err)
	require.Equal(t, original, readTree(t, root))
	require.Equal(t, ReasonPreRestore, pre.Reason)
	require.Equal(t, "state", pre.Name)
	require.Equal(t, []string{root}, pre.Paths)
	require.Contains(t, lines, fmt.Sprintf("snapshot state: %d files, %s", pre.Files, formatBytes(pre.Bytes)))
	require.Contains(t, lines, fmt.Sprintf("restore %s: %d files, %s", snap.ID, snap.Files, formatBytes(snap.Bytes)))

	// Restoring the pre-restore snapshot undoes the restore, and itself
	// leaves a pre-restore snapshot of the original state.
	undo, err := m.Restore(ctx, pre.ID)
	require.NoError(t, err)
	require.Equal(t, modified, readTree(t, root))
	require.NoError(t, b.Verify(ctx, undo.ID))
	list, err := b.List(ctx, "state")
	require.NoError(t, err)
	require.Len(t, list, 3)
}

func TestManager_Restore_CorruptChangesNothing(t *testing.T) {
	ctx := context.Background()
	b := testBuiltin(t)
	m := NewManager(b, testLogger(t))
	root := makeStateTree(t)
	snap, err := m.Create(ctx, "state", []string{root}, ReasonManual)
	require.NoError(t, err)
	mutateTree(t, root)
	want := readTree(t, root)
	flipByte(t, filepath.Join(b.dir, snap.ID, archiveFile), 100)

	pre, err := m.Restore(ctx, snap.ID)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Equal(t, want, readTree(t, root))
	// The pre-restore snapshot was taken and is intact.
	require.Equal(t, ReasonPreRestore, pre.Reason)
	require.NoError(t, b.Verify(ctx, pre.ID))
}

func TestManager_Restore_MissingPaths(t *testing.T) {
	ctx := context.Background()
	b := testBuiltin(t)
	m := NewManager(b, testLogger(t))
	root := makeStateTree(t)
	want := readTree(t, root)
	snap, err := m.Create(ctx, "state", []string{root}, ReasonManual)
	require.NoError(t, err)

	// Nothing left to keep: the restore goes ahead without a pre-restore
	// snapshot.
	require.NoError(t, os.RemoveAll(root))
	pre, err := m.Restore(ctx, snap.ID)
	require.NoError(t, err)
	require.Zero(t, pre)
	require.Equal(t, want, readTree(t, root))
}

func TestManager_Restore_NotFound(t *testing.T) {
	f := NewFake()
	m := NewManager(f, testLogger(t))
	_, err := m.Restore(context.Background(), "state-nope")
	require.ErrorIs(t, err, ErrNotFound)
	list, err := f.List(context.Background(), "")
	require.NoError(t, err)
	require.Empty(t, list, "no pre-restore snapshot for a missing id")
}

func TestManager_Restore_FailedRestoreReturnsPreRestore(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	f.RestoreErr = fmt.Errorf("disk full")
	m := NewManager(f, testLogger(t))
	snap, err := m.Create(ctx, "state", []string{t.TempDir()}, ReasonManual)
	require.NoError(t, err)
	pre, err := m.Restore(ctx, snap.ID)
	require.ErrorContains(t, err, "disk full")
	require.Equal(t, ReasonPreRestore, pre.Reason)
}

func TestManager_Prune_Retention(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	// Snapshots aged 0h, 1h, ..., 9h.
	ages := func(hours ...int) []string {
		ids := make([]string, len(hours))
		for i, h := range hours {
			ids[i] = fmt.Sprintf("state-%02dh", h)
		}
		return ids
	}
	for _, tc := range []struct {
		name        string
		keepWithin  time.Duration
		keepLast    int
		wantDeleted []string
	}{
		{"neither keeps everything", 0, 0, nil},
		{"keep within only", 3 * time.Hour, 0, ages(3, 4, 5, 6, 7, 8, 9)},
		{"keep last only", 0, 2, ages(2, 3, 4, 5, 6, 7, 8, 9)},
		{"both: within wins", 5 * time.Hour, 2, ages(5, 6, 7, 8, 9)},
		{"both: last wins", time.Hour, 4, ages(4, 5, 6, 7, 8, 9)},
		{"keep last beyond count", 0, 20, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := NewFake()
			for h := 9; h >= 0; h-- {
				f.Add(Meta{ID: fmt.Sprintf("state-%02dh", h), Name: "state", CreatedAt: now.Add(-time.Duration(h) * time.Hour)})
			}
			f.Add(Meta{ID: "other-99h", Name: "other", CreatedAt: now.Add(-99 * time.Hour)})
			m := NewManager(f, testLogger(t))

			deleted, err := m.Prune(ctx, "state", tc.keepWithin, tc.keepLast, now)
			require.NoError(t, err)
			require.Equal(t, tc.wantDeleted, metaIDs(deleted))
			require.Equal(t, tc.wantDeleted, f.Deleted())
			other, err := f.List(ctx, "other")
			require.NoError(t, err)
			require.Len(t, other, 1, "other blocks are untouched")
		})
	}
}

func TestManager_Create_WaitsForContext(t *testing.T) {
	m := NewManager(NewFake(), testLogger(t))
	// Hold the manager's lock as a running operation would.
	require.NoError(t, m.lock(context.Background()))
	defer m.unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := m.Create(ctx, "state", []string{"/x"}, ReasonManual)
	require.ErrorIs(t, err, context.Canceled)
}

func TestFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {999, "999 B"}, {1000, "1.0 kB"}, {4_500_000, "4.5 MB"}, {2_000_000_000_000, "2.0 TB"},
	} {
		require.Equal(t, tc.want, formatBytes(tc.n))
	}
}

// TestManager_At: the snapshot of a time is the newest of the block taken
// at or before it; a time before every snapshot names the oldest.
func TestManager_At(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	base := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for i, id := range []string{"state-a", "state-b", "state-c"} {
		f.Add(Meta{ID: id, Name: "state", CreatedAt: base.Add(time.Duration(i) * time.Minute)})
	}
	f.Add(Meta{ID: "logs-a", Name: "logs", CreatedAt: base.Add(90 * time.Second)})
	m := NewManager(f, testLogger(t))
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{base, "state-a"},
		{base.Add(90 * time.Second), "state-b"},
		{base.Add(2 * time.Minute), "state-c"},
		{base.Add(time.Hour), "state-c"},
	} {
		meta, err := m.At(ctx, "state", tc.at)
		require.NoError(t, err)
		require.Equal(t, tc.want, meta.ID, "at %s", tc.at)
	}
	_, err := m.At(ctx, "state", base.Add(-time.Second))
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, err, "snapshot block state holds no snapshot taken at or before 2026-12-03T08:59:59Z; the oldest, state-a, was taken 2026-12-03T09:00:00Z")
	_, err = m.At(ctx, "other", base)
	require.ErrorContains(t, err, "snapshot block other holds no snapshot")
}
