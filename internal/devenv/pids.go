package devenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/drplane/drplane/internal/devcluster"
	"github.com/hashicorp/go-hclog"
)

// pidEntry is one process of a site.
type pidEntry struct {
	Site, Name string
	PID        int
}

// pidFiles keeps dir/<site>/<name>.pid equal to the processes of each
// site, so that `kill -9 $(cat D/pids/primary/*.pid)` is a site outage
// at any moment: a pid file is removed when its process is gone, and
// rewritten when a plan restarted it.
type pidFiles struct {
	dir    string
	logger hclog.Logger
	// written is what the files hold, by path relative to dir.
	written map[string]int
}

// sync makes the files hold entries and nothing else. Each file is
// written under a temporary name and renamed, so a reader never sees
// half a pid.
func (p *pidFiles) sync(entries []pidEntry) error {
	want := map[string]int{}
	for _, en := range entries {
		want[filepath.Join(en.Site, en.Name+".pid")] = en.PID
	}
	var errs []error
	for rel, pid := range want {
		if p.written[rel] == pid {
			continue
		}
		if err := writeAtomic(filepath.Join(p.dir, rel), strconv.Itoa(pid)+"\n"); err != nil {
			errs = append(errs, err)
			continue
		}
		p.written[rel] = pid
	}
	for rel := range p.written {
		if _, ok := want[rel]; ok {
			continue
		}
		if err := os.Remove(filepath.Join(p.dir, rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		delete(p.written, rel)
	}
	return errors.Join(errs...)
}

// removeAll removes every pid file: the processes are gone, and a stale
// pid could name another process later.
func (p *pidFiles) removeAll() {
	if err := os.RemoveAll(p.dir); err != nil {
		p.logger.Warn("cannot remove the pid files", "dir", p.dir, "error", err)
	}
	clear(p.written)
}

func writeAtomic(path, data string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// refreshPIDs brings the pid files up to date. It runs on the goroutine
// that starts and stops the processes, so it never races with them.
func (e *env) refreshPIDs() {
	if err := e.pids.sync(e.sitePIDs()); err != nil {
		e.opts.Logger.Warn("cannot update the pid files", "error", err)
	}
}

// sitePIDs lists every running process of the deployment by site:
// servers, agents, postmasters (found by their postmaster.pid, wherever
// a plan restarted them), application instances and drill copies (found
// by the pid files their agents keep).
func (e *env) sitePIDs() []pidEntry {
	var out []pidEntry
	if e.c != nil {
		for _, n := range e.c.Nodes {
			if n.Running() {
				out = append(out, pidEntry{n.Site, "server-" + n.ID, n.Pid()})
			}
		}
	}
	for _, h := range e.hosts {
		if h.pg != nil {
			if pid := h.pg.PostmasterPID(); pid > 0 {
				out = append(out, pidEntry{h.Site, ServicePostgres + "-" + h.ID, pid})
			}
		}
		if h.agent == nil {
			continue
		}
		if h.agent.Running() {
			out = append(out, pidEntry{h.Site, "agent-" + h.ID, h.agent.Pid()})
		}
		if h.app != nil {
			if pid, err := h.agent.ServicePID(ServiceApp); err == nil && pid > 0 {
				out = append(out, pidEntry{h.Site, ServiceApp + "-" + h.ID, pid})
			}
		}
		out = append(out, drillPIDs(h)...)
	}
	return out
}

// drillPIDs lists the drill copies running on h, from the agent's
// data_dir/drill/<id>/<service>: a process copy's process.pid, a
// postgres copy's postmaster.pid.
func drillPIDs(h *host) []pidEntry {
	dirs, _ := filepath.Glob(filepath.Join(h.agent.DataDir, "drill", "*", "*"))
	var out []pidEntry
	for _, dir := range dirs {
		pid := processPID(filepath.Join(dir, "process.pid"))
		if pid == 0 {
			pid = postmasterPID(filepath.Join(dir, "data", "postmaster.pid"))
		}
		if pid > 0 {
			name := fmt.Sprintf("%s-%s-drill-%s", filepath.Base(dir), h.ID, filepath.Base(filepath.Dir(dir)))
			out = append(out, pidEntry{h.Site, name, pid})
		}
	}
	return out
}

// processPID reads the pid of a process driver's pid file ("pid
// start-ticks"), 0 when it is missing or the process is gone.
func processPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 0 || !devcluster.ProcessAlive(pid) {
		return 0
	}
	return pid
}
