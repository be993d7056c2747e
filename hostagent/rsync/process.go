package rsync

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// exitKilled is reported as the exit code of an rsync killed by a signal
// it did not handle, as a shell would: 128 plus the signal number.
const exitKilled = 128

// rsyncEnv is this process's environment without RSYNC_* variables, which
// would change what rsync sends or accepts (RSYNC_OLD_ARGS and
// RSYNC_PROTECT_ARGS change the remote command the allow-list checks,
// RSYNC_PARTIAL_DIR where unfinished files go).
func rsyncEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RSYNC_") {
			env = append(env, kv)
		}
	}
	return env
}

// exitCode turns the error of exec.Cmd.Wait into rsync's exit code. ok is
// false when err is not about how the process exited (for example a pipe
// that failed to close).
func exitCode(err error) (code int, ok bool) {
	if err == nil {
		return 0, true
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, false
	}
	if ws, isWS := ee.Sys().(syscall.WaitStatus); isWS && ws.Signaled() {
		return exitKilled + int(ws.Signal()), true
	}
	return ee.ExitCode(), true
}
