package tlsutil

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// newTestStreamLayer listens on a free loopback port.
func newTestStreamLayer(t *testing.T, m *Material, logger hclog.Logger) raft.StreamLayer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	layer := NewStreamLayer(ln, nil, m, logger)
	t.Cleanup(func() { _ = layer.Close() })
	return layer
}

// acceptResult is what the accepting side of a test saw.
type acceptResult struct {
	conn net.Conn
	data []byte
	err  error
}

// acceptAndEcho accepts one connection, reads "ping" from it and answers
// "pong". The connection is left open for the test to inspect.
func acceptAndEcho(layer raft.StreamLayer) <-chan acceptResult {
	results := make(chan acceptResult, 1)
	go func() {
		conn, err := layer.Accept()
		if err != nil {
			results <- acceptResult{err: err}
			return
		}
		_ = conn.SetDeadline(time.Now().Add(testTimeout))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(conn, buf); err != nil {
			results <- acceptResult{conn: conn, err: err}
			return
		}
		_, err = conn.Write([]byte("pong"))
		results <- acceptResult{conn: conn, data: buf, err: err}
	}()
	return results
}

// pingPong dials addr, sends "ping" and reads the answer. With TLS 1.3 the
// server checks the client certificate after the client's handshake has
// finished, so a refusal may only show on the first read.
func pingPong(from raft.StreamLayer, addr net.Addr) ([]byte, error) {
	conn, err := from.Dial(raft.ServerAddress(addr.String()), testTimeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testTimeout))
	if _, err := conn.Write([]byte("ping")); err != nil {
		return nil, err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// waitAccepted returns the accepting side's result.
func waitAccepted(t *testing.T, results <-chan acceptResult) acceptResult {
	t.Helper()
	select {
	case res := <-results:
		if res.conn != nil {
			t.Cleanup(func() { _ = res.conn.Close() })
		}
		return res
	case <-time.After(testTimeout):
		t.Fatal("accept did not finish")
		return acceptResult{}
	}
}

func TestStreamLayer_ExchangeBytes(t *testing.T) {
	pki := newTestPKI(t)
	a := newTestStreamLayer(t, pki.issue("server-a", RoleServer), nil)
	b := newTestStreamLayer(t, pki.issue("server-b", RoleServer), nil)

	for _, dir := range []struct {
		name     string
		from, to raft.StreamLayer
	}{
		{name: "a to b", from: a, to: b},
		{name: "b to a", from: b, to: a},
	} {
		t.Run(dir.name, func(t *testing.T) {
			accepted := acceptAndEcho(dir.to)
			got, err := pingPong(dir.from, dir.to.Addr())
			require.NoError(t, err)
			require.Equal(t, "pong", string(got))

			res := waitAccepted(t, accepted)
			require.NoError(t, res.err)
			require.Equal(t, "ping", string(res.data))
		})
	}
}

func TestStreamLayer_Refuses(t *testing.T) {
	pki := newTestPKI(t)
	other := newTestPKI(t)
	server := pki.issue("server-a", RoleServer)
	otherServer := pki.issue("server-b", RoleServer)
	agent := pki.issue("host-1", RoleAgent)
	// A server certificate from another CA, held by a process that trusts
	// our CA: only the side checking the foreign certificate can refuse.
	foreign := other.issue("server-x", RoleServer)
	foreignTrustingUs := &Material{CAPool: server.CAPool, Certificate: foreign.Certificate, Leaf: foreign.Leaf}

	cases := []struct {
		name     string
		dialer   *Material
		listener *Material
		// dialerRefuses is set when the dialer rejects the listener's
		// certificate, so Dial itself fails.
		dialerRefuses bool
		wantListenErr error
	}{
		{name: "agent dials server", dialer: agent, listener: server, wantListenErr: ErrRoleNotAllowed},
		{name: "server dials agent", dialer: server, listener: agent, dialerRefuses: true},
		{name: "foreign CA dials server", dialer: foreignTrustingUs, listener: server},
		{name: "server dials foreign CA", dialer: otherServer, listener: foreignTrustingUs, dialerRefuses: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logger, logs := newTestLogger(t)
			listener := newTestStreamLayer(t, tc.listener, logger)
			dialer := newTestStreamLayer(t, tc.dialer, nil)

			accepted := acceptAndEcho(listener)
			if tc.dialerRefuses {
				conn, err := dialer.Dial(raft.ServerAddress(listener.Addr().String()), testTimeout)
				require.Error(t, err)
				require.Nil(t, conn)
			} else {
				_, err := pingPong(dialer, listener.Addr())
				require.Error(t, err, "dialer must not get an answer")
			}

			res := waitAccepted(t, accepted)
			require.Error(t, res.err, "listener must not read from a refused peer")
			if tc.wantListenErr != nil {
				require.ErrorIs(t, res.err, tc.wantListenErr)
			}
			// The failure is logged once, however often the connection is
			// used afterwards.
			_, err := res.conn.Read(make([]byte, 1))
			require.Error(t, err)
			_, err = res.conn.Write([]byte("x"))
			require.Error(t, err)
			out := logs.String()
			require.Equal(t, 1, strings.Count(out, "refused raft connection"), out)
			require.Contains(t, out, "remote_addr=127.0.0.1:")
			require.NotContains(t, out, "PRIVATE KEY")
		})
	}
}

