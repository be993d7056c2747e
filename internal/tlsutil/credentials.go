package tlsutil

import (
	"context"
	"errors"
	"net"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/credentials"
)

// ServerCredentials returns gRPC transport credentials built from
// ServerConfig. A connection whose handshake fails, such as a client
// without a certificate or with one from another CA, is logged once as
// "refused connection" with the remote address and the TLS error.
func (m *Material) ServerCredentials(logger hclog.Logger) credentials.TransportCredentials {
	return &serverCredentials{
		TransportCredentials: credentials.NewTLS(m.ServerConfig()),
		logger:               orNullLogger(logger),
	}
}

// ClientCredentials returns gRPC transport credentials built from
// ClientConfig(peerRole). The server is always verified as
// RoleDNSName(peerRole), whatever address or authority the channel dials.
func (m *Material) ClientCredentials(peerRole Role) credentials.TransportCredentials {
	return &clientCredentials{
		TransportCredentials: credentials.NewTLS(m.ClientConfig(peerRole)),
		serverName:           RoleDNSName(peerRole),
	}
}

// serverCredentials logs the server handshakes that fail.
type serverCredentials struct {
	credentials.TransportCredentials
	logger hclog.Logger
}

// ServerHandshake implements credentials.TransportCredentials.
func (c *serverCredentials) ServerHandshake(rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(rawConn)
	if err != nil {
		logRefused(c.logger, "refused connection", rawConn, err)
		return nil, nil, err
	}
	return conn, info, nil
}

// Clone implements credentials.TransportCredentials.
func (c *serverCredentials) Clone() credentials.TransportCredentials {
	return &serverCredentials{TransportCredentials: c.TransportCredentials.Clone(), logger: c.logger}
}

// clientCredentials pins the name the server is verified by, since gRPC
// otherwise passes the dialed host as the authority to verify.
type clientCredentials struct {
	credentials.TransportCredentials
	serverName string
}

// ClientHandshake implements credentials.TransportCredentials.
func (c *clientCredentials) ClientHandshake(ctx context.Context, _ string, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.TransportCredentials.ClientHandshake(ctx, c.serverName, rawConn)
}

// Clone implements credentials.TransportCredentials.
func (c *clientCredentials) Clone() credentials.TransportCredentials {
	return &clientCredentials{TransportCredentials: c.TransportCredentials.Clone(), serverName: c.serverName}
}

// logRefused logs a failed server-side handshake. Only the address and the
// TLS error are logged, never certificates or keys. A connection closed by
// this process, for example at shutdown, is not a refusal and is logged at
// debug level.
func logRefused(logger hclog.Logger, msg string, conn net.Conn, err error) {
	remote := "unknown"
	if addr := conn.RemoteAddr(); addr != nil {
		remote = addr.String()
	}
	if errors.Is(err, net.ErrClosed) {
		logger.Debug("handshake interrupted by local close", "remote_addr", remote, "error", err)
		return
	}
	logger.Warn(msg, "remote_addr", remote, "error", err)
}

// orNullLogger returns logger, or a logger that discards everything when
// logger is nil.
func orNullLogger(logger hclog.Logger) hclog.Logger {
	if logger == nil {
		return hclog.NewNullLogger()
	}
	return logger
}
