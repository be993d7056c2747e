package snapshot

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

func TestBuiltin_Create_RoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := testBuiltin(t)
	root := makeStateTree(t)
	var lines []string
	pctx := withProgress(ctx, func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) })

	meta, err := b.Create(pctx, "state", []string{root + "/"}, ReasonManual)
	require.NoError(t, err)
	require.Regexp(t, `^state-\d{8}T\d{6}Z-[0-9a-f]{4}$`, meta.ID)
	require.Equal(t, EngineBuiltin, meta.Engine)
	require.Equal(t, []string{root}, meta.Paths)
	// 6 files and 2 symlinks.
	require.EqualValues(t, 8, meta.Files)
	require.EqualValues(t, 1<<20+17+3+22+20+4, meta.Bytes)
	require.Equal(t, fmt.Sprintf("snapshot state: 8 files, %s", formatBytes(meta.Bytes)), lines[len(lines)-1])

	list, err := b.List(ctx, "state")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, meta.ID, list[0].ID)
	require.True(t, meta.CreatedAt.Equal(list[0].CreatedAt))
	require.NoError(t, b.Verify(ctx, meta.ID))

	// The restored tree is the captured one, modes, mtimes and links
	// included.
	want := readTree(t, root)
	require.NoError(t, os.RemoveAll(root))
	require.NoError(t, b.Restore(ctx, meta.ID))
	require.Equal(t, want, readTree(t, root))
}

func TestBuiltin_List_NewestFirstAndByName(t *testing.T) {
	ctx := context.Background()
	b := testBuiltin(t)
	root := makeStateTree(t)
	start := time.Date(2026, 11, 22, 18, 42, 5, 0, time.UTC)
	var ids []string
	for i, name := range []string{"state", "other", "state"} {
		b.now = func() time.Time { return start.Add(time.Duration(i) * time.Minute) }
		meta, err := b.Create(ctx, name, []string{root}, ReasonScheduled)
		require.NoError(t, err)
		ids = append(ids, meta.ID)
	}
	list, err := b.List(ctx, "state")
	require.NoError(t, err)
	require.Equal(t, []string{ids[2], ids[0]}, metaIDs(list))
	all, err := b.List(ctx, "")
	require.NoError(t, err)
	require.Equal(t, []string{ids[2], ids[1], ids[0]}, metaIDs(all))
}

func TestBuiltin_Verify_CorruptArchiveByte(t *testing.T) {
	ctx := context.Background()
	b := testBuiltin(t)
	meta, err := b.Create(ctx, "state", []string{makeStateTree(t)}, ReasonManual)
	require.NoError(t, err)
	archive := filepath.Join(b.dir, meta.ID, archiveFile)
	info, err := os.Stat(archive)
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		off  int64
	}{
		{"first byte", 0},
		{"middle", info.Size() / 2},
		{"last byte", info.Size() - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flipByte(t, archive, tc.off)
			defer flipByte(t, archive, tc.off)
			err := b.Verify(ctx, meta.ID)
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, archiveFile+" has sha256")
		})
	}
	require.NoError(t, b.Verify(ctx, meta.ID))
}

func TestBuiltin_Verify_CorruptManifest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		edit    func(m *manifest)
		wantMsg string
	}{
		{"archive hash", func(m *manifest) { m.ArchiveSHA256 = flipHex(m.ArchiveSHA256) }, archiveFile + " has sha256"},
		{"file hash", func(m *manifest) { m.Entries[1].SHA256 = flipHex(m.Entries[1].SHA256) }, "PG_VERSION has sha256"},
		{"file size", func(m *manifest) { m.Entries[1].Size++ }, "PG_VERSION has size 3"},
		{"file mode", func(m *manifest) { m.Entries[1].Mode = 0o644 }, "PG_VERSION has mode -rw-------"},
		{"missing entry", func(m *manifest) { m.Entries = m.Entries[:len(m.Entries)-1] }, "more entries than the manifest's"},
		{"path", func(m *manifest) { m.Meta.Paths = []string{"/etc"} }, "not inside a captured path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBuiltin(t)
			meta, err := b.Create(ctx, "state", []string{makeStateTree(t)}, ReasonManual)
			require.NoError(t, err)
			editManifest(t, filepath.Join(b.dir, meta.ID), tc.edit)
			err = b.Verify(ctx, meta.ID)
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tc.wantMsg)
		})
	}
}

