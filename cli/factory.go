// Package cli holds drplane's cobra commands. Each command has an options
// struct and a run function that writes only to the injected streams, so
// tests run commands against buffers and a fake client.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/rpcerr"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

// Environment variables for the global flags.
const (
	EnvAddr       = "DRPLANE_ADDR"
	EnvCACert     = "DRPLANE_CACERT"
	EnvClientCert = "DRPLANE_CLIENT_CERT"
	EnvClientKey  = "DRPLANE_CLIENT_KEY"
)

// DefaultAddr is the server address the CLI talks to without --addr.
const DefaultAddr = "127.0.0.1:7400"

// IOStreams are where commands read and write.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// Factory gives commands what they need from outside: streams and a
// client of the Operator service built from the global flags.
type Factory struct {
	IO IOStreams
	// Operator returns a client of the servers' Operator service and a
	// function that closes it.
	Operator func() (pb.OperatorClient, func(), error)
	// IsTerminal reports whether IO.In is a terminal an operator can
	// answer a confirmation on.
	IsTerminal func() bool

	addr, caCert, clientCert, clientKey string
}

// NewFactory returns a factory for the real process: standard streams and
// a gRPC client over mutual TLS.
func NewFactory() *Factory {
	f := &Factory{IO: IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}}
	f.Operator = f.dialOperator
	f.IsTerminal = func() bool {
		fi, err := os.Stdin.Stat()
		return err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	return f
}

// dialOperator connects to the server at --addr with the client
// certificate from the flags or environment.
func (f *Factory) dialOperator() (pb.OperatorClient, func(), error) {
	if f.caCert == "" || f.clientCert == "" || f.clientKey == "" {
		return nil, nil, errors.New("no client certificate: set --ca-cert, --client-cert and --client-key (or DRPLANE_CACERT, DRPLANE_CLIENT_CERT, DRPLANE_CLIENT_KEY); make one with `drplane tls cert create --cli`")
	}
	m, err := tlsutil.Load(f.caCert, f.clientCert, f.clientKey)
	if err != nil {
		return nil, nil, err
	}
	target, resolverOpts, err := dialTarget(f.addr)
	if err != nil {
		return nil, nil, err
	}
	creds := grpc.WithTransportCredentials(m.ClientCredentials(tlsutil.RoleServer))
	opts := append(resolverOpts, creds, grpc.WithChainUnaryInterceptor(withOperator, skipRemovedServers(f.addr, creds)))
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", f.addr, err)
	}
	return pb.NewOperatorClient(conn), func() { _ = conn.Close() }, nil
}

// skipRemovedServers retries a call on the other servers of addr when the
// one that answered says it was removed from the cluster (it refuses to
// serve until rejoined): pick_first only moves on from servers it cannot
// connect to.
func skipRemovedServers(addr string, creds grpc.DialOption) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		var p peer.Peer
		err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Peer(&p))...)
		if !rpcerr.Is(err, pb.ErrorReason_ERROR_REASON_SERVER_REMOVED) || p.Addr == nil {
			return err
		}
		var rest []string
		for _, a := range splitAddrs(addr) {
			if a != p.Addr.String() {
				rest = append(rest, a)
			}
		}
		if len(rest) == 0 {
			return err
		}
		target, resolverOpts, terr := dialTarget(strings.Join(rest, ","))
		if terr != nil {
			return err
		}
		other, derr := grpc.NewClient(target, append(resolverOpts, creds, grpc.WithUnaryInterceptor(withOperator))...)
		if derr != nil {
			return err
		}
		defer func() { _ = other.Close() }()
		return other.Invoke(ctx, method, req, reply, opts...)
	}
}

// addrScheme is the resolver scheme of a connection to several servers.
const addrScheme = "drplane-servers"

// splitAddrs splits --addr at commas, dropping blanks.
func splitAddrs(addr string) []string {
	var out []string
	for _, a := range strings.Split(addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// dialTarget turns --addr into a gRPC target. Several addresses become
// one connection over all of them with pick_first, which tries them in
// the order given until one connects (starting the next attempt early
// when one hangs) and reconnects the same way when its server goes
// away: the CLI keeps working while a site's servers are down. Any
// server answers: followers forward to the leader.
func dialTarget(addr string) (string, []grpc.DialOption, error) {
	addrs := splitAddrs(addr)
	switch len(addrs) {
	case 0:
		return "", nil, fmt.Errorf("no server address: set --addr or %s to host:port[,host:port...]", EnvAddr)
	case 1:
		return addrs[0], nil, nil
	}
	state := resolver.State{}
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return "", nil, fmt.Errorf("server address %q in %q: %w", a, addr, err)
		}
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
	}
	r := manual.NewBuilderWithScheme(addrScheme)
	r.InitialState(state)
	return addrScheme + ":///servers", []grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"pick_first": {}}]}`),
	}, nil
}

// withOperator tells the server the operator's user name for the audit
// trail; the certificate alone names a machine or a team.
func withOperator(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if u, err := user.Current(); err == nil {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-drplane-user", u.Username)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// envOr returns the environment variable's value, or def.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// requestTimeout bounds one operator command's round trip, long enough to
// ride out an election held on the server side.
const requestTimeout = 15 * time.Second

// explain turns a gRPC error into a message that says what failed and what
// to do next.
func explain(addr string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	switch reason := rpcerr.Reason(err); {
	case reason == pb.ErrorReason_ERROR_REASON_NO_LEADER || reason == pb.ErrorReason_ERROR_REASON_SERVER_REMOVED:
		return fmt.Errorf("%s", msg)
	case st.Code() == codes.Unavailable && strings.Contains(msg, "authority"):
		return fmt.Errorf("server %s: its certificate is not signed by --ca-cert (%s)", addr, msg)
	case st.Code() == codes.Unavailable && len(splitAddrs(addr)) > 1:
		return fmt.Errorf("cannot reach any of the servers %s: %s; is `drplane server` running there? Set --addr or %s", addr, msg, EnvAddr)
	case st.Code() == codes.Unavailable:
		return fmt.Errorf("cannot reach server %s: %s; is `drplane server` running there? Set --addr or %s", addr, msg, EnvAddr)
	case st.Code() == codes.PermissionDenied:
		return fmt.Errorf("refused by server %s: %s", addr, msg)
	case st.Code() == codes.DeadlineExceeded:
		return fmt.Errorf("server %s did not answer within %s: %s", addr, requestTimeout, msg)
	}
	return fmt.Errorf("%s", msg)
}

// ExitError asks main to exit with Code without printing anything more:
// the command already reported what went wrong.
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }
