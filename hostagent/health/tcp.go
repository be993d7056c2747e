package health

import (
	"context"
	"fmt"
	"net"
	"time"
)

// tcpCheck is healthy when a TCP connection opens.
type tcpCheck struct {
	addr    string
	timeout time.Duration
}

var _ Check = (*tcpCheck)(nil)

// NewTCP returns a check that connects to addr (host:port) and closes
// the connection at once.
func NewTCP(addr string, timeout time.Duration) Check {
	return &tcpCheck{addr: addr, timeout: timeout}
}

// Check connects.
func (c *tcpCheck) Check(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", c.addr, err)
	}
	return conn.Close()
}

func (c *tcpCheck) String() string { return "tcp " + c.addr }
