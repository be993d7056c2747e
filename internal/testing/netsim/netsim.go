// Package netsim is a partitionable network for in-process tests: real
// loopback TCP underneath, with named endpoints whose links can be cut and
// healed, as raft's inmem_transport lets raft's tests partition a cluster
// without root or network namespaces.
//
// Endpoints are named "site/host". A cut link behaves like a pulled cable
// under TCP: nothing is closed and no error is returned; writes stall
// (the bytes are not lost, TCP would retransmit them) until the link
// heals, the connection is closed or its write deadline passes, so the
// peer's reads simply block; new dials wait until the link heals or their
// context ends, as SYN retransmissions would. Bytes already written before
// the cut are in flight and still arrive.
//
// It is test support, not product: the controlplane cluster and partition
// tests inject it through the servers' Deps (listeners and Dial), and the
// drplane binary must never import it (see internal/testing/imports_test.go).
package netsim

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Network maps loopback addresses to endpoints and holds the partitions.
// The zero value is not usable; call New.
type Network struct {
	mu sync.Mutex
	// endpoints maps listen addresses, and the local addresses of
	// connections dialed through the network, to endpoint names.
	endpoints map[string]string
	// cuts are blocked pairs of names; isolated names are cut from every
	// endpoint outside them. A name is an endpoint or a site.
	cuts     map[[2]string]bool
	isolated map[string]bool
	// changed is closed and replaced whenever the partitions change, so
	// that stalled writes and dials look again.
	changed chan struct{}
}

// New returns a network with every link up.
func New() *Network {
	return &Network{
		endpoints: map[string]string{},
		cuts:      map[[2]string]bool{},
		isolated:  map[string]bool{},
		changed:   make(chan struct{}),
	}
}

// Site returns the site part of an endpoint name ("primary" for
// "primary/db-1"), or the name itself when it has no host part.
func Site(endpoint string) string {
	site, _, _ := strings.Cut(endpoint, "/")
	return site
}

// Cut blocks the links between everything named a and everything named b,
// in both directions. A name is an endpoint ("dr/s2") or a site ("dr").
func (n *Network) Cut(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cuts[[2]string{a, b}] = true
	n.changedLocked()
}

// Isolate blocks every link between name (an endpoint or a site) and any
// endpoint outside it. Links inside a site stay up.
func (n *Network) Isolate(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isolated[name] = true
	n.changedLocked()
}

// Heal lifts every cut and isolation. Stalled writes and dials proceed.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cuts)
	clear(n.isolated)
	n.changedLocked()
}

// Connected reports whether the link between two endpoints is up.
func (n *Network) Connected(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.blockedLocked(a, b)
}

func (n *Network) changedLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// blockedLocked reports whether traffic between endpoints a and b is
// blocked. Traffic with an unknown endpoint ("": a test harness outside
// the simulated network) and within one endpoint never is.
func (n *Network) blockedLocked(a, b string) bool {
	if a == "" || b == "" || a == b {
		return false
	}
	for name := range n.isolated {
		if matches(a, name) != matches(b, name) {
			return true
		}
	}
	for pair := range n.cuts {
		if (matches(a, pair[0]) && matches(b, pair[1])) || (matches(a, pair[1]) && matches(b, pair[0])) {
			return true
		}
	}
	return false
}

// matches reports whether endpoint is name or lies in site name.
func matches(endpoint, name string) bool {
	return endpoint == name || Site(endpoint) == name
}

// link returns whether a and b are blocked and a channel closed at the
// next change of the partitions.
func (n *Network) link(a, b string) (blocked bool, changed <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.blockedLocked(a, b), n.changed
}

// waitLink returns nil once the link between a and b is up, or the reason
// it gave up: done closed (net.ErrClosed) or the deadline passed (a
// timeout). deadline returns the current deadline, zero for none, and a
// channel closed when it is moved.
func (n *Network) waitLink(a string, b func() string, done <-chan struct{}, deadline func() (time.Time, <-chan struct{})) error {
	for {
		blocked, changed := n.link(a, b())
		if !blocked {
			return nil
		}
		if err := waitChange(changed, done, deadline); err != nil {
			return err
		}
	}
}

// waitChange waits for changed, done, a moved deadline or its expiry.
func waitChange(changed, done <-chan struct{}, deadline func() (time.Time, <-chan struct{})) error {
	d, moved := deadline()
	var expired <-chan time.Time
	if !d.IsZero() {
		wait := time.Until(d)
		if wait <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-changed:
	case <-moved:
	case <-done:
		return net.ErrClosed
	case <-expired:
		return os.ErrDeadlineExceeded
	}
	return nil
}

// Listen registers ln's address as endpoint's and returns a listener whose
// accepted connections obey the partitions.
func (n *Network) Listen(endpoint string, ln net.Listener) net.Listener {
	n.register(ln.Addr().String(), endpoint)
	return &listener{Listener: ln, n: n, endpoint: endpoint}
}

// Dialer returns a dial function for the endpoint from, for
// grpc.WithContextDialer and the like. A dial to an address registered by
// Listen waits while the link is cut, until ctx ends.
func (n *Network) Dialer(from string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		to := n.endpointOf(addr)
		err := n.waitLink(from, func() string { return to }, ctx.Done(), func() (time.Time, <-chan struct{}) { return time.Time{}, nil })
		if err != nil {
			return nil, fmt.Errorf("dial %s (%s) from %s: link cut: %w", addr, to, from, ctx.Err())
		}
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		// The accepting side finds out who dialed by this address.
		local := raw.LocalAddr().String()
		n.register(local, from)
		c := newConn(raw, n, from, func() string { return to })
		c.onClose = func() { n.unregister(local, from) }
		return c, nil
	}
}

func (n *Network) register(addr, endpoint string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.endpoints[addr] = endpoint
}

// unregister forgets addr if it still belongs to endpoint: the kernel may
// hand the port to another connection once this one closed.
func (n *Network) unregister(addr, endpoint string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.endpoints[addr] == endpoint {
		delete(n.endpoints, addr)
	}
}

func (n *Network) endpointOf(addr string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.endpoints[addr]
}

// listener wraps accepted connections.
type listener struct {
	net.Listener
	n        *Network
	endpoint string
}

// Accept returns the next connection. Its peer is looked up lazily: the
// dialer registers its local address just after connecting, which may be
// after the accept.
func (l *listener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	remoteAddr := raw.RemoteAddr().String()
	var mu sync.Mutex
	var remote string
	peer := func() string {
		mu.Lock()
		defer mu.Unlock()
		if remote == "" {
			remote = l.n.endpointOf(remoteAddr)
		}
		return remote
	}
	return newConn(raw, l.n, l.endpoint, peer), nil
}
