package netsim

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNetwork_Blocked(t *testing.T) {
	cases := []struct {
		name      string
		partition func(*Network)
		a, b      string
		blocked   bool
	}{
		{"no partition", func(*Network) {}, "primary/s1", "dr/s2", false},
		{"sites cut", func(n *Network) { n.Cut("primary", "dr") }, "primary/s1", "dr/s2", true},
		{"sites cut, other direction", func(n *Network) { n.Cut("primary", "dr") }, "dr/s2", "primary/db-1", true},
		{"sites cut, third site", func(n *Network) { n.Cut("primary", "dr") }, "primary/s1", "witness/s3", false},
		{"endpoints cut", func(n *Network) { n.Cut("primary/s1", "dr/s2") }, "primary/s1", "dr/s2", true},
		{"endpoints cut, neighbour", func(n *Network) { n.Cut("primary/s1", "dr/s2") }, "primary/db-1", "dr/s2", false},
		{"site isolated", func(n *Network) { n.Isolate("primary") }, "primary/s1", "witness/s3", true},
		{"site isolated, inside", func(n *Network) { n.Isolate("primary") }, "primary/s1", "primary/db-1", false},
		{"site isolated, outside", func(n *Network) { n.Isolate("primary") }, "dr/s2", "witness/s3", false},
		{"host isolated, same site", func(n *Network) { n.Isolate("primary/db-1") }, "primary/s1", "primary/db-1", true},
		{"unknown endpoint", func(n *Network) { n.Isolate("primary") }, "primary/s1", "", false},
		{"healed", func(n *Network) { n.Isolate("primary"); n.Cut("dr", "witness"); n.Heal() }, "primary/s1", "dr/s2", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := New()
			tc.partition(n)
			require.Equal(t, !tc.blocked, n.Connected(tc.a, tc.b))
		})
	}
}

// pair connects endpoint a to endpoint b through n and returns both
// sides.
func pair(t *testing.T, n *Network, a, b string) (client, server net.Conn) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := n.Listen(b, raw)
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err = n.Dialer(a)(ctx, raw.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return client, server
}

// readWithin reads len(want) bytes within d.
func readWithin(c net.Conn, n int, d time.Duration) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	return buf, err
}

func TestNetwork_CutStallsWritesUntilHealed(t *testing.T) {
	for _, dir := range []string{"client writes", "server writes"} {
		t.Run(dir, func(t *testing.T) {
			n := New()
			client, server := pair(t, n, "primary/db-1", "dr/s2")
			from, to := client, server
			if dir == "server writes" {
				from, to = server, client
			}
			n.Isolate("primary")
			written := make(chan error, 1)
			go func() {
				_, err := from.Write([]byte("ping"))
				written <- err
			}()
			// A blackhole: no error, no data.
			_, err := readWithin(to, 4, 200*time.Millisecond)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			n.Heal()
			require.NoError(t, <-written)
			got, err := readWithin(to, 4, 10*time.Second)
			require.NoError(t, err)
			require.Equal(t, "ping", string(got), "nothing is lost: the stalled bytes arrive after the heal")
		})
	}
}

func TestNetwork_StalledWriteEnds(t *testing.T) {
	cases := []struct {
		name string
		end  func(c net.Conn)
		want error
	}{
		{"write deadline", func(c net.Conn) { _ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)) }, os.ErrDeadlineExceeded},
		{"deadline", func(c net.Conn) { _ = c.SetDeadline(time.Now().Add(50 * time.Millisecond)) }, os.ErrDeadlineExceeded},
		{"close", func(c net.Conn) { _ = c.Close() }, net.ErrClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := New()
			client, _ := pair(t, n, "primary/db-1", "dr/s2")
			n.Cut("primary", "dr")
			written := make(chan error, 1)
			go func() {
				_, err := client.Write([]byte("ping"))
				written <- err
			}()
			tc.end(client)
			err := <-written
			require.ErrorIs(t, err, tc.want)
			if tc.want == os.ErrDeadlineExceeded {
				var ne net.Error
				require.True(t, errors.As(err, &ne) && ne.Timeout(), "a stalled write times out as TCP's would: %v", err)
			}
		})
	}
}

func TestNetwork_DialWaitsForLink(t *testing.T) {
	n := New()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := n.Listen("dr/s2", raw)
	defer ln.Close()
	go func() {
		var conns []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	n.Isolate("dr")

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = n.Dialer("primary/s1")(ctx, raw.Addr().String())
	require.ErrorIs(t, err, context.DeadlineExceeded, "a dial across a cut times out")

	dialed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := n.Dialer("primary/s1")(ctx, raw.Addr().String())
		if err == nil {
			_ = c.Close()
		}
		dialed <- err
	}()
	n.Heal()
	require.NoError(t, <-dialed, "a dial waiting on a cut link connects once it heals")
}

func TestNetwork_UnknownPeerNeverCut(t *testing.T) {
	n := New()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := n.Listen("primary/s1", raw)
	defer ln.Close()
	n.Isolate("primary")
	// A test harness dials without the network: it observes from outside.
	client, err := net.Dial("tcp", raw.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	server, err := ln.Accept()
	require.NoError(t, err)
	defer server.Close()
	_, err = server.Write([]byte("pong"))
	require.NoError(t, err)
	got, err := readWithin(client, 4, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, "pong", string(got))
}