func TestStreamLayer_AcceptDoesNotWaitForHandshake(t *testing.T) {
	pki := newTestPKI(t)
	logger, logs := newTestLogger(t)
	layer := newTestStreamLayer(t, pki.issue("server-a", RoleServer), logger)
	layer.(*streamLayer).handshakeTimeout = 100 * time.Millisecond

	// A peer that connects and never says anything.
	silent, err := net.Dial("tcp", layer.Addr().String())
	require.NoError(t, err)
	defer silent.Close()

	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := layer.Accept()
		if err == nil {
			accepted <- conn
		}
	}()
	var conn net.Conn
	select {
	case conn = <-accepted:
		defer conn.Close()
	case <-time.After(testTimeout):
		t.Fatal("accept blocked on the handshake")
	}

	// The next peer is served while the silent one is still pending.
	accepted2 := acceptAndEcho(layer)
	got, err := pingPong(newTestStreamLayer(t, pki.issue("server-b", RoleServer), nil), layer.Addr())
	require.NoError(t, err)
	require.Equal(t, "pong", string(got))
	require.NoError(t, waitAccepted(t, accepted2).err)

	// The silent peer's handshake times out on first use and is logged.
	_, err = conn.Read(make([]byte, 1))
	require.Error(t, err)
	logs.waitFor(t, "refused raft connection")
}

func TestStreamLayer_Addr(t *testing.T) {
	m := newTestPKI(t).issue("server-a", RoleServer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	advertise := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 8300}
	var typedNil *net.TCPAddr

	require.Equal(t, advertise, NewStreamLayer(ln, advertise, m, nil).Addr())
	require.Equal(t, ln.Addr(), NewStreamLayer(ln, nil, m, nil).Addr())
	require.Equal(t, ln.Addr(), NewStreamLayer(ln, typedNil, m, nil).Addr())
}

func TestStreamLayer_DialTimeout(t *testing.T) {
	pki := newTestPKI(t)
	layer := newTestStreamLayer(t, pki.issue("server-a", RoleServer), nil)

	// A listener that accepts TCP but never speaks TLS.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			defer conn.Close()
			_, _ = io.Copy(io.Discard, conn)
		}
	}()

	_, err = layer.Dial(raft.ServerAddress(ln.Addr().String()), 200*time.Millisecond)
	require.Error(t, err)
	var netErr net.Error
	require.True(t, errors.As(err, &netErr) && netErr.Timeout(), "want a timeout, got %v", err)
}

// TestStreamLayer_RaftTransport runs Raft's own network transport over the
// stream layer.
func TestStreamLayer_RaftTransport(t *testing.T) {
	pki := newTestPKI(t)
	newTransport := func(m *Material) *raft.NetworkTransport {
		trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  newTestStreamLayer(t, m, nil),
			MaxPool: 2,
			Timeout: testTimeout,
			Logger:  hclog.NewNullLogger(),
		})
		t.Cleanup(func() { _ = trans.Close() })
		return trans
	}
	leader := newTransport(pki.issue("server-a", RoleServer))
	follower := newTransport(pki.issue("server-b", RoleServer))
	intruder := newTransport(pki.issue("host-1", RoleAgent))

	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case rpc := <-follower.Consumer():
				rpc.Respond(&raft.AppendEntriesResponse{Term: 7, Success: true}, nil)
			case <-done:
				return
			}
		}
	}()

	req := &raft.AppendEntriesRequest{Term: 7}
	var resp raft.AppendEntriesResponse
	require.NoError(t, leader.AppendEntries("server-b", follower.LocalAddr(), req, &resp))
	require.True(t, resp.Success)
	require.Equal(t, uint64(7), resp.Term)

	var refused raft.AppendEntriesResponse
	require.Error(t, intruder.AppendEntries("server-b", follower.LocalAddr(), req, &refused))
}
