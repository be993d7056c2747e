package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// pg_ctl status exit codes.
const (
	pgCtlStatusRunning    = 0
	pgCtlStatusNotRunning = 3
	pgCtlStatusNoDataDir  = 4
)

// pgOutputTail bounds how much program output goes into an error.
const pgOutputTail = 2048

// command builds a PostgreSQL program invocation running as RunAs, with
// a clean environment: no PG* variable of the agent's may redirect a
// pg_rewind or pick another data directory.
func (p *Postgres) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	return p.cred.Command(ctx, filepath.Join(p.cfg.BinDir, prog), args...)
}

// run runs prog to completion and returns its combined output. On failure
// the error carries the end of the output, which is where PostgreSQL
// programs say what went wrong.
func (p *Postgres) run(ctx context.Context, prog string, args ...string) (string, error) {
	cmd := p.command(ctx, prog, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	p.logger.Debug("ran postgres program", "program", prog, "args", args, "output", out.String(), "error", err)
	if err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", prog, err, pgTail(out.String()))
	}
	return out.String(), nil
}

// pgTail returns the last pgOutputTail bytes of s, trimmed.
func pgTail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > pgOutputTail {
		s = "..." + s[len(s)-pgOutputTail:]
	}
	return s
}

// runningInRecovery reports whether the running server is a standby; it
// fails with ErrPostgresNotRunning when the server does not run.
func (p *Postgres) runningInRecovery(ctx context.Context) (bool, error) {
	running, err := p.running(ctx)
	if err != nil {
		return false, err
	}
	if !running {
		return false, ErrPostgresNotRunning
	}
	return p.inRecovery(ctx)
}

// running asks pg_ctl status whether a postmaster runs on DataDir. A
// missing data directory is a stopped server (Demote may be about to
// create it).
func (p *Postgres) running(ctx context.Context) (bool, error) {
	_, err := p.run(ctx, "pg_ctl", "status", "-D", p.cfg.DataDir)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee) && ee.ExitCode() == pgCtlStatusNotRunning,
		errors.As(err, &ee) && ee.ExitCode() == pgCtlStatusNoDataDir:
		return false, nil
	}
	return false, fmt.Errorf("check whether postgres runs: %w", err)
}

// postmasterPID reads the first line of postmaster.pid, or 0.
func (p *Postgres) postmasterPID() int {
	lines := p.postmasterLines()
	if len(lines) == 0 {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(lines[0]))
	return pid
}

// postmasterLines returns postmaster.pid's lines: pid, data directory,
// start time, port, first socket directory, first listen address, ...
func (p *Postgres) postmasterLines() []string {
	b, err := os.ReadFile(filepath.Join(p.cfg.DataDir, "postmaster.pid"))
	if err != nil {
		return nil
	}
	return strings.Split(string(b), "\n")
}

// pgCtlStart starts the postmaster and waits until it accepts
// connections. The agent opens the log file and hands it over as the
// server's stdout and stderr rather than passing pg_ctl -l: RunAs may
// not be able to reach the agent's state directory, and the only options
// in -o are the validated port and socket directory.
func (p *Postgres) pgCtlStart(ctx context.Context) error {
	logf, err := os.OpenFile(p.cfg.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	defer logf.Close()
	offset, _ := logf.Seek(0, io.SeekEnd)
	opts := fmt.Sprintf("-p %d -k %s", p.cfg.Port, p.cfg.SocketDir)
	cmd := p.command(ctx, "pg_ctl", "start", "-w", "-D", p.cfg.DataDir, "-o", opts)
	// An *os.File is inherited as is, so Wait does not wait for the
	// postmaster, which keeps it open.
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_ctl start: %w: %s", err, p.logSince(offset))
	}
	return nil
}

// logSince returns the end of what the server logged after offset.
func (p *Postgres) logSince(offset int64) string {
	f, err := os.Open(p.cfg.LogFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, math.MaxInt64-offset))
	return pgTail(string(b))
}

// pgCtlStop stops the postmaster in mode and waits up to timeout.
func (p *Postgres) pgCtlStop(ctx context.Context, mode string, timeout time.Duration) error {
	secs := strconv.Itoa(int(math.Ceil(timeout.Seconds())))
	_, err := p.run(ctx, "pg_ctl", "stop", "-D", p.cfg.DataDir, "-m", mode, "-w", "-t", secs)
	return err
}
