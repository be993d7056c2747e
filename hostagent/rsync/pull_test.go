package rsync

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// treeEntry is what a mirror must reproduce of one directory entry.
type treeEntry struct {
	Mode     fs.FileMode
	Content  string    // regular files
	Link     string    // symlinks
	ModTime  time.Time // regular files
	UID, GID uint32
}

// readTree returns every entry under root by relative path.
func readTree(t *testing.T, root string) map[string]treeEntry {
	t.Helper()
	tree := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		e := treeEntry{Mode: info.Mode(), UID: st.Uid, GID: st.Gid}
		switch {
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Content, e.ModTime = string(data), info.ModTime()
		case info.Mode()&fs.ModeSymlink != 0:
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		rel, err := filepath.Rel(root, p)
		tree[rel] = e
		return err
	})
	require.NoError(t, err)
	return tree
}

// writeFile writes content to root/rel with mode, creating directories.
func writeFile(t testing.TB, root, rel, content string, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), mode))
	require.NoError(t, os.Chmod(p, mode)) // whatever the umask
}

// pullTest is a serving agent with one sync block, "app-state", whose
// declared path src the dr agent pulls into dst.
type pullTest struct {
	pki      *testPKI
	agent    *servingAgent
	rsyncBin string
	src, dst string
}

// newPullTest starts the serving agent; src is empty and dst missing.
func newPullTest(t *testing.T) *pullTest {
	t.Helper()
	pt := &pullTest{
		pki: newTestPKI(t), rsyncBin: requireRsync(t),
		src: filepath.Join(t.TempDir(), "state"), dst: filepath.Join(t.TempDir(), "state"),
	}
	require.NoError(t, os.Mkdir(pt.src, 0o750))
	pt.agent = startServingAgent(t, pt.pki, map[string][]string{"app-state": {pt.src}}, pt.rsyncBin)
	return pt
}

// options pulls src into dst with the dr agent's certificate.
func (pt *pullTest) options(t *testing.T, progress func(string, ...any)) PullOptions {
	return PullOptions{
		RsyncBin: pt.rsyncBin, Self: self(t),
		Tunnel:     tunnelOptions(pt.pki.dir, drAgent, pt.agent.addr, "app-state"),
		RemotePath: pt.src, LocalPath: pt.dst, Delete: true, Progress: progress,
	}
}

// pull runs Pull, which must succeed, and checks dst mirrors src.
func (pt *pullTest) pull(t *testing.T) (Result, []string) {
	t.Helper()
	var lines []string
	res, err := Pull(ctxT(t), pt.options(t, func(format string, args ...any) {
		lines = append(lines, fmt.Sprintf(format, args...))
	}))
	require.NoError(t, err)
	require.Equal(t, readTree(t, pt.src), readTree(t, pt.dst), "local tree must mirror the peer's")
	return res, lines
}

func TestPull_Mirror(t *testing.T) {
	pt := newPullTest(t)
	writeFile(t, pt.src, "config.json", `{"k":1}`, 0o600)
	writeFile(t, pt.src, "bin/run.sh", "#!/bin/sh\nexit 0\n", 0o755)
	writeFile(t, pt.src, "data/journal.log", strings.Repeat("entry\n", 10000), 0o644)
	writeFile(t, pt.src, "data/old.log", "old", 0o644)
	require.NoError(t, os.Symlink("data/journal.log", filepath.Join(pt.src, "current")))
	require.NoError(t, os.Symlink("/nonexistent/target", filepath.Join(pt.src, "dangling")))
	require.NoError(t, os.Mkdir(filepath.Join(pt.src, "empty"), 0o700))
	if os.Geteuid() == 0 {
		// --numeric-ids keeps ids the pulling host may not know.
		require.NoError(t, os.Lchown(filepath.Join(pt.src, "config.json"), 4321, 4322))
	}

	res, lines := pt.pull(t)
	require.EqualValues(t, 10, res.Files, "., config.json, bin, bin/run.sh, data, 2 logs, 2 links, empty")
	require.EqualValues(t, 4, res.TransferredFiles)
	var fileBytes, linkBytes int64
	for _, e := range readTree(t, pt.src) {
		fileBytes, linkBytes = fileBytes+int64(len(e.Content)), linkBytes+int64(len(e.Link))
	}
	require.Equal(t, fileBytes+linkBytes, res.Bytes, "rsync counts symlink targets as size")
	require.Equal(t, fileBytes, res.TransferredBytes)
	require.Positive(t, res.ReceivedBytes)
	require.Positive(t, res.Duration)
	require.Contains(t, lines[0], "pulling "+pt.src+" of sync app-state")
	require.Contains(t, lines[len(lines)-1], "pulled 4 of 10 files")

	// New, changed, deleted and re-moded files on the peer, and a stray
	// local file, which a mirror removes.
	writeFile(t, pt.src, "data/journal.log", strings.Repeat("entry\n", 10001), 0o644)
	writeFile(t, pt.src, "data/new.log", "new", 0o644)
	require.NoError(t, os.Remove(filepath.Join(pt.src, "data/old.log")))
	require.NoError(t, os.Chmod(filepath.Join(pt.src, "bin/run.sh"), 0o700))
	writeFile(t, pt.dst, "stray.txt", "not on the peer", 0o644)
	res, _ = pt.pull(t)
	require.EqualValues(t, 2, res.TransferredFiles, "journal.log and new.log")
	require.EqualValues(t, 2, res.DeletedFiles, "old.log and stray.txt")

	// Nothing changed: only the file list crosses the tunnel.
	res, _ = pt.pull(t)
	require.Zero(t, res.TransferredFiles)
	require.Zero(t, res.TransferredBytes)
	require.Zero(t, res.DeletedFiles)
	require.Less(t, res.ReceivedBytes, int64(4096))
}

