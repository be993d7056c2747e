package devcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// exitTimeout bounds the wait for a signalled process to exit.
const exitTimeout = 30 * time.Second

// proc is one child process of the harness: a server or an agent. Its
// output is appended to a log file that survives restarts.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Running reports whether the process is alive.
func (p *proc) Running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Pid is the process id of the last start, or 0 before the first.
func (p *proc) Pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// start runs name with args and env (nil: the harness's own), appending
// stdout and stderr to logPath.
func (p *proc) start(what, logPath string, env []string, name string, args ...string) error {
	if p.Running() {
		return fmt.Errorf("start %s: already running as pid %d", what, p.Pid())
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log for %s: %w", what, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a kill reaches nothing else of ours.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", what, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		_ = f.Close()
		close(done)
	}(p.done)
	return nil
}

// signal sends sig and waits for the process to exit; a process that
// outlives exitTimeout is killed.
func (p *proc) signal(what string, sig syscall.Signal) error {
	if !p.Running() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", what, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(exitTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %s of %s", what, exitTimeout, sig)
	}
}

// withFastRaceExit returns env with GORACE telling binaries built with
// -race not to sleep a second at exit: every CLI call and rsync tunnel
// would pay it.
func withFastRaceExit(env []string) []string {
	const key = "GORACE="
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, key); ok {
			out := append([]string(nil), env...)
			out[i] = key + strings.TrimSpace(v+" atexit_sleep_ms=0")
			return out
		}
	}
	return append(append([]string(nil), env...), key+"atexit_sleep_ms=0")
}

// Tail returns the last n bytes of the file at path, or a note saying why
// it cannot be read; for logs printed when a test fails.
func Tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot stat %s: %v)", path, err)
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	if off > 0 {
		return "...\n" + string(buf)
	}
	return string(buf)
}
