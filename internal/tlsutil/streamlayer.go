package tlsutil

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// raftHandshakeTimeout bounds the TLS handshake of an accepted Raft
// connection, so a peer that connects and goes quiet cannot hold on to the
// goroutine serving it.
const raftHandshakeTimeout = 10 * time.Second

// streamLayer is a raft.StreamLayer speaking mutual TLS between servers.
type streamLayer struct {
	ln               net.Listener
	advertise        net.Addr
	serverConfig     *tls.Config
	clientConfig     *tls.Config
	logger           hclog.Logger
	handshakeTimeout time.Duration
	// dial connects to a peer; nil means a net.Dialer.
	dial DialFunc
}

// DialFunc connects to addr over TCP until ctx ends. Tests hand one in to
// run servers over a partitionable network.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// NewStreamLayer returns a Raft stream layer that wraps every connection
// accepted from ln or dialed to a peer in mutual TLS using m. Only peers
// presenting a server certificate are accepted, in either direction.
//
// Accept returns as soon as the TCP connection is accepted; its handshake
// runs on the first read or write, so a slow peer never stalls the accept
// loop. A failed handshake is logged once as "refused raft connection".
//
// Addr returns advertise, or ln.Addr() when advertise is nil.
func NewStreamLayer(ln net.Listener, advertise net.Addr, m *Material, logger hclog.Logger) raft.StreamLayer {
	return NewStreamLayerWithDialer(ln, advertise, m, logger, nil)
}

// NewStreamLayerWithDialer is NewStreamLayer connecting to peers with
// dial, or with a net.Dialer when dial is nil.
func NewStreamLayerWithDialer(ln net.Listener, advertise net.Addr, m *Material, logger hclog.Logger, dial DialFunc) raft.StreamLayer {
	serverConfig := m.ServerConfig()
	serverConfig.VerifyConnection = verifyPeerRole(RoleServer)
	return &streamLayer{
		ln:               ln,
		advertise:        advertise,
		serverConfig:     serverConfig,
		clientConfig:     m.ClientConfig(RoleServer),
		logger:           orNullLogger(logger),
		handshakeTimeout: raftHandshakeTimeout,
		dial:             dial,
	}
}

// Accept implements net.Listener. The returned connection has not yet
// completed its TLS handshake.
func (s *streamLayer) Accept() (net.Conn, error) {
	conn, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	tlsConn := tls.Server(conn, s.serverConfig)
	return &serverConn{
		Conn:    tlsConn,
		tlsConn: tlsConn,
		timeout: s.handshakeTimeout,
		logger:  s.logger,
	}, nil
}

// Close implements net.Listener.
func (s *streamLayer) Close() error {
	return s.ln.Close()
}

// Addr implements net.Listener, returning the address peers should dial.
func (s *streamLayer) Addr() net.Addr {
	if s.advertise == nil {
		return s.ln.Addr()
	}
	if tcp, ok := s.advertise.(*net.TCPAddr); ok && tcp == nil {
		return s.ln.Addr()
	}
	return s.advertise
}

// Dial implements raft.StreamLayer. It connects within timeout and then
// completes the TLS handshake within timeout, verifying that the peer holds
// a server certificate.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	raw, err := s.dialTCP(string(address), timeout)
	if err != nil {
		return nil, fmt.Errorf("dial raft peer %s: %w", address, err)
	}
	conn := tls.Client(raw, s.clientConfig)
	if err := handshakeWithin(conn, timeout); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("tls handshake with raft peer %s: %w", address, err)
	}
	return conn, nil
}

// dialTCP connects within timeout (none when zero).
func (s *streamLayer) dialTCP(addr string, timeout time.Duration) (net.Conn, error) {
	if s.dial == nil {
		dialer := &net.Dialer{Timeout: timeout}
		return dialer.Dial("tcp", addr)
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return s.dial(ctx, addr)
}

// handshakeWithin runs the client handshake with timeout as its deadline,
// then clears the deadline. A zero timeout means no deadline.
func handshakeWithin(conn *tls.Conn, timeout time.Duration) error {
	if timeout <= 0 {
		return conn.Handshake()
	}
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if err := conn.Handshake(); err != nil {
		return err
	}
	return conn.SetDeadline(time.Time{})
}

// serverConn is an accepted Raft connection whose TLS handshake runs,
// once, on first use.
type serverConn struct {
	// Conn is tlsConn. Only net.Conn methods are promoted, so the
	// handshake cannot be started around Handshake below.
	net.Conn
	tlsConn *tls.Conn
	timeout time.Duration
	logger  hclog.Logger

	once sync.Once
	err  error
}

// Handshake runs the server handshake if it has not run yet and returns
// its result. A failure is logged and closes the connection.
func (c *serverConn) Handshake() error {
	c.once.Do(func() {
		c.err = c.handshake()
	})
	return c.err
}

// handshake runs the server handshake within c.timeout.
func (c *serverConn) handshake() error {
	ctx := context.Background()
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	err := c.tlsConn.HandshakeContext(ctx)
	if err != nil {
		logRefused(c.logger, "refused raft connection", c.Conn, err)
		_ = c.Conn.Close()
	}
	return err
}

// Read implements net.Conn, completing the handshake first.
func (c *serverConn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// Write implements net.Conn, completing the handshake first.
func (c *serverConn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// ConnectionState returns the TLS state; it is only complete once
// Handshake has succeeded.
func (c *serverConn) ConnectionState() tls.ConnectionState {
	return c.tlsConn.ConnectionState()
}
