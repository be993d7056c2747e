package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/devcluster"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// PGPort is the port every PostgreSQL host listens on: each host has an
// address of its own, so the default port never collides.
const PGPort = 5432

// pgOpTimeout bounds one initdb, pg_basebackup or pg_ctl run.
const pgOpTimeout = 90 * time.Second

// pgConf is appended to the primary's postgresql.conf, and so copied to
// the standby: what streaming replication and pg_rewind need, small and
// fast for tests. listen_addresses '*' binds every address of the host's
// own namespace, which is its IP (and its loopback): exactly that host.
const pgConf = `
# netns harness
listen_addresses = '*'
wal_level = replica
max_wal_senders = 10
wal_log_hints = on            # pg_rewind needs it
hot_standby = on
wal_keep_size = '128MB'       # keeps the WAL pg_rewind reads from its source
max_connections = 40
shared_buffers = '16MB'
fsync = off                   # tests kill processes, never the machine's power
wal_retrieve_retry_interval = '100ms'
dynamic_shared_memory_type = mmap   # in the data dir: a SIGKILLed host leaves nothing in /dev/shm
`

// Postgres is one PostgreSQL cluster on a host of a topology. Its files
// live on the shared filesystem (Dir, owned by the postgres user); only
// its network is the host's.
type Postgres struct {
	Host *Host
	// Dir holds DataDir and LogFile and is the unix socket directory,
	// as the agent's postgres driver expects (the data dir's parent).
	Dir     string
	DataDir string
	// LogFile is the driver's default log for a service named
	// "postgres", so the harness and the agent write one log.
	LogFile string
	Port    int

	uid, gid int
	home     string
}

// NewPostgres lays out a cluster's directories under dir for host h; it
// creates nothing else.
func NewPostgres(h *Host, dir string) (*Postgres, error) {
	u, err := user.Lookup(PGUser)
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	p := &Postgres{Host: h, Dir: dir, DataDir: filepath.Join(dir, "data"), LogFile: filepath.Join(dir, "postgres.log"),
		Port: PGPort, uid: uid, gid: gid, home: u.HomeDir}
	for _, d := range []string{p.Dir, p.DataDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
		if err := os.Chown(d, uid, gid); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(p.LogFile, nil, 0o640); err != nil {
		return nil, err
	}
	return p, os.Chown(p.LogFile, uid, gid)
}

// Addr is the address clients connect to.
func (p *Postgres) Addr() string { return fmt.Sprintf("%s:%d", p.Host.IP, p.Port) }

// Service is the agent's declaration of this cluster as service
// "postgres"; drillPort is its drill copy's port.
func (p *Postgres) Service(drillPort int) config.ServiceConfig {
	return config.ServiceConfig{
		Name: "postgres", Driver: config.DriverPostgres, DataDir: p.DataDir, Port: p.Port,
		BinDir: PGBinDir, RunAs: PGUser, StopTimeout: 10 * time.Second,
		Drill: &config.DrillConfig{Port: drillPort},
	}
}

// InitPrimary runs initdb and configures replication; clients of the
// topology's addresses (10.77.0.0/16) are trusted.
func (p *Postgres) InitPrimary() error {
	if _, err := p.run(false, "initdb", "-D", p.DataDir, "--auth=trust", "-U", PGUser, "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return err
	}
	if err := appendFile(filepath.Join(p.DataDir, "postgresql.conf"), pgConf); err != nil {
		return err
	}
	return appendFile(filepath.Join(p.DataDir, "pg_hba.conf"),
		"\nhost all all 10.77.0.0/16 trust\nhost replication all 10.77.0.0/16 trust\n")
}

// CloneFrom makes this cluster a streaming standby of up with
// pg_basebackup, run on this host so that it crosses the topology.
func (p *Postgres) CloneFrom(up *Postgres) error {
	_, err := p.run(true, "pg_basebackup", "-D", p.DataDir, "-R", "-X", "stream", "-c", "fast", "-N",
		"-h", up.Host.IP, "-p", strconv.Itoa(up.Port), "-U", PGUser, "-w")
	return err
}

// Start starts the server inside its host's namespace as the driver
// does (port and socket directory on the command line) and waits until
// it accepts connections, as a host's init system would at boot.
func (p *Postgres) Start() error {
	_, err := p.run(true, "pg_ctl", "start", "-w", "-D", p.DataDir, "-l", p.LogFile,
		"-o", fmt.Sprintf("-p %d -k %s", p.Port, p.Dir))
	return err
}

// StopImmediate stops a running server in immediate mode, which also
// releases its shared memory; a stopped one is left alone.
func (p *Postgres) StopImmediate() error {
	if p.PostmasterPID() == 0 {
		return nil
	}
	_, err := p.run(false, "pg_ctl", "stop", "-D", p.DataDir, "-m", "immediate", "-w")
	return err
}

// PostmasterPID is the pid of the running postmaster, or 0.
func (p *Postgres) PostmasterPID() int {
	return postmasterPID(p.DataDir)
}

// Connect opens a connection to the server from host from, over the
// topology (TCP to the server's address).
func (p *Postgres) Connect(ctx context.Context, from *Host) (*pgx.Conn, error) {
	return connectPG(ctx, p.Addr(), from)
}

// connectPG connects to the PostgreSQL server (or proxy) at addr from
// the host from, as the harness's database user.
func connectPG(ctx context.Context, addr string, from *Host) (*pgx.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s dbname=postgres application_name=netns connect_timeout=5",
		host, port, PGUser))
	if err != nil {
		return nil, err
	}
	cfg.DialFunc = from.DialContext
	return pgx.ConnectConfig(ctx, cfg)
}

