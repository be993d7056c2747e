// Package netns lays out a multi-site deployment on one machine with Linux
// network namespaces, for end-to-end tests: one namespace per host with an
// address of its own, one bridge per site, and a router namespace joining
// the sites, so that a whole site can be cut off (its uplink taken down)
// or a single host isolated, as in a real outage. Everything a Topology
// creates carries a random per-test prefix, so parallel tests never
// collide, and is torn down in t.Cleanup even when the test fails.
//
// On top of it, Deployment (deploy.go) runs drplane servers and agents and
// a PostgreSQL primary and standby inside the host namespaces, and Checker
// (history.go) is a Jepsen-style client that writes numbered rows through
// whichever site the control plane calls active and checks the history.
//
// The package needs root and iproute2's `ip`; Require skips a test that
// cannot have them, or fails it when CI=true.
//
// It is test support, not product: the netns scenarios and benchmarks in
// e2e/ use it, and the drplane binary must never import it (see
// internal/testing/imports_test.go).
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nsDir is where `ip netns add` bind-mounts the namespaces it names.
const nsDir = "/run/netns"

// SiteSpec names a site and its hosts.
type SiteSpec struct {
	Name  string
	Hosts []string
}

// Layout is the sites of a topology, in order; the n-th site (from 1) gets
// the subnet 10.77.n.0/24 with the router at .1 and its hosts from .11.
type Layout []SiteSpec

// StandardLayout is the recommended deployment of DESIGN.md section 1: two
// servers, a PostgreSQL host and an application host in each data site,
// one server in the witness site, and an operator's host (ops) in a site
// of its own, from which the CLI and the test's status poller reach the
// control plane like an operator outside both data centres.
func StandardLayout() Layout {
	return Layout{
		{Name: "primary", Hosts: []string{"s1", "s2", "db-1", "app-1"}},
		{Name: "dr", Hosts: []string{"s3", "s4", "db-2", "app-2"}},
		{Name: "witness", Hosts: []string{"s5"}},
		{Name: "ops", Hosts: []string{"ops"}},
	}
}

// Host is one machine: a network namespace with one interface (eth0)
// on its site's bridge.
type Host struct {
	Name, Site string
	// NS is the network namespace's name (under /run/netns).
	NS string
	// IP is the host's address.
	IP string
	// port is the router-side end of the host's veth, a port of its
	// site's bridge: taking it down isolates the host.
	port string
}

// Site is one failure domain: a bridge in the router namespace with an
// uplink to the router.
type Site struct {
	Name    string
	Subnet  string
	Gateway string
	Hosts   []*Host
	bridge  string
	// uplink is the bridge-side end of the site's link to the router:
	// taking it down cuts the site off while its hosts still reach each
	// other.
	uplink string
}

// Topology is the namespaces, bridges and links of one test.
type Topology struct {
	// Prefix starts every namespace name of this topology.
	Prefix string
	// Router is the router namespace, which also holds the bridges.
	Router string
	Sites  []*Site

	t testing.TB

	mu       sync.Mutex
	cut      map[string]bool
	isolated map[string]bool
	frozen   map[string]bool
	created  []string // namespaces, in creation order
	owned    []string // directories removed with leftovers (Own)
	// ownerTicks is this process's start time, which with its pid
	// identifies the owner in the topology's marker.
	ownerTicks uint64
}

// NewTopology creates the namespaces of layout and wires them. It calls
// Require first, and registers the teardown with t.Cleanup before it
// creates anything.
func NewTopology(t testing.TB, layout Layout) *Topology {
	t.Helper()
	Require(t)
	// What a test process that died without its cleanups left behind.
	reapLeftovers()
	topo := &Topology{t: t, Prefix: "dp" + randomSuffix(6), cut: map[string]bool{}, isolated: map[string]bool{}, frozen: map[string]bool{}}
	topo.ownerTicks, _ = startTicks(os.Getpid())
	topo.Router = topo.Prefix + "-r"
	t.Cleanup(topo.teardown)
	if err := topo.build(layout); err != nil {
		t.Fatalf("netns: build the topology: %v", err)
	}
	return topo
}

