// Package pgtest builds real PostgreSQL 15 clusters for tests: a primary
// and a streaming standby in the test's temporary directory, on
// kernel-chosen ports, stopped when the test ends (also when it fails).
// Tests skip when PostgreSQL 15 is not installed or they do not run as
// root (PostgreSQL runs as the postgres user, which needs root to switch
// to).
//
// It is test support, not product: the hostagent and driver tests, the
// e2e agent and plan tests and the sample application's test use it, and
// the drplane binary must never import it (see
// internal/testing/imports_test.go).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/devcluster"
)

const (
	// BinDir holds the PostgreSQL 15 programs.
	BinDir = "/usr/lib/postgresql/15/bin"
	// RunAs is the OS user the servers run as.
	RunAs = "postgres"
	// User is the superuser, trusted without a password from 127.0.0.1
	// and the unix socket.
	User = "postgres"
	// opTimeout bounds one pg_ctl, initdb or pg_basebackup run, and waits.
	opTimeout = 60 * time.Second
)

// pgConf is appended to the primary's postgresql.conf (and so copied to
// the standby): what streaming replication and pg_rewind need, made
// small and fast for tests.
const pgConf = `
# pgtest
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 10
wal_log_hints = on            # pg_rewind needs it (or data checksums)
hot_standby = on
wal_keep_size = '128MB'       # keeps the WAL pg_rewind reads from its source
max_connections = 30
shared_buffers = '16MB'
fsync = off                   # tests only: a crashed host loses nothing here
wal_retrieve_retry_interval = '100ms'  # standbys reconnect quickly after a restart
`

// pgHBA is appended to pg_hba.conf: standbys stream from 127.0.0.1.
const pgHBA = "\nhost replication all 127.0.0.1/32 trust\n"

// Node is one server of a Pair.
type Node struct {
	// Name is "primary" or "standby", what the node was built as.
	Name      string
	DataDir   string
	Port      int
	SocketDir string
	// LogFile is the server log; the pair prints its end when a test fails.
	LogFile string
}

// ConnString connects to the node as User over its unix socket.
func (n *Node) ConnString() string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres application_name=pgtest", n.SocketDir, n.Port, User)
}

// PostmasterPID returns the pid in the node's postmaster.pid, or 0 when
// there is none.
func (n *Node) PostmasterPID() int {
	b, err := os.ReadFile(filepath.Join(n.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	var pid int
	_, _ = fmt.Sscanf(string(b), "%d", &pid)
	return pid
}

// PostgresConfig is the driver config that manages node, with a short
// stop timeout.
func PostgresConfig(n *Node) driver.PostgresConfig {
	return driver.PostgresConfig{
		Name: n.Name, DataDir: n.DataDir, Port: n.Port, BinDir: BinDir, RunAs: RunAs,
		SocketDir: n.SocketDir, User: User, StopTimeout: 10 * time.Second, LogFile: n.LogFile,
	}
}

// Pair is a primary and a standby streaming from it.
type Pair struct {
	Primary *Node
	Standby *Node
	runner  *runner
}

// NewPair initdbs a primary, starts it, clones a standby with
// pg_basebackup -R, starts it and waits until it streams. Both servers
// are stopped in t.Cleanup, whoever started them last.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	r := newRunner(t)
	dir := t.TempDir()
	traversable(t, dir)
	p := &Pair{runner: r, Primary: r.newNode(t, dir, "primary"), Standby: r.newNode(t, dir, "standby")}
	t.Cleanup(func() { p.cleanup(t) })
	p.initPrimary(t)
	p.Start(t, p.Primary)
	r.mustRun(t, "pg_basebackup", "-D", p.Standby.DataDir, "-R", "-X", "stream", "-c", "fast", "-N",
		"-h", "127.0.0.1", "-p", fmt.Sprint(p.Primary.Port), "-U", User, "-w")
	p.Start(t, p.Standby)
	p.WaitStreaming(t, p.Standby)
	return p
}

// initPrimary runs initdb and appends the replication settings.
func (p *Pair) initPrimary(t testing.TB) {
	t.Helper()
	n := p.Primary
	p.runner.mustRun(t, "initdb", "-D", n.DataDir, "--auth=trust", "-U", User, "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions")
	appendFile(t, filepath.Join(n.DataDir, "postgresql.conf"), pgConf)
	appendFile(t, filepath.Join(n.DataDir, "pg_hba.conf"), pgHBA)
}

// Start starts node with pg_ctl as the driver would: port and socket
// directory on the command line, since the standby's configuration is a
// copy of the primary's.
//
// A port the kernel handed out earlier is free only until someone else
// binds it: another test process on this machine may take it between
// freePort and this start (seen in CI: "could not bind IPv4 address:
// Address already in use"). The node then gets another port; that is
// the port's allocation failing, not the server.
func (p *Pair) Start(t testing.TB, n *Node) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		before, _ := os.ReadFile(n.LogFile)
		out, err := p.runner.run("pg_ctl", "start", "-w", "-D", n.DataDir, "-l", n.LogFile,
			"-o", fmt.Sprintf("-p %d -k %s", n.Port, n.SocketDir))
		if err == nil {
			return
		}
		log, _ := os.ReadFile(n.LogFile)
		this := string(log[min(len(before), len(log)):]) // what this attempt logged
		if attempt < 3 && strings.Contains(this, `could not bind IPv4 address "127.0.0.1": Address already in use`) {
			t.Logf("pgtest: port %d of %s was taken before it started; another port", n.Port, n.Name)
			n.Port = freePort(t)
			continue
		}
		t.Fatalf("pgtest: pg_ctl start %s: %v: %s", n.Name, err, out)
	}
}

// Stop stops node in immediate mode if it runs.
func (p *Pair) Stop(t testing.TB, n *Node) {
	t.Helper()
	if err := p.runner.stop(n); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// cleanup stops both servers and, when the test failed, logs the end of
// their logs.
func (p *Pair) cleanup(t testing.TB) {
	for _, n := range []*Node{p.Standby, p.Primary} {
		if err := p.runner.stop(n); err != nil {
			t.Errorf("pgtest: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(n.LogFile)
			t.Logf("pgtest: end of %s log %s:\n%s", n.Name, n.LogFile, tail(string(b), 4096))
		}
	}
}

// appendFile appends s to path.
func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = f.WriteString(s)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		t.Fatalf("pgtest: append to %s: %v", path, err)
	}
}

// freePort returns a TCP port on 127.0.0.1 the kernel just handed out,
// and that no deployment of this test process was handed before
// (devcluster.FreePorts keeps the record).
func freePort(t testing.TB) int {
	t.Helper()
	ports, err := devcluster.FreePorts(1)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return ports[0]
}

// opContext is a context for one operation.
func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// TempDir returns a new directory, removed when the test ends, that RunAs
// may traverse but not list: a place for the directories a test hands to
// PostgreSQL's user, such as a backup repository or a restore target.
func TempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	traversable(t, dir)
	return dir
}

// FreePort returns a TCP port on 127.0.0.1 the kernel just handed out, for
// a server a test starts besides a Pair's.
func FreePort(t testing.TB) int {
	t.Helper()
	return freePort(t)
}
