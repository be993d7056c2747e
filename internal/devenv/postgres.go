package devenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drplane/drplane/internal/devcluster"
	"github.com/jackc/pgx/v5"
)

const (
	// pgBinDir holds the PostgreSQL 15 programs (Debian's layout).
	pgBinDir = "/usr/lib/postgresql/15/bin"
	// pgRunAs is the OS user the servers run as: PostgreSQL refuses root.
	pgRunAs = "postgres"
	// pgOpTimeout bounds one initdb, pg_ctl or pg_basebackup run.
	pgOpTimeout = time.Minute
	// pgMaxSocketPath is the longest unix socket path PostgreSQL binds.
	pgMaxSocketPath = 107
)

// pgConf is appended to the primary's postgresql.conf, and so copied to
// the standby: what streaming replication and pg_rewind (the reprotect
// step of a switchover) need, small and fast for a dev machine.
const pgConf = `
# drplane dev
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 10
wal_log_hints = on            # pg_rewind needs it
hot_standby = on
wal_keep_size = '128MB'       # the WAL pg_rewind reads from its source
max_connections = 30
shared_buffers = '16MB'
fsync = off                   # dev only: a crash of the machine may lose data, a killed process does not
wal_retrieve_retry_interval = '100ms'  # standbys reconnect quickly after a switchover
`

// pgHBA is appended to pg_hba.conf: standbys stream over loopback.
const pgHBA = "\nhost replication all 127.0.0.1/32 trust\n"

// pgUser is the PostgreSQL user programs are run as.
type pgUser struct {
	uid, gid uint32
	home     string
}

// lookupPostgres returns the PostgreSQL user when PostgreSQL 15 can run
// here, or why it cannot.
func lookupPostgres() (*pgUser, string) {
	if _, err := os.Stat(filepath.Join(pgBinDir, "initdb")); err != nil {
		return nil, fmt.Sprintf("PostgreSQL 15 is not installed: %v", err)
	}
	if os.Geteuid() != 0 {
		return nil, "not running as root, which running the servers as the " + pgRunAs + " user needs"
	}
	u, err := user.Lookup(pgRunAs)
	if err != nil {
		return nil, fmt.Sprintf("no %s user: %v", pgRunAs, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Sprintf("user %s: %v", pgRunAs, err)
	}
	return &pgUser{uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}, ""
}

// run runs a PostgreSQL program as the user and returns its output; the
// error carries the end of it, where PostgreSQL says what went wrong.
func (u *pgUser) run(ctx context.Context, prog string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, pgOpTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(pgBinDir, prog), args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + u.home, "USER=" + pgRunAs, "LC_ALL=C"}
	// Its own process group, killed whole when ctx ends: pg_basebackup
	// forks a WAL streamer that would otherwise outlive it and hold the
	// output pipe open, so that Wait never returns.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid}, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, tail(out.String(), 2048))
	}
	return out.String(), nil
}

// pgNode is the PostgreSQL server of one db host.
type pgNode struct {
	Host string
	// DataDir's parent is the socket directory, as the agent's driver
	// uses it, owned by the PostgreSQL user.
	DataDir string
	// LogFile is the log of the first start; the agent's driver logs to
	// its own data dir when it restarts the server.
	LogFile         string
	Port, DrillPort int
}

// DSN connects the application named app to the server.
func (n *pgNode) DSN(app string) string { return pgDSN(n.Port, app) }

// DrillDSN connects to the server's drill copy.
func (n *pgNode) DrillDSN(app string) string { return pgDSN(n.DrillPort, app) }

func pgDSN(port int, app string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable connect_timeout=2 application_name=%s", port, pgRunAs, app)
}

// PostmasterPID is the pid of the running postmaster, 0 when none runs.
func (n *pgNode) PostmasterPID() int {
	return postmasterPID(filepath.Join(n.DataDir, "postmaster.pid"))
}

// pgPair is the primary on db-1 and its streaming standby on db-2.
type pgPair struct {
	user             *pgUser
	primary, standby *pgNode
	// backups: pgbackrest is installed, both servers archive into one
	// repository (archive_mode on from the start) and the db agents
	// declare a backup block.
	backups bool
}

// pgBackupConf is appended to postgresql.conf with backups: the agent
// sets archive_command, which takes effect with a reload.
const pgBackupConf = "archive_mode = on               # the agents' backup block sets archive_command\n"

// BackupBlock is the name of the db agents' backup block (pgBackRest's
// stanza) in `drplane dev`.
const BackupBlock = "pg"

