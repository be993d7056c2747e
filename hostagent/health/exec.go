package health

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/drplane/drplane/internal/tail"
)

const (
	// execOutputTail is how much of a failed command's output its error
	// keeps.
	execOutputTail = 512
	// execWaitDelay bounds how long a killed command's children may keep
	// its output open.
	execWaitDelay = time.Second
)

// execCheck is healthy when a command exits 0.
type execCheck struct {
	argv    []string
	timeout time.Duration
}

var _ Check = (*execCheck)(nil)

// NewExec returns a check that runs argv directly, never through a
// shell, and is healthy when it exits 0. The error of a failed run ends
// with the tail of its combined output.
func NewExec(argv []string, timeout time.Duration) Check {
	return &execCheck{argv: append([]string(nil), argv...), timeout: timeout}
}

// Check runs the command. It runs in its own process group, which is
// killed when the timeout passes, so that a script's children die with
// it.
func (c *execCheck) Check(ctx context.Context) error {
	if len(c.argv) == 0 || c.argv[0] == "" {
		return errors.New("exec check has no command")
	}
	ctx, cancel := withTimeout(ctx, c.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = execWaitDelay
	out := &tail.Buffer{Max: execOutputTail}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("%s: timed out: %w%s", c, ctx.Err(), suffix(out))
	}
	if err != nil {
		return fmt.Errorf("%s: %w%s", c, err, suffix(out))
	}
	return nil
}

func (c *execCheck) String() string { return "exec " + strings.Join(c.argv, " ") }

// suffix is the kept output formatted for the end of an error message.
func suffix(b *tail.Buffer) string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return ""
	}
	if b.Truncated() {
		s = "..." + s
	}
	return ": " + s
}
