package devenv

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drplane/drplane/internal/devcluster"
)

// cleanup stops every process of the deployment, whatever state a start
// or a plan left it in, and removes the directory unless the caller
// named it. It runs on every exit of Run, including a panic.
func (e *env) cleanup() {
	e.say("==> Stopping every process of the deployment")
	if e.c != nil {
		// Agents first, then the services their process driver started
		// (which outlive an agent by design), then the servers.
		e.c.Close()
	}
	drills := stopDrillCopies(e.dir)
	pgs := stopPostmasters(e.dir)
	left := e.sweep()
	e.pids.removeAll()
	if len(drills)+len(pgs)+len(left) > 0 {
		e.say("    stopped %d drill copies, %d PostgreSQL servers, %d other processes", len(drills), len(pgs), len(left))
	}
	if e.keep {
		e.say("    kept %s", e.dir)
		return
	}
	if err := os.RemoveAll(e.dir); err != nil {
		e.opts.Logger.Warn("cannot remove the dev directory", "dir", e.dir, "error", err)
		return
	}
	e.say("    removed %s", e.dir)
}

// stopDrillCopies kills the process groups of process drill copies a
// cancelled drill left in an agent's data_dir/drill (the process driver
// gives each its own group).
func stopDrillCopies(dir string) []int {
	files, _ := filepath.Glob(filepath.Join(dir, "agents", "*", "data", "drill", "*", "*", "process.pid"))
	var pids []int
	for _, f := range files {
		if pid := processPID(f); pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			waitGone(pid, 5*time.Second)
			pids = append(pids, pid)
		}
	}
	return pids
}

// sweep kills what is left that belongs to this deployment: a process of
// the drplane binary, PostgreSQL, rsync or pgBackRest whose command line
// names the directory (an rsync an agent ran, a backup an agent started
// when it was killed, say). Only those programs are
// matched, so an operator's `tail -f` of a log is spared.
func (e *env) sweep() []int {
	self := os.Getpid()
	bin, err := filepath.EvalSymlinks(e.opts.Bin)
	if err != nil {
		bin = e.opts.Bin
	}
	entries, _ := os.ReadDir("/proc")
	var killed []int
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(cmdline, []byte(e.dir+"/")) {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || !(exe == bin || strings.HasPrefix(exe, pgBinDir+"/") || filepath.Base(exe) == "rsync" || filepath.Base(exe) == "pgbackrest") {
			continue
		}
		e.opts.Logger.Warn("killing a leftover process", "pid", pid, "command", strings.ReplaceAll(string(cmdline), "\x00", " "))
		_ = syscall.Kill(pid, syscall.SIGKILL)
		waitGone(pid, 5*time.Second)
		killed = append(killed, pid)
	}
	return killed
}

// waitGone polls until pid is gone (or a zombie), for up to d, and
// reports whether it is.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for devcluster.ProcessAlive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
