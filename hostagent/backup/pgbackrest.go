package backup

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/drplane/drplane/internal/backuprules"
	"github.com/drplane/drplane/internal/osuser"
	"github.com/drplane/drplane/internal/tail"
	"github.com/hashicorp/go-hclog"
)

// Defaults of PgBackRestConfig.
const (
	defaultBinary = "pgbackrest"
	defaultRunAs  = "postgres"
	defaultBinDir = "/usr/lib/postgresql/15/bin"
)

// confFileName is the engine's configuration file inside ConfigDir.
const confFileName = "pgbackrest.conf"

// outputTail bounds how much of pgBackRest's standard error goes into an
// error.
const outputTail = 4096

// roleRE is the PostgreSQL role names allowed.
var roleRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`)

// PgBackRestConfig configures one pgBackRest stanza managed by the agent:
// one PostgreSQL cluster backed up into one repository.
type PgBackRestConfig struct {
	// Stanza names the cluster in the repository, e.g. the backup block's
	// name: letters, digits, _ and -.
	Stanza string
	// Repository is the local directory pgBackRest stores backups and WAL
	// in (repo1-path).
	Repository string
	// DataDir is the cluster's data directory (pg1-path).
	DataDir string
	// Port is the port the cluster listens on (pg1-port).
	Port int
	// SocketDir is the cluster's unix socket directory (pg1-socket-path).
	SocketDir string
	// User is the superuser pgBackRest connects as (pg1-user); default
	// RunAs.
	User string
	// RunAs is the OS user pgBackRest and PostgreSQL run as; default
	// "postgres".
	RunAs string
	// ConfigDir is where the engine writes its pgbackrest.conf; pgBackRest
	// always runs with --config naming that file. RunAs must be able to
	// reach it, since archive_command runs pgBackRest as RunAs.
	ConfigDir string
	// KeepFull is how many full backups to keep (repo1-retention-full);
	// default 2. Older ones, and the WAL only they need, are expired after
	// each backup.
	KeepFull int
	// ProcessMax is how many processes copy and compress in parallel
	// (process-max); default 2.
	ProcessMax int
	// Binary is the pgbackrest executable; "pgbackrest", found on PATH, by
	// default. It is resolved to an absolute path, which archive_command
	// then names.
	Binary string
	// BinDir holds PostgreSQL's programs, pg_ctl for Verify; default
	// /usr/lib/postgresql/15/bin.
	BinDir string
}

// setDefaults fills zero values.
func (c *PgBackRestConfig) setDefaults() {
	c.RunAs = or(c.RunAs, defaultRunAs)
	c.User = or(c.User, c.RunAs)
	c.Binary = or(c.Binary, defaultBinary)
	c.BinDir = or(c.BinDir, defaultBinDir)
	if c.KeepFull == 0 {
		c.KeepFull = backuprules.DefaultKeepFull
	}
	if c.ProcessMax == 0 {
		c.ProcessMax = backuprules.DefaultProcessMax
	}
}

// Validate checks a config after defaults: every value that reaches the
// configuration file, a command line or archive_command must be plain.
func (c *PgBackRestConfig) Validate() error {
	if !backuprules.StanzaRE.MatchString(c.Stanza) {
		return fmt.Errorf("%w: stanza %q must be 1 to 64 letters, digits, _ and -", ErrInvalid, c.Stanza)
	}
	for _, f := range []struct{ name, path string }{
		{"repository", c.Repository}, {"data_dir", c.DataDir}, {"socket_dir", c.SocketDir},
		{"config_dir", c.ConfigDir}, {"bin_dir", c.BinDir},
	} {
		if err := validPath(f.name, f.path); err != nil {
			return err
		}
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("%w: port %d is not between 1 and 65535", ErrInvalid, c.Port)
	}
	for _, r := range []string{c.User, c.RunAs} {
		if !roleRE.MatchString(r) {
			return fmt.Errorf("%w: user name %q is not a plain identifier", ErrInvalid, r)
		}
	}
	if c.KeepFull < 1 || c.ProcessMax < 1 {
		return fmt.Errorf("%w: keep_full (%d) and process_max (%d) must be at least 1", ErrInvalid, c.KeepFull, c.ProcessMax)
	}
	return nil
}

// validPath checks that path is clean, absolute and shell-safe.
func validPath(name, path string) error {
	if !backuprules.PathRE.MatchString(path) || filepath.Clean(path) != path {
		return fmt.Errorf("%w: %s %q must be a clean absolute path of letters, digits and ._/+@,=-", ErrInvalid, name, path)
	}
	return nil
}

// or returns s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// PgBackRest is the backup engine of one stanza. It keeps no state
// between calls: the repository is the state, and pgBackRest's own locks
// keep two backups of a stanza from running at once.
type PgBackRest struct {
	cfg    PgBackRestConfig
	logger hclog.Logger
	user   *osuser.User
}

// NewPgBackRest fills cfg's defaults, validates it, looks up RunAs and
// finds the pgbackrest binary. It runs nothing: Configure writes the
// configuration and StanzaCreate prepares the repository.
func NewPgBackRest(cfg PgBackRestConfig, logger hclog.Logger) (*PgBackRest, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pgbackrest stanza %s: %w", cfg.Stanza, err)
	}
	bin, err := exec.LookPath(cfg.Binary)
	if err == nil {
		bin, err = filepath.Abs(bin)
	}
	if err != nil {
		return nil, fmt.Errorf("pgbackrest stanza %s: find %s: %w", cfg.Stanza, cfg.Binary, err)
	}
	cfg.Binary = bin
	if err := validPath("binary", cfg.Binary); err != nil {
		return nil, fmt.Errorf("pgbackrest stanza %s: %w", cfg.Stanza, err)
	}
	user, err := osuser.Lookup(cfg.RunAs)
	if err != nil {
		return nil, fmt.Errorf("pgbackrest stanza %s: %w", cfg.Stanza, err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &PgBackRest{cfg: cfg, logger: logger.Named("pgbackrest").With("stanza", cfg.Stanza), user: user}, nil
}

// ConfigFile is the configuration file pgBackRest always runs with.
func (e *PgBackRest) ConfigFile() string { return filepath.Join(e.cfg.ConfigDir, confFileName) }

// ArchiveCommand is what archive_command must be on the primary for
// its WAL to reach the repository. The paths in it are validated
// shell-safe.
func (e *PgBackRest) ArchiveCommand() string {
	return strings.Join(append(e.globalArgs(), "archive-push", "%p"), " ")
}

// RestoreCommand is the restore_command that fetches WAL from the
// repository, for a standby or a restored cluster.
func (e *PgBackRest) RestoreCommand() string {
	return strings.Join(append(e.globalArgs(), "archive-get", "%f", `"%p"`), " ")
}

// globalArgs is the binary and the options every invocation starts with.
func (e *PgBackRest) globalArgs() []string {
	return []string{e.cfg.Binary, "--config=" + e.ConfigFile(), "--stanza=" + e.cfg.Stanza}
}

// StanzaCreate creates the stanza in the repository. The cluster must
// run. It is idempotent: pgBackRest accepts a stanza that exists and
// matches the cluster. One that does not match (the cluster was upgraded
// or replaced) fails with pgBackRest's explanation; an upgrade then needs
// stanza-upgrade, which is left to the operator.
func (e *PgBackRest) StanzaCreate(ctx context.Context) error {
	if _, err := e.run(ctx, nil, "stanza-create"); err != nil {
		return fmt.Errorf("create stanza %s: %w", e.cfg.Stanza, err)
	}
	e.logger.Info("stanza ready")
	return nil
}

// Check runs pgbackrest check on the running primary: the configuration
// is valid and a WAL segment, switched for the purpose, reaches the
// repository. It fails when archive_command is not in effect.
func (e *PgBackRest) Check(ctx context.Context) error {
	if _, err := e.run(ctx, nil, "check"); err != nil {
		return fmt.Errorf("check stanza %s: %w", e.cfg.Stanza, err)
	}
	return nil
}

// run runs pgbackrest as RunAs with the global options and args and
// returns its standard output. With a progress function, it also asks
// for info-level output and reports each line as it comes. The error
// names the command and carries the end of pgBackRest's standard error,
// which is where it explains (secrets there are redacted by pgBackRest,
// and there are none in arguments).
func (e *PgBackRest) run(ctx context.Context, progress Progress, args ...string) ([]byte, error) {
	global := e.globalArgs()
	if progress != nil {
		global = append(global, "--log-level-console=info")
	}
	cmd := e.user.Command(ctx, global[0], append(global[1:], args...)...)
	ownProcessGroup(cmd)
	var stdout bytes.Buffer
	stderr := &tail.Buffer{Max: outputTail}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("pgbackrest %s: %w", args[0], err)
	}
	e.logger.Debug("running pgbackrest", "args", args)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgbackrest %s: %w", args[0], err)
	}
	e.copyOutput(out, &stdout, progress)
	if err := cmd.Wait(); err != nil {
		return stdout.Bytes(), fmt.Errorf("pgbackrest %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// ownProcessGroup runs cmd in a process group of its own and, when its
// context ends, kills the whole group: pgBackRest runs its copying in
// child processes (process-max), which would outlive a kill of the main
// one (an agent stopping mid-backup) and keep working on the repository.
func ownProcessGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// copyOutput copies pgBackRest's standard output into buf, reporting each
// log line's message to progress when there is one.
func (e *PgBackRest) copyOutput(out io.Reader, buf *bytes.Buffer, progress Progress) {
	if progress == nil {
		_, _ = io.Copy(buf, out)
		return
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		buf.Write(sc.Bytes())
		buf.WriteByte('\n')
		if msg, ok := logMessage(sc.Text()); ok {
			progress("%s", msg)
		}
	}
	// Drain what the scanner refused so pgBackRest never blocks on a full
	// pipe.
	_, _ = io.Copy(buf, out)
}

// logMessage returns the message of one of pgBackRest's info lines,
// "2024-01-02 03:04:05.678 P00   INFO: backup start archive = ...",
// leaving out the "command begin" line, which is only the option list.
func logMessage(line string) (string, bool) {
	_, msg, ok := strings.Cut(line, "INFO: ")
	if !ok || strings.Contains(msg, "command begin") {
		return "", false
	}
	return msg, true
}
