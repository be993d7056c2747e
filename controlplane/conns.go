package controlplane

import (
	"fmt"
	"sync"

	"github.com/drplane/drplane/internal/tlsutil"
	"google.golang.org/grpc"
)

// connPool keeps one gRPC client connection per peer server address.
// Connections are lazy: grpc.NewClient dials on first use and redials
// after failures by itself.
type connPool struct {
	tls *tlsutil.Material

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newConnPool(m *tlsutil.Material) *connPool {
	return &connPool{tls: m, conns: map[string]*grpc.ClientConn{}}
}

// get returns the connection to the server at addr.
func (p *connPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(p.tls.ClientCredentials(tlsutil.RoleServer)))
	if err != nil {
		return nil, fmt.Errorf("connect to server %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		_ = c.Close()
		delete(p.conns, addr)
	}
}