func (topo *Topology) build(layout Layout) error {
	if len(layout) > 200 {
		return fmt.Errorf("%d sites: at most 200", len(layout))
	}
	// Three rounds of `ip -batch` (a process costs tens of milliseconds):
	// the namespaces, the router with its bridges and every veth, then
	// each host's own addressing.
	namespaces := []string{topo.Router}
	router := []string{"link set lo up"}
	hosts := map[string][]string{}
	hostIndex := 0
	seen := map[string]bool{}
	for i, spec := range layout {
		n := i + 1
		s := &Site{
			Name: spec.Name, Subnet: fmt.Sprintf("10.77.%d.0/24", n), Gateway: fmt.Sprintf("10.77.%d.1", n),
			bridge: fmt.Sprintf("br%d", n), uplink: fmt.Sprintf("ub%d", n),
		}
		// The router's leg on the site (rt<n>, holding the gateway
		// address) is a veth whose other end (ub<n>) is a port of the
		// site's bridge.
		rt := fmt.Sprintf("rt%d", n)
		router = append(router,
			"link add "+s.bridge+" type bridge",
			"link add "+rt+" type veth peer name "+s.uplink,
			"link set "+s.uplink+" master "+s.bridge,
			"addr add "+s.Gateway+"/24 dev "+rt,
			"link set "+s.bridge+" up",
			"link set "+s.uplink+" up",
			"link set "+rt+" up")
		if len(spec.Hosts) > 240 {
			return fmt.Errorf("site %s: %d hosts, at most 240", spec.Name, len(spec.Hosts))
		}
		for j, name := range spec.Hosts {
			if seen[name] || !hostNameRE.MatchString(name) {
				return fmt.Errorf("host %q is declared twice or is not a short name of [a-z0-9-]", name)
			}
			seen[name] = true
			hostIndex++
			h := &Host{
				Name: name, Site: spec.Name, NS: topo.Prefix + "-" + name,
				IP: fmt.Sprintf("10.77.%d.%d", n, 11+j), port: fmt.Sprintf("h%d", hostIndex),
			}
			namespaces = append(namespaces, h.NS)
			// The host's veth: eth0 inside its namespace, the other end a
			// port of the site's bridge.
			router = append(router,
				"link add "+h.port+" type veth peer name eth0 netns "+h.NS,
				"link set "+h.port+" master "+s.bridge,
				"link set "+h.port+" up")
			hosts[h.NS] = []string{
				"link set lo up",
				"addr add " + h.IP + "/24 dev eth0",
				"link set eth0 up",
				"route add default via " + s.Gateway,
			}
			s.Hosts = append(s.Hosts, h)
		}
		topo.Sites = append(topo.Sites, s)
	}
	adds := make([]string, len(namespaces))
	for i, ns := range namespaces {
		adds[i] = "netns add " + ns
	}
	// Recorded first: teardown (or a later run's reaper) deletes
	// whichever of them exist.
	topo.mu.Lock()
	topo.created = namespaces
	topo.mu.Unlock()
	if err := topo.writeMarker(); err != nil {
		return err
	}
	if err := ipBatch("", adds, false); err != nil {
		return err
	}
	if err := ipBatch(topo.Router, router, false); err != nil {
		return err
	}
	// The router forwards between the sites; the hosts forward nothing.
	if err := topo.sysctl(topo.Router, "net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	for _, ns := range namespaces[1:] {
		if err := ipBatch(ns, hosts[ns], false); err != nil {
			return err
		}
	}
	return nil
}

