package controlplane

import (
	"fmt"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/tlsutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// connPool keeps one gRPC client connection per peer address.
// Connections are lazy: grpc.NewClient dials on first use and redials
// after failures by itself.
type connPool struct {
	tls  *tlsutil.Material
	peer tlsutil.Role
	// dial connects to a peer; nil means gRPC's own dialer.
	dial tlsutil.DialFunc
	// opts are further options of every shared connection.
	opts []grpc.DialOption

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// reconnectMax bounds gRPC's reconnect backoff on the shared connections.
// gRPC's default grows to two minutes: a connection that failed while a
// peer restarted or a partition lasted would fail every call for that
// long after the peer is back (a step to an agent, an operator's command
// a follower forwards to the leader), where a call fails at once with
// Unavailable while its connection waits to reconnect.
const reconnectMax = time.Second

// newConnPool returns a pool whose connections verify that the peer holds
// a certificate of role peer, and reconnect within reconnectMax.
func newConnPool(m *tlsutil.Material, peer tlsutil.Role) *connPool {
	return &connPool{tls: m, peer: peer, conns: map[string]*grpc.ClientConn{},
		opts: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: reconnectMax},
			// gRPC's default; what bounds a hung connect.
			MinConnectTimeout: 20 * time.Second,
		})}}
}

// get returns the connection to the server at addr.
func (p *connPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := p.newClient(addr, p.opts...)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

// fresh returns a new connection to addr that the pool does not share or
// keep: the caller closes it. The prober gives up a connection that stops
// answering and probes on a new one (see probeLoop).
func (p *connPool) fresh(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	return p.newClient(addr, opts...)
}

func (p *connPool) newClient(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	c, err := grpc.NewClient(addr, append(p.dialOptions(), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s %s: %w", p.peer, addr, err)
	}
	return c, nil
}

// dialOptions are the options of every connection of the pool.
func (p *connPool) dialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(p.tls.ClientCredentials(p.peer))}
	if p.dial != nil {
		opts = append(opts, grpc.WithContextDialer(p.dial))
	}
	return opts
}

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		_ = c.Close()
		delete(p.conns, addr)
	}
}
