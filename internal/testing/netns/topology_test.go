package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestTopology_CutIsolateKill builds the standard layout and checks what
// the scenarios rely on: every host reaches every other through the
// router; a cut site keeps its own traffic and loses the rest; an
// isolated host reaches no one; healing restores both; processes started
// on a host are found there and killed; and teardown leaves nothing.
func TestTopology_CutIsolateKill(t *testing.T) {
	topo := NewTopology(t, StandardLayout())
	db1, app1, db2, s5 := topo.Host("db-1"), topo.Host("app-1"), topo.Host("db-2"), topo.Host("s5")
	for _, h := range topo.Hosts() {
		ln, err := h.Listen("tcp", net.JoinHostPort(h.IP, "7000"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
	}
	reach := func(from, to *Host) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		c, err := from.DialContext(ctx, "tcp", net.JoinHostPort(to.IP, "7000"))
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}
	type pair struct {
		from, to *Host
		want     bool
	}
	// A link's state change reaches the bridge and the neighbour tables
	// asynchronously (the kernel's linkwatch batches carrier events), so
	// each expectation is polled.
	check := func(stage string, pairs []pair) {
		t.Helper()
		for _, p := range pairs {
			require.Equal(t, p.want, topo.Reachable(p.from, p.to), "%s: the topology's own view of %s -> %s", stage, p.from.Name, p.to.Name)
			testutil.WaitForResult(t, 5*time.Second, func() (bool, error) {
				got := reach(p.from, p.to)
				return got == p.want, fmt.Errorf("%s: %s reaches %s: %v, want %v", stage, p.from.Name, p.to.Name, got, p.want)
			})
		}
	}
	check("all up", []pair{{db1, db2, true}, {db2, db1, true}, {app1, db1, true}, {s5, db1, true}, {s5, db2, true}})

	require.NoError(t, topo.CutSite("primary"))
	check("primary cut", []pair{{db1, db2, false}, {db2, db1, false}, {s5, db1, false}, {app1, db1, true}, {s5, db2, true}})
	require.NoError(t, topo.HealSite("primary"))
	check("primary healed", []pair{{db1, db2, true}, {s5, db1, true}})

	require.NoError(t, topo.IsolateHost("db-1"))
	check("db-1 isolated", []pair{{app1, db1, false}, {db2, db1, false}, {app1, db2, true}})
	require.NoError(t, topo.HealHost("db-1"))
	check("db-1 healed", []pair{{app1, db1, true}, {db2, db1, true}})

	// The router forwards: ip_forward is on in its namespace only.
	out, err := exec.Command("ip", "netns", "exec", topo.Router, "cat", "/proc/sys/net/ipv4/ip_forward").Output()
	require.NoError(t, err)
	require.Equal(t, "1\n", string(out))

	// Processes started on a host run in its namespace, are listed, and
	// die with it.
	sleep := exec.Command("/bin/sleep", "300")
	require.NoError(t, db2.Start(sleep))
	done := make(chan error, 1)
	go func() { done <- sleep.Wait() }()
	pids, err := db2.Pids()
	require.NoError(t, err)
	require.Equal(t, []int{sleep.Process.Pid}, pids)
	require.NoError(t, topo.Freeze(db2))
	require.False(t, topo.Reachable(db1, db2), "a frozen host answers no one")
	require.NoError(t, topo.Thaw(db2))
	require.NoError(t, db2.KillAll(5*time.Second))
	err = <-done
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())
}

// TestReapLeftovers plays a test process that died without its cleanups:
// its marker names a namespace with a process in it and a directory. The
// next topology's reaper removes them, and leaves alone the marker of a
// live owner.
func TestReapLeftovers(t *testing.T) {
	Require(t)
	// A dead owner: a child that already exited.
	child := exec.Command("/bin/true")
	require.NoError(t, child.Run())
	ns := "dpreap-" + randomSuffix(6)
	require.NoError(t, ip("netns", "add", ns))
	t.Cleanup(func() { _ = ip("netns", "delete", ns) })
	dir := t.TempDir()
	left := filepath.Join(dir, "left")
	require.NoError(t, os.Mkdir(left, 0o700))
	h := &Host{Name: ns, NS: ns}
	sleep := exec.Command("/bin/sleep", "300")
	require.NoError(t, h.Start(sleep))
	done := make(chan error, 1)
	go func() { done <- sleep.Wait() }()

	dead := marker{pid: child.Process.Pid, startTicks: 1, namespaces: []string{ns}, dirs: []string{left}}
	deadPath := filepath.Join(markerDir, "dpreap-dead-"+randomSuffix(4))
	require.NoError(t, os.MkdirAll(markerDir, 0o700))
	require.NoError(t, os.WriteFile(deadPath, dead.encode(), 0o600))
	ticks, ok := startTicks(os.Getpid())
	require.True(t, ok)
	live := marker{pid: os.Getpid(), startTicks: ticks, namespaces: []string{"dpreap-none"}, dirs: []string{dir}}
	livePath := filepath.Join(markerDir, "dpreap-live-"+randomSuffix(4))
	require.NoError(t, os.WriteFile(livePath, live.encode(), 0o600))
	t.Cleanup(func() { _ = os.Remove(livePath) })

	reapLeftovers()
	require.Error(t, <-done, "the leftover process was killed")
	_, err := os.Stat(filepath.Join(nsDir, ns))
	require.True(t, os.IsNotExist(err), "the leftover namespace was deleted: %v", err)
	_, err = os.Stat(left)
	require.True(t, os.IsNotExist(err), "the leftover directory was removed: %v", err)
	_, err = os.Stat(deadPath)
	require.True(t, os.IsNotExist(err), "the dead owner's marker was removed")
	_, err = os.Stat(livePath)
	require.NoError(t, err, "a live owner's marker stays")
	_, err = os.Stat(dir)
	require.NoError(t, err, "a live owner's directory stays")
}
