package netsim

import (
	"net"
	"sync"
	"time"
)

// conn is one side of a TCP connection between two endpoints. Its writes
// stall while the link is cut; reads need no gate, since the peer's writes
// stall too (both sides of a connection made through the network are
// wrapped).
type conn struct {
	net.Conn
	n      *Network
	local  string
	remote func() string
	// onClose runs once, when the connection is closed.
	onClose func()

	mu            sync.Mutex
	writeDeadline time.Time
	// moved is closed and replaced when the write deadline changes, so a
	// stalled write looks at the new one.
	moved chan struct{}

	closed    chan struct{}
	closeOnce sync.Once
}

func newConn(raw net.Conn, n *Network, local string, remote func() string) *conn {
	return &conn{Conn: raw, n: n, local: local, remote: remote, moved: make(chan struct{}), closed: make(chan struct{})}
}

// Write waits while the link is cut, then writes. A stalled write ends
// with a timeout error at the write deadline, or net.ErrClosed when the
// connection is closed, as a write into a full TCP send buffer would.
func (c *conn) Write(b []byte) (int, error) {
	if err := c.n.waitLink(c.local, c.remote, c.closed, c.deadline); err != nil {
		return 0, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return c.Conn.Write(b)
}

func (c *conn) deadline() (time.Time, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeDeadline, c.moved
}

func (c *conn) setWriteDeadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeDeadline = t
	close(c.moved)
	c.moved = make(chan struct{})
}

// SetDeadline implements net.Conn.
func (c *conn) SetDeadline(t time.Time) error {
	c.setWriteDeadline(t)
	return c.Conn.SetDeadline(t)
}

// SetWriteDeadline implements net.Conn.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.setWriteDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

// Close implements net.Conn; it ends a stalled write.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		if c.onClose != nil {
			c.onClose()
		}
	})
	return c.Conn.Close()
}
