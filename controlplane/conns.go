package controlplane

import (
	"fmt"
	"sync"

	"github.com/drplane/drplane/internal/tlsutil"
	"google.golang.org/grpc"
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

// newConnPool returns a pool whose connections verify that the peer holds
// a certificate of role peer.
func newConnPool(m *tlsutil.Material, peer tlsutil.Role) *connPool {
	return &connPool{tls: m, peer: peer, conns: map[string]*grpc.ClientConn{}}
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
