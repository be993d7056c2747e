package rsync

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunTunnel_Errors(t *testing.T) {
	pki := newTestPKI(t)
	agent := startServingAgent(t, pki, map[string][]string{"app-state": {t.TempDir()}}, "rsync")
	valid := tunnelOptions(pki.dir, drAgent, agent.addr, "app-state")
	remote := []string{remoteHost, "rsync", "--server", "--sender", "-logDtpr", ".", "/srv/"}

	cases := []struct {
		name    string
		opts    TunnelOptions
		args    []string
		wantErr string
	}{
		{"missing options", TunnelOptions{PeerAddr: agent.addr}, remote, "missing sync name, CA file, certificate file, key file"},
		{"no command", valid, remote[:1], "want a host and a command"},
		{"unreadable key", func() TunnelOptions { o := valid; o.KeyFile = "/nonexistent"; return o }(), remote, "load tls material"},
		{"certificate of another CA", tunnelOptions(pki.otherDir, drAgent, agent.addr, "app-state"), remote, "Unavailable"},
		{"refused path", valid, remote, "PermissionDenied desc = path not declared"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout bytes.Buffer
			code, err := RunTunnel(ctxT(t), tc.opts, strings.NewReader(""), &stdout, tc.args)
			require.Equal(t, exitTunnelFailed, code)
			require.ErrorContains(t, err, tc.wantErr)
			require.Zero(t, stdout.Len())
		})
	}
}
