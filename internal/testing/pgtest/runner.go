package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// runner runs PostgreSQL programs as RunAs.
type runner struct {
	uid, gid int
	home     string
}

// newRunner skips the test unless PostgreSQL 15 and the postgres user
// exist and the test runs as root, and returns a runner for them.
func newRunner(t testing.TB) *runner {
	t.Helper()
	if testing.Short() {
		t.Skip("pgtest: skipping PostgreSQL test in -short mode")
	}
	if _, err := os.Stat(filepath.Join(BinDir, "initdb")); err != nil {
		t.Skipf("pgtest: PostgreSQL 15 is not installed (%v)", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("pgtest: PostgreSQL tests must run as root, to run the servers as the postgres user")
	}
	u, err := user.Lookup(RunAs)
	if err != nil {
		t.Skipf("pgtest: no %s user: %v", RunAs, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &runner{uid: uid, gid: gid, home: u.HomeDir}
}

// newNode lays out a node's directories under dir: an empty data
// directory and a socket directory owned by RunAs, and a log file it can
// write.
func (r *runner) newNode(t testing.TB, dir, name string) *Node {
	t.Helper()
	n := &Node{
		Name:      name,
		DataDir:   filepath.Join(dir, name),
		SocketDir: filepath.Join(dir, name+"-sock"),
		LogFile:   filepath.Join(dir, name+".log"),
		Port:      freePort(t),
	}
	for _, d := range []string{n.DataDir, n.SocketDir} {
		r.mkdirOwned(t, d)
	}
	if err := os.WriteFile(n.LogFile, nil, 0o640); err != nil {
		t.Fatalf("pgtest: create log: %v", err)
	}
	r.chown(t, n.LogFile)
	return n
}

// mkdirOwned creates dir with mode 0700, owned by RunAs.
func (r *runner) mkdirOwned(t testing.TB, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	r.chown(t, dir)
}

// chown gives path to RunAs.
func (r *runner) chown(t testing.TB, path string) {
	t.Helper()
	if err := os.Chown(path, r.uid, r.gid); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// traversable lets RunAs pass through dir and its parent, the root-only
// directories t.TempDir makes, without listing them.
func traversable(t testing.TB, dir string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
}

// run runs prog from BinDir as RunAs and returns its combined output.
func (r *runner) run(prog string, args ...string) (string, error) {
	ctx, cancel := opContext()
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(BinDir, prog), args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + r.home, "USER=" + RunAs, "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, tail(out.String(), 2048))
	}
	return out.String(), nil
}

// mustRun is run that fails the test.
func (r *runner) mustRun(t testing.TB, prog string, args ...string) {
	t.Helper()
	if _, err := r.run(prog, args...); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// stop stops n in immediate mode; a stopped node is fine.
func (r *runner) stop(n *Node) error {
	_, err := r.run("pg_ctl", "status", "-D", n.DataDir)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil // 3: not running, 4: no data directory
	}
	if err != nil {
		return err
	}
	_, err = r.run("pg_ctl", "stop", "-D", n.DataDir, "-m", "immediate", "-w")
	return err
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