// QueryString runs a query returning one value on the server, from its
// own host (which reaches it whatever the links), and returns it as text
// ("" for NULL).
func (p *Postgres) QueryString(ctx context.Context, sql string, args ...any) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := p.Connect(ctx, p.Host)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var s *string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&s); err != nil || s == nil {
		return "", err
	}
	return *s, nil
}

// Exec runs a statement on the server from its own host.
func (p *Postgres) Exec(ctx context.Context, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := p.Connect(ctx, p.Host)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// run runs a PostgreSQL program as the postgres user, inside the host's
// namespace when inNS, and returns its combined output.
func (p *Postgres) run(inNS bool, prog string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgOpTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(PGBinDir, prog), args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + p.home, "USER=" + PGUser, "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.gid)}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var err error
	if inNS {
		err = p.Host.Run(cmd)
	} else {
		err = cmd.Run()
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s on %s: %s %s: %w: %s", prog, p.Host.Name, prog, strings.Join(args, " "), err, tail(out.String(), 2048))
	}
	return out.String(), nil
}

// pidFilesUnder lists every postmaster.pid under dir.
func pidFilesUnder(dir string) []string {
	var pidFiles []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "postmaster.pid" {
			pidFiles = append(pidFiles, path)
		}
		return nil
	})
	return pidFiles
}

// RemoveStaleSegments removes the SysV shared memory segment that every
// killed postmaster under dir left behind (PostgreSQL removes it on a
// clean stop, or at its next start); call it once nothing runs.
func RemoveStaleSegments(dir string) {
	for _, f := range pidFilesUnder(dir) {
		if postmasterPID(filepath.Dir(f)) == 0 {
			removeStaleSegment(f)
		}
	}
}

// StopAllUnder stops, in immediate mode, every PostgreSQL server whose data
// directory is under dir and whose postmaster runs: the harness's own, the
// ones the agents' drivers restarted, and drill copies.
func StopAllUnder(dir string) error {
	var errs []error
	for _, f := range pidFilesUnder(dir) {
		dataDir := filepath.Dir(f)
		if postmasterPID(dataDir) != 0 {
			p := &Postgres{Host: &Host{Name: "(cleanup)"}, DataDir: dataDir}
			if u, err := user.Lookup(PGUser); err == nil {
				p.uid, _ = strconv.Atoi(u.Uid)
				p.gid, _ = strconv.Atoi(u.Gid)
				p.home = u.HomeDir
			}
			if err := p.StopImmediate(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// postmasterPID reads postmaster.pid in dataDir and returns its pid when
// that process runs (a killed postmaster nobody reaped yet does not).
func postmasterPID(dataDir string) int {
	lines := postmasterLines(filepath.Join(dataDir, "postmaster.pid"))
	if len(lines) == 0 {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 || !devcluster.ProcessAlive(pid) {
		return 0
	}
	return pid
}

func postmasterLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Split(string(b), "\n")
}

// removeStaleSegment removes the SysV segment named on line 7 of a
// postmaster.pid ("key id") when it still has that key and nothing is
// attached.
func removeStaleSegment(pidFile string) {
	lines := postmasterLines(pidFile)
	if len(lines) < 7 {
		return
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return
	}
	key, err1 := strconv.ParseInt(f[0], 10, 64)
	id, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return
	}
	var ds unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err != nil {
		return
	}
	if int64(ds.Perm.Key) == key && ds.Nattch == 0 {
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	}
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	return errors.Join(err, f.Close())
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Crash kills the postmaster and its children with SIGKILL, as a crash
// (or the kernel's OOM killer) would, and returns the postmaster's pid.
// The agent on the host goes on running.
func (p *Postgres) Crash() (int, error) {
	pid := p.PostmasterPID()
	if pid == 0 {
		return 0, fmt.Errorf("crash %s: PostgreSQL is not running", p.Host.Name)
	}
	children := childrenOf(pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("crash %s: %w", p.Host.Name, err)
	}
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	return pid, nil
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read
		// after its closing parenthesis.
		rest := string(stat)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		if f := strings.Fields(rest); len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// BreakStart makes every later start of the server fail at once: a
// setting PostgreSQL cannot parse, as a bad edit or a corrupted file
// would leave.
func (p *Postgres) BreakStart() error {
	return appendFile(filepath.Join(p.DataDir, "postgresql.auto.conf"), "\nthis line is not a setting\n")
}