func TestBuiltin_List_IgnoresIncomplete(t *testing.T) {
	ctx := context.Background()
	b := testBuiltin(t)
	meta, err := b.Create(ctx, "state", []string{makeStateTree(t)}, ReasonManual)
	require.NoError(t, err)

	// An interrupted Create: archive written, manifest never renamed in.
	crashed := filepath.Join(b.dir, "state-20260101T000000Z-dead")
	require.NoError(t, os.Mkdir(crashed, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(crashed, archiveFile), []byte("partial"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(crashed, "."+manifestFile+".tmp-1"), []byte("{"), 0o600))
	// A Create still running in this process is left alone.
	running := filepath.Join(b.dir, "state-20260101T000000Z-beef")
	require.NoError(t, os.Mkdir(running, 0o700))
	b.creating["state-20260101T000000Z-beef"] = true

	list, err := b.List(ctx, "state")
	require.NoError(t, err)
	require.Equal(t, []string{meta.ID}, metaIDs(list))
	require.NoDirExists(t, crashed)
	require.DirExists(t, running)
	require.ErrorIs(t, b.Verify(ctx, "state-20260101T000000Z-beef"), ErrNotFound)
}

func TestBuiltin_Create_Invalid(t *testing.T) {
	root := makeStateTree(t)
	for _, tc := range []struct {
		name  string
		sname string
		paths []string
	}{
		{"no paths", "state", nil},
		{"relative path", "state", []string{"state"}},
		{"root", "state", []string{"/"}},
		{"missing path", "state", []string{filepath.Join(root, "nope")}},
		{"overlapping paths", "state", []string{root, filepath.Join(root, "conf")}},
		{"name with slash", "a/b", []string{root}},
		{"name with dots", "..", []string{root}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBuiltin(t)
			_, err := b.Create(context.Background(), tc.sname, tc.paths, ReasonManual)
			require.ErrorIs(t, err, ErrInvalid)
			ents, err := os.ReadDir(b.dir)
			require.NoError(t, err)
			require.Empty(t, ents)
		})
	}
}

func TestBuiltin_Create_Cancelled(t *testing.T) {
	b := testBuiltin(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.Create(ctx, "state", []string{makeStateTree(t)}, ReasonManual)
	require.ErrorIs(t, err, context.Canceled)
	ents, err := os.ReadDir(b.dir)
	require.NoError(t, err)
	require.Empty(t, ents, "a failed create leaves nothing behind")
}

func TestBuiltin_Delete(t *testing.T) {
	ctx := context.Background()
	b := testBuiltin(t)
	meta, err := b.Create(ctx, "state", []string{makeStateTree(t)}, ReasonManual)
	require.NoError(t, err)
	require.NoError(t, b.Delete(ctx, meta.ID))
	require.NoDirExists(t, filepath.Join(b.dir, meta.ID))
	require.ErrorIs(t, b.Delete(ctx, meta.ID), ErrNotFound)
	require.ErrorIs(t, b.Delete(ctx, "../snapshots"), ErrNotFound)
}

// TestBuiltin_Restore_RejectsEscapingEntries feeds Restore archives whose
// hashes all match but whose names or layout would write outside the
// captured path.
func TestBuiltin_Restore_RejectsEscapingEntries(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		entries []*tar.Header
		wantMsg string
	}{
		{"dot-dot", []*tar.Header{dirHeader("%s"), fileHeader("%s/../escaped")}, "not inside a captured path"},
		{"absolute", []*tar.Header{dirHeader("%s"), fileHeader("/%s/abs")}, "not inside a captured path"},
		{"sibling prefix", []*tar.Header{dirHeader("%s"), fileHeader("%s-evil/x")}, "not inside a captured path"},
		{"through symlink", []*tar.Header{dirHeader("%s"), linkHeader("%s/link", "/tmp"), fileHeader("%s/link/x")}, "comes before its directory"},
		{"child before root", []*tar.Header{fileHeader("%s/x")}, "comes before its directory"},
		{"hard link", []*tar.Header{dirHeader("%s"), {Name: "%s/h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}, "unsupported type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBuiltin(t)
			parent := t.TempDir()
			target := filepath.Join(parent, "state")
			require.NoError(t, os.Mkdir(target, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(target, "keep"), []byte("original"), 0o600))
			before := readTree(t, target)

			id := writeRawSnapshot(t, b, target, tc.entries)
			err := b.Restore(ctx, id)
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tc.wantMsg)
			require.Equal(t, before, readTree(t, target))
			requireNoStaging(t, target)
			ents, err := os.ReadDir(parent)
			require.NoError(t, err)
			require.Len(t, ents, 1, "nothing written beside the target")
		})
	}
}

