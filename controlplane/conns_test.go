package controlplane

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testutil"
	"github.com/drplane/drplane/internal/tlsutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type nodeInfoPeer struct {
	pb.UnimplementedPeerServer
}

func (nodeInfoPeer) NodeInfo(context.Context, *pb.NodeInfoRequest) (*pb.NodeInfoResponse, error) {
	return &pb.NodeInfoResponse{}, nil
}

// TestConnPool_ReconnectsSoonAfterThePeerReturns: a server's shared
// connection to a peer that was away for 10 s (a partition, a restart)
// works again within a few seconds of its return. gRPC's default backoff
// would by then wait 3 to 8 s more before it tried again, and every call
// meanwhile fails at once: a follower could not forward an operator's
// command to the leader for that long after a partition healed.
func TestConnPool_ReconnectsSoonAfterThePeerReturns(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, tlsutil.CreateCA(dir))
	load := func(name string) *tlsutil.Material {
		_, _, err := tlsutil.CreateCert(tlsutil.CertOptions{Dir: dir, Name: name, Role: tlsutil.RoleServer})
		require.NoError(t, err)
		m, err := tlsutil.Load(filepath.Join(dir, "ca.pem"), filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
		require.NoError(t, err)
		return m
	}
	pool := newConnPool(load("s1"), tlsutil.RoleServer)
	t.Cleanup(pool.close)
	peerCreds := load("s2")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	serve := func(ln net.Listener) *grpc.Server {
		g := grpc.NewServer(grpc.Creds(peerCreds.ServerCredentials(nil)))
		pb.RegisterPeerServer(g, nodeInfoPeer{})
		go func() { _ = g.Serve(ln) }()
		t.Cleanup(g.Stop)
		return g
	}
	call := func() error {
		conn, err := pool.get(addr)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = pb.NewPeerClient(conn).NodeInfo(ctx, &pb.NodeInfoRequest{})
		return err
	}
	g := serve(ln)
	require.NoError(t, call())

	g.Stop()
	awayUntil := time.Now().Add(10 * time.Second)
	for time.Now().Before(awayUntil) {
		err := call()
		require.Equal(t, codes.Unavailable, status.Code(err), "the peer is away: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	ln, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	serve(ln)
	back := time.Now()
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		err := call()
		return err == nil, fmt.Errorf("%s after the peer's return: %v", time.Since(back).Round(time.Millisecond), err)
	})
	require.Less(t, time.Since(back), 2500*time.Millisecond, "the connection reconnects within reconnectMax of the peer's return")
}
