package health

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTCP_Check(t *testing.T) {
	t.Parallel()
	open, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { open.Close() })
	go func() {
		for {
			conn, err := open.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := gone.Addr().String()
	require.NoError(t, gone.Close())

	cases := []struct {
		name    string
		addr    string
		wantErr string
	}{
		{name: "listening", addr: open.Addr().String()},
		{name: "closed port", addr: closedAddr, wantErr: "connect to " + closedAddr},
		{name: "no port", addr: "127.0.0.1", wantErr: "missing port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewTCP(tc.addr, time.Second)
			require.Equal(t, "tcp "+tc.addr, c.String())
			err := c.Check(context.Background())
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
