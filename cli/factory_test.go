package cli

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/rpcerr"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// statusServer is an Operator server that answers GetStatus as id.
type statusServer struct {
	pb.UnimplementedOperatorServer
	id string
}

func (s *statusServer) GetStatus(context.Context, *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
	return &pb.GetStatusResponse{LeaderId: s.id, Meta: &pb.ResponseMeta{ServedBy: s.id}}, nil
}

// removedServer is an Operator server removed from the cluster: it
// refuses everything with the SERVER_REMOVED detail.
type removedServer struct {
	pb.UnimplementedOperatorServer
	id string
}

func (s *removedServer) GetStatus(context.Context, *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
	return nil, rpcerr.New(codes.Unavailable, "server "+s.id+": this server was removed from the cluster",
		&pb.ErrorInfo{Reason: pb.ErrorReason_ERROR_REASON_SERVER_REMOVED, ServerId: s.id})
}

// tlsFactory returns a factory with an operator certificate of a new CA,
// and that CA's material for a server.
func tlsFactory(t *testing.T) (*Factory, *tlsutil.Material) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, tlsutil.CreateCA(dir))
	_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: dir, Name: "s1", Role: tlsutil.RoleServer})
	require.NoError(t, err)
	cert, key, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: dir, Name: "ops", Role: tlsutil.RoleCLI})
	require.NoError(t, err)
	ca := filepath.Join(dir, tlsutil.CACertFile)
	server, err := tlsutil.Load(ca, filepath.Join(dir, "s1.pem"), filepath.Join(dir, "s1-key.pem"))
	require.NoError(t, err)
	f := NewFactory()
	f.caCert, f.clientCert, f.clientKey = ca, cert, key
	return f, server
}

// serve runs an Operator server on loopback until the test ends.
func serve(t *testing.T, m *tlsutil.Material, id string) string {
	t.Helper()
	return serveWith(t, m, &statusServer{id: id})
}

func serveWith(t *testing.T, m *tlsutil.Material, impl pb.OperatorServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.Creds(m.ServerCredentials(nil)))
	pb.RegisterOperatorServer(srv, impl)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// refusedAddr is a loopback address nothing listens on: a server that
// is down.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// silentAddr accepts connections and never answers: a server that hangs
// (SIGSTOPped, or behind a link that drops packets after the handshake).
func silentAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}

func getStatus(t *testing.T, f *Factory) (*pb.GetStatusResponse, error) {
	t.Helper()
	client, closeFn, err := f.Operator()
	require.NoError(t, err)
	defer closeFn()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	return client.GetStatus(ctx, &pb.GetStatusRequest{})
}

// TestDial_SeveralAddressesTriedInTurn checks that with DRPLANE_ADDR
// listing several servers the CLI reaches the first that answers, past
// servers that are down or hang, and in the order given.
func TestDial_SeveralAddressesTriedInTurn(t *testing.T) {
	f, server := tlsFactory(t)
	live2, live3 := serve(t, server, "s2"), serve(t, server, "s3")

	cases := []struct {
		name, addr, want string
	}{
		{"first answers", strings.Join([]string{live2, live3}, ","), "s2"},
		{"order is kept", strings.Join([]string{live3, live2}, ","), "s3"},
		{"first is down", strings.Join([]string{refusedAddr(t), live2}, ","), "s2"},
		{"first two down or hanging, blanks ignored", strings.Join([]string{refusedAddr(t), " " + silentAddr(t), "", live3}, ","), "s3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.addr = tc.addr
			start := time.Now()
			resp, err := getStatus(t, f)
			require.NoError(t, err)
			require.Equal(t, tc.want, resp.GetMeta().GetServedBy())
			// A hanging server must not cost the request its deadline.
			require.Less(t, time.Since(start), requestTimeout/2)
		})
	}
}

// TestDial_RemovedServerSkipped checks that a server that says, in the
// typed detail, that it was removed sends the CLI on to the next address,
// and that a plain Unavailable does not.
func TestDial_RemovedServerSkipped(t *testing.T) {
	f, server := tlsFactory(t)
	removed, live := serveWith(t, server, &removedServer{id: "s1"}), serve(t, server, "s2")
	f.addr = removed + "," + live
	resp, err := getStatus(t, f)
	require.NoError(t, err)
	require.Equal(t, "s2", resp.GetMeta().GetServedBy())

	f.addr = removed
	_, err = getStatus(t, f)
	require.True(t, rpcerr.Is(err, pb.ErrorReason_ERROR_REASON_SERVER_REMOVED), "%v", err)
	require.ErrorContains(t, explain(f.addr, err), "removed from the cluster")
}

// TestDial_NoServerAnswers checks the error when every server is down:
// Unavailable, explained with every address.
func TestDial_NoServerAnswers(t *testing.T) {
	f, _ := tlsFactory(t)
	f.addr = refusedAddr(t) + "," + refusedAddr(t)
	_, err := getStatus(t, f)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.ErrorContains(t, explain(f.addr, err), "cannot reach any of the servers "+f.addr)
}

func TestDialTarget(t *testing.T) {
	target, opts, err := dialTarget("10.0.1.10:7400")
	require.NoError(t, err)
	require.Equal(t, "10.0.1.10:7400", target, "one address dials as before")
	require.Empty(t, opts)

	target, opts, err = dialTarget("10.0.1.10:7400, 10.0.2.10:7400,")
	require.NoError(t, err)
	require.Equal(t, addrScheme+":///servers", target)
	require.NotEmpty(t, opts)

	_, _, err = dialTarget(" , ")
	require.ErrorContains(t, err, "no server address")
	_, _, err = dialTarget("10.0.1.10:7400,10.0.2.10")
	require.ErrorContains(t, err, `server address "10.0.2.10"`)
}