func TestPull_WithoutDeleteKeepsLocalFiles(t *testing.T) {
	pt := newPullTest(t)
	writeFile(t, pt.src, "a.txt", "a", 0o644)
	writeFile(t, pt.dst, "local-only.txt", "mine", 0o644)
	opts := pt.options(t, nil)
	opts.Delete = false
	res, err := Pull(ctxT(t), opts)
	require.NoError(t, err)
	require.EqualValues(t, 1, res.TransferredFiles)
	require.FileExists(t, filepath.Join(pt.dst, "a.txt"))
	require.FileExists(t, filepath.Join(pt.dst, "local-only.txt"))
}

func TestPull_Refused(t *testing.T) {
	pt := newPullTest(t)
	writeFile(t, pt.src, "secret.txt", "s", 0o644)
	undeclared := t.TempDir()
	writeFile(t, undeclared, "passwd", "root:x:0:0", 0o644)
	cases := []struct {
		name    string
		modify  func(o *PullOptions)
		wantErr string
	}{
		{
			name:    "undeclared sync",
			modify:  func(o *PullOptions) { o.Tunnel.SyncName = "nope" },
			wantErr: `sync block not declared: "nope"`,
		},
		{
			name:    "undeclared path",
			modify:  func(o *PullOptions) { o.RemotePath = undeclared },
			wantErr: "path not declared by sync block: " + undeclared,
		},
		{
			name:    "cli certificate",
			modify:  func(o *PullOptions) { o.Tunnel = tunnelOptions(pt.pki.dir, cliCert, o.Tunnel.PeerAddr, "app-state") },
			wantErr: `caller is not an agent: cli certificate "ops"`,
		},
		{
			name: "certificate from another CA",
			modify: func(o *PullOptions) {
				o.Tunnel = tunnelOptions(pt.pki.otherDir, drAgent, o.Tunnel.PeerAddr, "app-state")
			},
			wantErr: "certificate signed by unknown authority",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := pt.options(t, nil)
			opts.LocalPath = filepath.Join(t.TempDir(), "dst")
			tc.modify(&opts)
			_, err := Pull(ctxT(t), opts)
			t.Log(err)
			require.ErrorIs(t, err, ErrRsyncFailed)
			require.ErrorContains(t, err, tc.wantErr)
			entries, readErr := os.ReadDir(opts.LocalPath)
			require.NoError(t, readErr)
			require.Empty(t, entries, "nothing may arrive")
		})
	}
}

func TestPull_InvalidOptions(t *testing.T) {
	valid := PullOptions{Self: "/usr/bin/drplane", RemotePath: "/srv", LocalPath: "/srv",
		Tunnel: TunnelOptions{PeerAddr: "h:1", SyncName: "s", CAFile: "c", CertFile: "c", KeyFile: "k"}}
	cases := []struct {
		name    string
		modify  func(o *PullOptions)
		wantErr string
	}{
		{"no self", func(o *PullOptions) { o.Self = "" }, "missing the drplane binary"},
		{"relative remote path", func(o *PullOptions) { o.RemotePath = "srv" }, `remote path "srv" is not absolute`},
		{"relative local path", func(o *PullOptions) { o.LocalPath = "srv" }, `local path "srv" is not absolute`},
		{"no peer or key", func(o *PullOptions) { o.Tunnel.PeerAddr, o.Tunnel.KeyFile = "", "" }, "missing peer address, key file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := valid
			tc.modify(&opts)
			_, err := Pull(ctxT(t), opts)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestPull_CancelStopsBothSides(t *testing.T) {
	pki := newTestPKI(t)
	declared := t.TempDir()
	// The serving rsync records that it started, then hangs.
	bin, argvFile := fakeRsync(t, "exec sleep 60")
	agent := startServingAgent(t, pki, map[string][]string{"app-state": {declared}}, bin)

	opts := PullOptions{
		RsyncBin: requireRsync(t), Self: self(t), Delete: true,
		Tunnel:     tunnelOptions(pki.dir, drAgent, agent.addr, "app-state"),
		RemotePath: declared, LocalPath: filepath.Join(t.TempDir(), "dst"),
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	pulled := make(chan error, 1)
	go func() {
		_, err := Pull(ctx, opts)
		pulled <- err
	}()
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		_, err := os.Stat(argvFile)
		return err == nil, err
	})

	cancel()
	select {
	case err := <-pulled:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("Pull did not return after cancel")
	}
	// Killing the local rsync and its tunnel ends the stream, so the
	// serving agent kills its rsync too.
	require.Equal(t, codes.Canceled, status.Code(agent.waitServed(t)))
}
