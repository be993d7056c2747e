package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// markerDir records, for every live topology, its owner and what it
// created, so that a later run can remove what a test process left
// behind when it died without running its cleanups (a test timeout
// panics, a SIGKILL): its namespaces, the processes in them and its
// directories.
const markerDir = "/run/drplane-netns"

// marker is what a topology records about itself.
type marker struct {
	pid        int
	startTicks uint64
	namespaces []string
	dirs       []string
}

func (m marker) encode() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %d\n%s\n", m.pid, m.startTicks, strings.Join(m.namespaces, " "))
	for _, d := range m.dirs {
		b.WriteString(d + "\n")
	}
	return []byte(b.String())
}

func decodeMarker(data []byte) (marker, bool) {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var m marker
	if len(lines) < 2 {
		return m, false
	}
	if _, err := fmt.Sscanf(lines[0], "%d %d", &m.pid, &m.startTicks); err != nil {
		return m, false
	}
	m.namespaces = strings.Fields(lines[1])
	m.dirs = lines[2:]
	return m, true
}

// writeMarker records the topology; it is rewritten as directories are
// added (Own).
func (topo *Topology) writeMarker() error {
	topo.mu.Lock()
	m := marker{pid: os.Getpid(), startTicks: topo.ownerTicks, namespaces: topo.created, dirs: topo.owned}
	topo.mu.Unlock()
	if err := os.MkdirAll(markerDir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(markerDir, "."+topo.Prefix)
	if err := os.WriteFile(tmp, m.encode(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(markerDir, topo.Prefix))
}

// Own records dir as belonging to the topology, so that it is removed
// with the topology's leftovers should the test process die without its
// cleanups. The caller still removes it in its own cleanup.
func (topo *Topology) Own(dir string) error {
	topo.mu.Lock()
	topo.owned = append(topo.owned, dir)
	topo.mu.Unlock()
	return topo.writeMarker()
}

// reapLeftovers removes what topologies of dead test processes left
// behind: it kills the processes in their namespaces, deletes the
// namespaces, and removes their directories. A topology whose owner still
// runs is never touched.
func reapLeftovers() {
	entries, err := os.ReadDir(markerDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(markerDir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		m, ok := decodeMarker(data)
		if !ok {
			continue
		}
		if ticks, alive := startTicks(m.pid); alive && ticks == m.startTicks {
			continue
		}
		var dels []string
		for _, ns := range m.namespaces {
			h := &Host{Name: ns, NS: ns}
			if _, err := os.Stat(h.nsPath()); err != nil {
				continue
			}
			_ = h.KillAll(10 * time.Second)
			dels = append(dels, "netns delete "+ns)
		}
		_ = ipBatch("", dels, true)
		for _, d := range m.dirs {
			RemoveStaleSegments(d)
			_ = os.RemoveAll(d)
		}
		_ = os.Remove(path)
	}
}

// startTicks reads a live pid's start time from /proc; a zombie is not
// alive.
func startTicks(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces; count from its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return 0, false
	}
	ticks, err := strconv.ParseUint(fields[19], 10, 64)
	return ticks, err == nil
}