// newPGPair lays out both servers' directories; ports are the primary's
// and the standby's ports, then their drill ports.
func newPGPair(u *pgUser, primaryDir, standbyDir string, ports []int) (*pgPair, error) {
	p := &pgPair{user: u}
	for i, hd := range []struct{ id, dir string }{{"db-1", primaryDir}, {"db-2", standbyDir}} {
		pgDir := filepath.Join(hd.dir, "pg")
		n := &pgNode{Host: hd.id, DataDir: filepath.Join(pgDir, "data"), LogFile: filepath.Join(pgDir, "postgres.log"),
			Port: ports[i], DrillPort: ports[2+i]}
		if sock := filepath.Join(pgDir, ".s.PGSQL.65535"); len(sock) > pgMaxSocketPath {
			return nil, fmt.Errorf("PostgreSQL's unix socket %s would be longer than %d bytes: give a shorter --dir", sock, pgMaxSocketPath)
		}
		if err := mkdirMode(hd.dir, 0o711); err != nil {
			return nil, err
		}
		if err := mkdirMode(pgDir, 0o700); err != nil {
			return nil, err
		}
		if err := os.Chown(pgDir, int(u.uid), int(u.gid)); err != nil {
			return nil, fmt.Errorf("give %s to %s: %w", pgDir, pgRunAs, err)
		}
		if i == 0 {
			p.primary = n
		} else {
			p.standby = n
		}
	}
	return p, nil
}

// start initdbs and starts the primary, clones the standby from it with
// pg_basebackup and starts it, and waits until it streams. The agents
// adopt both servers when they start.
func (p *pgPair) start(ctx context.Context) error {
	pr, sb := p.primary, p.standby
	if _, err := p.user.run(ctx, "initdb", "-D", pr.DataDir, "--auth=trust", "-U", pgRunAs, "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return err
	}
	conf := pgConf
	if p.backups {
		conf += pgBackupConf
	}
	if err := appendFile(filepath.Join(pr.DataDir, "postgresql.conf"), conf); err != nil {
		return err
	}
	if err := appendFile(filepath.Join(pr.DataDir, "pg_hba.conf"), pgHBA); err != nil {
		return err
	}
	if err := p.pgCtlStart(ctx, pr); err != nil {
		return err
	}
	if _, err := p.user.run(ctx, "pg_basebackup", "-D", sb.DataDir, "-R", "-X", "stream", "-c", "fast", "-N",
		"-h", "127.0.0.1", "-p", strconv.Itoa(pr.Port), "-U", pgRunAs, "-w"); err != nil {
		return err
	}
	if err := p.pgCtlStart(ctx, sb); err != nil {
		return err
	}
	return poll(ctx, startTimeout, "the standby on db-2 streaming from db-1", func() error { return streaming(ctx, sb) })
}

// pgCtlStart starts n as the agent's driver would: port and socket
// directory on the command line, since the standby's configuration is a
// copy of the primary's.
func (p *pgPair) pgCtlStart(ctx context.Context, n *pgNode) error {
	_, err := p.user.run(ctx, "pg_ctl", "start", "-w", "-D", n.DataDir, "-l", n.LogFile,
		"-o", fmt.Sprintf("-p %d -k %s", n.Port, filepath.Dir(n.DataDir)))
	if err != nil {
		return fmt.Errorf("start PostgreSQL on %s: %w\n%s", n.Host, err, devcluster.Tail(n.LogFile, 2048))
	}
	return nil
}

// streaming reports nil once n is a standby whose WAL receiver streams.
func streaming(ctx context.Context, n *pgNode) error {
	var ok bool
	err := withConn(ctx, n.DSN("drplane-dev"), func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT pg_is_in_recovery() AND
			EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')`).Scan(&ok)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", n.Host, err)
	}
	if !ok {
		return fmt.Errorf("%s is not a streaming standby yet", n.Host)
	}
	return nil
}

// withConn runs f on a fresh connection.
func withConn(ctx context.Context, dsn string, f func(context.Context, *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return f(ctx, conn)
}

// stopPostmasters stops every PostgreSQL server whose data directory is
// under dir: the two of the deployment wherever a plan left them, and
// drill copies a cancelled drill left behind. SIGQUIT is PostgreSQL's
// immediate shutdown (the postmaster takes its children with it); one
// that is still there after a few seconds is killed.
func stopPostmasters(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "postmaster.pid" {
			if pid := postmasterPID(path); pid > 0 && isPostgres(pid) {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGQUIT)
	}
	for _, pid := range pids {
		if !waitGone(pid, 10*time.Second) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 5*time.Second)
		}
	}
	return pids
}

// postmasterPID reads the pid in a postmaster.pid file, 0 when the file
// is missing or the process is gone.
func postmasterPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 || !devcluster.ProcessAlive(pid) {
		return 0
	}
	return pid
}

// isPostgres reports whether pid runs a PostgreSQL program: a pid file
// may outlive its process, and the pid be reused.
func isPostgres(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.HasPrefix(exe, pgBinDir+"/")
}

// appendFile appends s to path.
func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if err := errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