// hostNameRE is what a host name may be: it ends up in a namespace name.
var hostNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,15}$`)

// Host returns the host named name; it fails the test when there is none.
func (topo *Topology) Host(name string) *Host {
	for _, s := range topo.Sites {
		for _, h := range s.Hosts {
			if h.Name == name {
				return h
			}
		}
	}
	topo.t.Fatalf("netns: no host %q", name)
	return nil
}

// Site returns the site named name; it fails the test when there is none.
func (topo *Topology) Site(name string) *Site {
	for _, s := range topo.Sites {
		if s.Name == name {
			return s
		}
	}
	topo.t.Fatalf("netns: no site %q", name)
	return nil
}

// Hosts returns every host, site by site.
func (topo *Topology) Hosts() []*Host {
	var out []*Host
	for _, s := range topo.Sites {
		out = append(out, s.Hosts...)
	}
	return out
}

// CutSite takes the site's uplink down: its hosts still reach each other,
// nothing crosses to or from another site (packets are dropped, as on a
// dead WAN link, until the router's neighbour entries lapse and it answers
// "host unreachable").
func (topo *Topology) CutSite(site string) error {
	return topo.setSite(site, true)
}

// HealSite brings the site's uplink back.
func (topo *Topology) HealSite(site string) error {
	return topo.setSite(site, false)
}

func (topo *Topology) setSite(site string, cut bool) error {
	s := topo.Site(site)
	if err := topo.ipIn(topo.Router, "link", "set", s.uplink, upDown(!cut)); err != nil {
		return err
	}
	topo.mu.Lock()
	topo.cut[site] = cut
	topo.mu.Unlock()
	return nil
}

// IsolateHost takes the host's link to its site's bridge down: it reaches
// no one, not even its own site.
func (topo *Topology) IsolateHost(name string) error {
	return topo.setHost(name, true)
}

// HealHost brings the host's link back.
func (topo *Topology) HealHost(name string) error {
	return topo.setHost(name, false)
}

func (topo *Topology) setHost(name string, isolated bool) error {
	h := topo.Host(name)
	if err := topo.ipIn(topo.Router, "link", "set", h.port, upDown(!isolated)); err != nil {
		return err
	}
	topo.mu.Lock()
	topo.isolated[name] = isolated
	topo.mu.Unlock()
	return nil
}

// Reachable reports whether, as far as this topology's links and frozen
// hosts go, from can reach to.
func (topo *Topology) Reachable(from, to *Host) bool {
	topo.mu.Lock()
	defer topo.mu.Unlock()
	if topo.isolated[from.Name] || topo.isolated[to.Name] || topo.frozen[to.Name] {
		return false
	}
	return from.Site == to.Site || (!topo.cut[from.Site] && !topo.cut[to.Site])
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// Pids lists the processes running in the host's namespace (thread-group
// leaders whose network namespace is the host's), never this process.
func (h *Host) Pids() ([]int, error) {
	var want unix.Stat_t
	if err := unix.Stat(h.nsPath(), &want); err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		// An exited process (a zombie too) has no namespace to stat.
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Signal sends sig to every process in the host's namespace and returns
// their pids.
func (h *Host) Signal(sig syscall.Signal) ([]int, error) {
	pids, err := h.Pids()
	if err != nil {
		return nil, err
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return pids, fmt.Errorf("host %s: signal %s to pid %d: %w", h.Name, sig, pid, err)
		}
	}
	return pids, nil
}

// KillAll SIGKILLs every process of the host, as a power cut would, and
// waits until none is left.
func (h *Host) KillAll(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := h.Signal(syscall.SIGKILL)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host %s: processes %v still run %s after SIGKILL", h.Name, pids, timeout)
		}
		// A process forked meanwhile gets the next round's signal.
		time.Sleep(20 * time.Millisecond)
	}
}

// Freeze stops (SIGSTOP) every process of the host: it neither answers nor
// acts, but keeps its connections and state, like a hung machine.
func (topo *Topology) Freeze(h *Host) error {
	if _, err := h.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	topo.mu.Lock()
	topo.frozen[h.Name] = true
	topo.mu.Unlock()
	return nil
}

// Thaw continues (SIGCONT) every process of the host.
func (topo *Topology) Thaw(h *Host) error {
	if _, err := h.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	topo.mu.Lock()
	topo.frozen[h.Name] = false
	topo.mu.Unlock()
	return nil
}

func (h *Host) nsPath() string { return filepath.Join(nsDir, h.NS) }

// init keeps the main goroutine on the process's main thread, and so
// every other goroutine off it: inNamespace must never move the main
// thread into a host's namespace. The runtime cannot end the main thread
// when a goroutine exits locked to it, so it would stay there, and tools
// that read /proc/PID/ns/net (`ip netns pids`, which a STONITH hook of
// the scenarios uses to kill a site) would take the whole test process
// for a process of that host.
func init() { runtime.LockOSThread() }

// inNamespace runs f on a fresh OS thread that joined the network
// namespace at path. The thread is never unlocked, so the runtime discards
// it when f returns and no other goroutine ever runs in the namespace.
// Sockets and processes created by f belong to the namespace.
func inNamespace(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open %s: %w", path, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		_ = unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("join %s: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// DialContext connects from inside the host's namespace, as a program on
// that host would: the socket is created there and keeps its namespace.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := inNamespace(h.nsPath(), func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		conn = c
		return err
	})
	return conn, err
}

// Listen listens inside the host's namespace.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNamespace(h.nsPath(), func() error {
		l, err := net.Listen(network, addr)
		ln = l
		return err
	})
	return ln, err
}

// Start starts cmd inside the host's namespace; the process and its
// children stay there. Credentials, environment and streams are cmd's.
func (h *Host) Start(cmd *exec.Cmd) error {
	return inNamespace(h.nsPath(), cmd.Start)
}

// Run runs cmd inside the host's namespace and waits for it.
func (h *Host) Run(cmd *exec.Cmd) error {
	if err := h.Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// teardown kills every process left in the topology's namespaces and
// deletes them; deleting a namespace destroys its veths and bridges.
func (topo *Topology) teardown() {
	topo.mu.Lock()
	created := slices.Clone(topo.created)
	topo.mu.Unlock()
	var errs []error
	var dels []string
	for _, name := range created {
		h := &Host{Name: name, NS: name}
		if _, err := os.Stat(h.nsPath()); err != nil {
			continue // never created
		}
		if err := h.KillAll(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
		dels = append(dels, "netns delete "+name)
	}
	if err := ipBatch("", dels, true); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		topo.t.Errorf("netns: teardown: %v", err)
		return // the marker stays: a later run's reaper tries again
	}
	_ = os.Remove(filepath.Join(markerDir, topo.Prefix))
}

// ipIn runs `ip -n ns args...`.
func (topo *Topology) ipIn(ns string, args ...string) error {
	return ip(append([]string{"-n", ns}, args...)...)
}

// sysctl sets key (a path under /proc/sys) to value inside namespace ns.
func (topo *Topology) sysctl(ns, key, value string) error {
	h := &Host{Name: ns, NS: ns}
	return inNamespace(h.nsPath(), func() error {
		// /proc/sys/net shows the namespace of the thread that opens it.
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}

// ipBatch runs lines with `ip [-n ns] -batch -`; force goes on past a
// failing line (teardown).
func ipBatch(ns string, lines []string, force bool) error {
	if len(lines) == 0 {
		return nil
	}
	var args []string
	if ns != "" {
		args = append(args, "-n", ns)
	}
	if force {
		args = append(args, "-force")
	}
	cmd := exec.Command("ip", append(args, "-batch", "-")...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s -batch: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func ip(args ...string) error {
	cmd := exec.Command("ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// randomSuffix returns n random characters of [a-z0-9].
func randomSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
