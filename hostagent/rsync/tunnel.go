package rsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/drplane/drplane/internal/tlsutil"
	drplanev1 "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/grpc"
)

// exitTunnelFailed is RunTunnel's exit code when the tunnel itself fails
// rather than the remote rsync, as ssh exits 255 on its own errors.
const exitTunnelFailed = 255

// tunnelWindow is the HTTP/2 flow-control window, for the stream and for
// the connection, that the pulling side grants the serving agent: how much
// rsync output may be in flight or buffered here before the server waits.
// A fixed window of a few chunks replaces gRPC's default, which starts at
// 64 KiB and grows by estimating the bandwidth-delay product, so that the
// server seldom waits and the client sends few WINDOW_UPDATE frames. The
// connection carries this one stream, so it is also the memory bound.
const tunnelWindow = 4 << 20

// TunnelOptions say which peer agent to pull from and with which
// certificate. They are the flags of the hidden `drplane agent
// rsync-tunnel` command.
type TunnelOptions struct {
	// PeerAddr is the serving agent's HostAgent address, host:port.
	PeerAddr string
	// SyncName is the sync block to pull; the peer must declare it too.
	SyncName string
	// CAFile, CertFile and KeyFile are this agent's TLS files; the
	// certificate must be an agent certificate of the cluster CA.
	CAFile   string
	CertFile string
	KeyFile  string
}

// validate reports the options that are missing.
func (o TunnelOptions) validate() error {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"peer address", o.PeerAddr}, {"sync name", o.SyncName},
		{"CA file", o.CAFile}, {"certificate file", o.CertFile}, {"key file", o.KeyFile},
	} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("rsync tunnel options: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// RunTunnel is the remote shell of a pulling rsync. args are the words
// rsync appends to the -e command: the host of the "host:path" source,
// which is ignored since the peer is opts.PeerAddr, then the remote
// command. RunTunnel opens HostAgent.SyncTunnel to the peer with this
// agent's certificate, sends the sync name and the command, copies stdin
// to the stream and the stream to stdout, and returns the remote rsync's
// exit code. When the tunnel itself fails it returns exitTunnelFailed
// (255) with the error. It may leave one goroutine blocked reading stdin
// until stdin is closed; the command exits right after anyway.
func RunTunnel(ctx context.Context, opts TunnelOptions, stdin io.Reader, stdout io.Writer, args []string) (exitCode int, err error) {
	if err := opts.validate(); err != nil {
		return exitTunnelFailed, err
	}
	if len(args) < 2 {
		return exitTunnelFailed, fmt.Errorf("remote shell arguments: want a host and a command, got %q", args)
	}
	m, err := tlsutil.Load(opts.CAFile, opts.CertFile, opts.KeyFile)
	if err != nil {
		return exitTunnelFailed, fmt.Errorf("load tls material: %w", err)
	}
	conn, err := grpc.NewClient(opts.PeerAddr, grpc.WithTransportCredentials(m.ClientCredentials(tlsutil.RoleAgent)),
		grpc.WithInitialWindowSize(tunnelWindow), grpc.WithInitialConnWindowSize(tunnelWindow))
	if err != nil {
		return exitTunnelFailed, fmt.Errorf("dial peer agent %s: %w", opts.PeerAddr, err)
	}
	defer conn.Close()
	code, err := tunnel(ctx, drplanev1.NewHostAgentClient(conn), opts.SyncName, args[1:], stdin, stdout)
	if err != nil {
		return exitTunnelFailed, fmt.Errorf("sync %s from %s: %w", opts.SyncName, opts.PeerAddr, err)
	}
	return code, nil
}

// tunnel carries one rsync session over a SyncTunnel stream.
func tunnel(ctx context.Context, client drplanev1.HostAgentClient, sync string, command []string,
	stdin io.Reader, stdout io.Writer) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream, and the serving rsync, on any early return
	stream, err := client.SyncTunnel(ctx, grpc.ForceCodecV2(newTunnelCodec()))
	if err != nil {
		return 0, fmt.Errorf("open sync tunnel: %w", err)
	}
	// io.EOF means the server already ended the stream; Recv returns why.
	first := &drplanev1.SyncTunnelRequest{Sync: sync, Args: command}
	if err := stream.Send(first); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("send sync request: %w", err)
	}
	// Only sendInput sends from now on and only receiveOutput receives.
	go sendInput(stream, stdin)
	return receiveOutput(stream, stdout)
}

// sendInput sends the pulling rsync's output, read from stdin, as data
// messages, then close_write once rsync closes it. It stops at the first
// failed Send; receiveOutput reports the stream's error.
func sendInput(stream drplanev1.HostAgent_SyncTunnelClient, stdin io.Reader) {
	buf := make([]byte, chunkSize)
	for {
		n, err := stdin.Read(buf)
		if n > 0 {
			if stream.Send(&drplanev1.SyncTunnelRequest{Data: buf[:n]}) != nil {
				return
			}
		}
		if err != nil {
			break // io.EOF or a broken pipe: rsync sends nothing more either way
		}
	}
	if stream.Send(&drplanev1.SyncTunnelRequest{CloseWrite: true}) == nil {
		_ = stream.CloseSend()
	}
}

// receiveOutput writes the serving rsync's output to stdout until the
// server reports that it exited, and returns its exit code. The stream
// must use tunnelCodec: every message is decoded into the same
// tunnelResponse, whose data is written out before the next one.
func receiveOutput(stream drplanev1.HostAgent_SyncTunnelClient, stdout io.Writer) (int, error) {
	growPipe(stdout)
	var resp tunnelResponse
	for {
		err := stream.RecvMsg(&resp)
		if errors.Is(err, io.EOF) {
			return 0, ErrTunnelClosed
		}
		if err != nil {
			return 0, err
		}
		if len(resp.data) > 0 {
			if _, err := stdout.Write(resp.data); err != nil {
				return 0, fmt.Errorf("write to rsync: %w", err)
			}
		}
		if resp.exited {
			return int(resp.exitCode), nil
		}
	}
}
