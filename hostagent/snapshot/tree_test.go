package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// testLogger sends logs through t.Log so they show only on failure.
func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Debug, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// testBuiltin returns a builtin engine in a temporary directory.
func testBuiltin(t testing.TB) *Builtin {
	t.Helper()
	b, err := NewBuiltin(filepath.Join(t.TempDir(), "snapshots"), testLogger(t))
	require.NoError(t, err)
	return b
}

// node is what a tree comparison checks of one path.
type node struct {
	Mode  fs.FileMode
	Size  int64
	SHA   string
	Link  string
	MTime time.Time
}

// readTree records every path below root, relative to it, with its mode,
// content hash, link target and (except for symlinks) mtime.
func readTree(t testing.TB, root string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		n := node{Mode: info.Mode()}
		switch {
		case info.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			n.Size, n.SHA, n.MTime = info.Size(), hex.EncodeToString(sum[:]), info.ModTime()
		case info.Mode()&fs.ModeSymlink != 0:
			n.Link, err = os.Readlink(path)
			if err != nil {
				return err
			}
		default:
			n.MTime = info.ModTime()
		}
		out[rel] = n
		return nil
	})
	require.NoError(t, err)
	return out
}

// makeStateTree builds a state directory with nested directories, files of
// several modes and sizes, relative and absolute symlinks, an empty
// directory and sub-second mtimes, and returns its path.
func makeStateTree(t testing.TB) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "state")
	big := make([]byte, 1<<20+17)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(big)
	files := []struct {
		path string
		mode fs.FileMode
		data []byte
	}{
		{"PG_VERSION", 0o600, []byte("16\n")},
		{"base/1/1259", 0o600, big},
		{"base/1/empty", 0o640, nil},
		{"conf/postgresql.conf", 0o644, []byte("max_connections = 100\n")},
		{"bin/run.sh", 0o755, []byte("#!/bin/sh\nexec true\n")},
		{"deep/a/b/c/d/leaf.txt", 0o600, []byte("leaf")},
	}
	mtime := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	for i, f := range files {
		p := filepath.Join(root, f.path)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, f.data, f.mode))
		require.NoError(t, os.Chmod(p, f.mode))
		require.NoError(t, os.Chtimes(p, mtime, mtime.Add(time.Duration(i)*time.Second)))
	}
	require.NoError(t, os.Mkdir(filepath.Join(root, "empty"), 0o700))
	require.NoError(t, os.Symlink("../conf/postgresql.conf", filepath.Join(root, "bin", "conf-link")))
	require.NoError(t, os.Symlink("/etc/hostname", filepath.Join(root, "abs-link")))
	require.NoError(t, os.Chmod(filepath.Join(root, "conf"), 0o750))
	for _, d := range []string{"deep/a/b/c/d", "deep", "empty", "conf", "."} {
		require.NoError(t, os.Chtimes(filepath.Join(root, d), mtime, mtime))
	}
	return root
}

// mutateTree changes, adds, removes and re-modes files under root.
func mutateTree(t testing.TB, root string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(root, "PG_VERSION"), []byte("17\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(root, "base", "1", "new-file"), []byte("added"), 0o600))
	require.NoError(t, os.RemoveAll(filepath.Join(root, "deep")))
	require.NoError(t, os.Chmod(filepath.Join(root, "bin", "run.sh"), 0o700))
	require.NoError(t, os.Remove(filepath.Join(root, "abs-link")))
	require.NoError(t, os.Symlink("/nowhere", filepath.Join(root, "abs-link")))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "new-dir", "sub"), 0o755))
}

// requireNoStaging fails if a restore left staging directories beside
// path.
func requireNoStaging(t testing.TB, path string) {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".drplane-restore-*"))
	require.NoError(t, err)
	require.Empty(t, matches)
}
