package controlplane

import (
	"context"
	"net"
	"time"

	"github.com/drplane/drplane/internal/tlsutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// probeDialOptions are the options of the prober's connections to agents.
// A probe must reach the agent as soon as the link allows: a connection
// attempt gives up after probe_timeout instead of gRPC's 20s, a failed one
// is retried after at most probe_interval instead of up to 2 minutes, and
// the socket drops data left unacknowledged for probe_timeout
// (TCP_USER_TIMEOUT, where supported), so a renewal stuck behind TCP
// retransmissions is discarded, not delivered late: the leader counts a
// renewal whose answer never came as delivered by its send time plus
// probe_timeout (DESIGN.md section 5).
//
// dial, when set (tests partitioning the network), makes the connection
// instead, within probe_timeout.
func probeDialOptions(probeInterval, probeTimeout time.Duration, dial tlsutil.DialFunc) []grpc.DialOption {
	d := &net.Dialer{Timeout: probeTimeout, Control: tcpUserTimeout(probeTimeout)}
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}
	if dial != nil {
		dialer = func(ctx context.Context, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			return dial(ctx, addr)
		}
	}
	return []grpc.DialOption{
		grpc.WithContextDialer(dialer),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  min(100*time.Millisecond, probeInterval),
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   probeInterval,
			},
			MinConnectTimeout: probeTimeout,
		}),
	}
}