func dirHeader(name string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}
}
func fileHeader(name string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 5}
}
func linkHeader(name, to string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to, Mode: 0o777}
}

// writeRawSnapshot stores a snapshot of target whose archive holds entries
// (names formatted with target's archive name, regular files containing
// "hello") and whose manifest matches it exactly.
func writeRawSnapshot(t *testing.T, b *Builtin, target string, entries []*tar.Header) string {
	t.Helper()
	id := "state-20260101T000000Z-0000"
	dir := filepath.Join(b.dir, id)
	require.NoError(t, os.Mkdir(dir, 0o700))
	f, err := os.Create(filepath.Join(dir, archiveFile))
	require.NoError(t, err)
	enc, err := zstd.NewWriter(f)
	require.NoError(t, err)
	tw := tar.NewWriter(enc)
	m := &manifest{Version: manifestVersion, Meta: Meta{ID: id, Name: "state", Paths: []string{target}}}
	for _, hdr := range entries {
		hdr := *hdr
		hdr.Name = fmt.Sprintf(hdr.Name, archiveName(target))
		hdr.Format = tar.FormatPAX
		require.NoError(t, tw.WriteHeader(&hdr))
		e := manifestEntry{Path: hdr.Name, Size: hdr.Size, Mode: hdr.FileInfo().Mode(), Link: hdr.Linkname}
		if hdr.Typeflag == tar.TypeReg {
			_, err := tw.Write([]byte("hello"))
			require.NoError(t, err)
			sum := sha256.Sum256([]byte("hello"))
			e.SHA256 = hex.EncodeToString(sum[:])
		}
		m.Entries = append(m.Entries, e)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, enc.Close())
	require.NoError(t, f.Close())
	data, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	m.ArchiveSHA256, m.ArchiveSize = hex.EncodeToString(sum[:]), int64(len(data))
	require.NoError(t, writeManifest(dir, m))
	return id
}

// flipByte inverts the byte at off in path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
}

// flipHex changes the first digit of a hex string.
func flipHex(s string) string {
	if s[0] == '0' {
		return "1" + s[1:]
	}
	return "0" + s[1:]
}

// editManifest rewrites dir's manifest through edit.
func editManifest(t *testing.T, dir string, edit func(*manifest)) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, manifestFile))
	require.NoError(t, err)
	var m manifest
	require.NoError(t, json.Unmarshal(data, &m))
	edit(&m)
	require.NoError(t, writeManifest(dir, &m))
}

// metaIDs returns the ids of metas, nil for none.
func metaIDs(metas []Meta) []string {
	var ids []string
	for _, m := range metas {
		ids = append(ids, m.ID)
	}
	return ids
}
