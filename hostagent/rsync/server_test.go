package rsync

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/drplane/drplane/internal/tlsutil"
	drplanev1 "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// capabilities is a protocol capability cluster as rsync 3.5 sends it.
const capabilities = "-logDtpre.LsfxCIvu"

// fakeRsync writes a stand-in for rsync that records its arguments,
// NUL-separated, in the returned file and then runs the shell command
// then: a refused request must never create that file.
func fakeRsync(t *testing.T, then string) (bin, argvFile string) {
	t.Helper()
	dir := t.TempDir()
	bin, argvFile = filepath.Join(dir, "rsync"), filepath.Join(dir, "argv")
	script := "#!/bin/sh\nprintf '%s\\0' \"$@\" > '" + argvFile + "'\n" + then + "\n"
	require.NoError(t, os.WriteFile(bin, []byte(script), 0o755))
	return bin, argvFile
}

// rawTunnel sends first on a new SyncTunnel stream and reads until the
// stream ends. It returns the exit code reported, if any, and the stream's
// final error (nil for a clean end).
func rawTunnel(ctx context.Context, client drplanev1.HostAgentClient, first *drplanev1.SyncTunnelRequest) (exit *int32, err error) {
	stream, err := client.SyncTunnel(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(first); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return exit, nil
		}
		if err != nil {
			return exit, err
		}
		if resp.GetExited() {
			code := resp.GetExitCode()
			exit = &code
		}
	}
}

// agentCreds are client credentials for certificate name of the main CA.
func agentCreds(t *testing.T, pki *testPKI, name string) credentials.TransportCredentials {
	return pki.material(t, name).ClientCredentials(tlsutil.RoleAgent)
}

func TestServe_RefusesRequests(t *testing.T) {
	pki := newTestPKI(t)
	declared, other := t.TempDir(), t.TempDir()
	require.NoError(t, os.Symlink("/", filepath.Join(declared, "escape")))
	bin, argvFile := fakeRsync(t, "exit 3")
	agent := startServingAgent(t, pki, map[string][]string{"app-state": {declared}, "other": {other}}, bin)
	client := agent.dial(t, agentCreds(t, pki, drAgent))
	pull := func(path string, flags ...string) []string {
		return append(append([]string{"rsync", "--server", "--sender"}, flags...), ".", path)
	}

	cases := []struct {
		name     string
		sync     string
		args     []string
		wantCode codes.Code
		wantErr  string
	}{
		{"undeclared sync", "nope", pull(declared+"/", capabilities), codes.PermissionDenied, "sync block not declared"},
		{"path of another sync", "app-state", pull(other+"/", capabilities), codes.PermissionDenied, "path not declared"},
		{"undeclared path", "app-state", pull("/etc/", capabilities), codes.PermissionDenied, "path not declared"},
		{"sibling with the same prefix", "app-state", pull(declared+"-evil/", capabilities), codes.PermissionDenied, "path not declared"},
		{"symlink out of the declared path", "app-state", pull(declared+"/escape/etc/", capabilities), codes.PermissionDenied, "outside"},
		{"dot-dot", "app-state", pull(declared+"/../", capabilities), codes.InvalidArgument, ".. element"},
		{"remove source files", "app-state", pull(declared+"/", capabilities, "--remove-source-files"), codes.InvalidArgument, `"--remove-source-files" not allowed`},
		{"receiving server", "app-state", []string{"rsync", "--server", capabilities, ".", declared + "/"}, codes.InvalidArgument, "must start with"},
		{"another program", "app-state", []string{"sh", "-c", "touch " + argvFile}, codes.InvalidArgument, "must start with"},
		{"filter option", "app-state", pull(declared+"/", "-logDtprf", "merge /etc/shadow"), codes.InvalidArgument, "short options"},
		{"two paths", "app-state", append(pull(declared+"/", capabilities), declared+"/x"), codes.InvalidArgument, "exactly one path"},
		{"shell command substitution", "app-state", pull(declared+"/$(touch "+argvFile+")", capabilities), codes.InvalidArgument, "unescaped"},
		{"no arguments", "app-state", nil, codes.InvalidArgument, "must start with"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exit, err := rawTunnel(ctxT(t), client, &drplanev1.SyncTunnelRequest{Sync: tc.sync, Args: tc.args})
			require.Nil(t, exit)
			require.Equal(t, tc.wantCode, status.Code(err), "error: %v", err)
			require.ErrorContains(t, err, tc.wantErr)
			require.NoFileExists(t, argvFile, "a refused request must run nothing")
		})
	}
}

func TestServe_RunsCheckedArgs(t *testing.T) {
	pki := newTestPKI(t)
	declared := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(declared, "with space"), 0o755))
	bin, argvFile := fakeRsync(t, "exit 3")
	agent := startServingAgent(t, pki, map[string][]string{"app-state": {declared}}, bin)
	client := agent.dial(t, agentCreds(t, pki, drAgent))

	// rsync escapes the space for a remote shell; Serve undoes that and
	// passes the name as one argument, with no shell in between.
	args := []string{"rsync", "--server", "--sender", capabilities, "--numeric-ids", ".", declared + `/./with\ space/`}
	exit, err := rawTunnel(ctxT(t), client, &drplanev1.SyncTunnelRequest{Sync: "app-state", Args: args})
	require.NoError(t, err)
	require.NotNil(t, exit)
	require.EqualValues(t, 3, *exit, "the fake rsync's exit code")

	argv, err := os.ReadFile(argvFile)
	require.NoError(t, err)
	want := []string{"--server", "--sender", capabilities, "--numeric-ids", ".", declared + "/with space/"}
	require.Equal(t, want, splitNUL(argv))
}

// splitNUL splits NUL-terminated strings.
func splitNUL(b []byte) []string {
	var out []string
	for _, f := range bytes.Split(bytes.TrimSuffix(b, []byte{0}), []byte{0}) {
		out = append(out, string(f))
	}
	return out
}

func TestServe_RefusesCallers(t *testing.T) {
	pki := newTestPKI(t)
	declared := t.TempDir()
	bin, argvFile := fakeRsync(t, "exit 3")
	agent := startServingAgent(t, pki, map[string][]string{"app-state": {declared}}, bin)
	first := &drplanev1.SyncTunnelRequest{Sync: "app-state", Args: []string{"rsync", "--server", "--sender", capabilities, ".", declared + "/"}}

	// A certificate of another CA, presented to a client that trusts the
	// serving agent: the serving agent's handshake must refuse it.
	foreign, err := tlsutil.Load(filepath.Join(pki.otherDir, tlsutil.CACertFile),
		filepath.Join(pki.otherDir, drAgent+".pem"), filepath.Join(pki.otherDir, drAgent+"-key.pem"))
	require.NoError(t, err)
	foreignCreds := credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{foreign.Certificate},
		RootCAs:      pki.material(t, drAgent).CAPool,
		ServerName:   tlsutil.RoleDNSName(tlsutil.RoleAgent),
	})

	cases := []struct {
		name     string
		creds    credentials.TransportCredentials
		wantCode codes.Code
		wantErr  string
	}{
		{"server certificate", agentCreds(t, pki, serverCert), codes.PermissionDenied, `caller is not an agent: server certificate "s1"`},
		{"cli certificate", agentCreds(t, pki, cliCert), codes.PermissionDenied, `caller is not an agent: cli certificate "ops"`},
		// How the refused handshake surfaces on the client varies (an
		// alert or a broken pipe), so only the code is checked.
		{"agent certificate of another CA", foreignCreds, codes.Unavailable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exit, err := rawTunnel(ctxT(t), agent.dial(t, tc.creds), first)
			require.Nil(t, exit)
			require.Equal(t, tc.wantCode, status.Code(err), "error: %v", err)
			require.ErrorContains(t, err, tc.wantErr)
			require.NoFileExists(t, argvFile, "a refused caller must run nothing")
		})
	}
	for range 2 {
		require.ErrorContains(t, agent.waitServed(t), "caller is not an agent")
	}
	select {
	case err := <-agent.served:
		t.Fatalf("the foreign certificate reached Serve: %v", err)
	default:
		// SyncTunnel reports Serve before the RPC ends: none ran.
	}
}

func TestServe_CancelKillsRsync(t *testing.T) {
	pki := newTestPKI(t)
	declared := t.TempDir()
	agent := startServingAgent(t, pki, map[string][]string{"app-state": {declared}}, requireRsync(t))
	client := agent.dial(t, agentCreds(t, pki, drAgent))

	ctx, cancel := context.WithCancel(ctxT(t))
	stream, err := client.SyncTunnel(ctx)
	require.NoError(t, err)
	args := []string{"rsync", "--server", "--sender", capabilities, "--numeric-ids", ".", declared + "/"}
	require.NoError(t, stream.Send(&drplanev1.SyncTunnelRequest{Sync: "app-state", Args: args}))
	// The sending rsync greets with its protocol version, then waits for
	// ours, which never comes: it is running.
	resp, err := stream.Recv()
	require.NoError(t, err)
	require.NotEmpty(t, resp.GetData())

	cancel()
	// Serve returns only after rsync was waited for, so it is gone.
	require.Equal(t, codes.Canceled, status.Code(agent.waitServed(t)))
}

func TestServe_ReportsRsyncExitCode(t *testing.T) {
	pki := newTestPKI(t)
	declared := t.TempDir()
	agent := startServingAgent(t, pki, map[string][]string{"app-state": {declared}}, requireRsync(t))
	client := agent.dial(t, agentCreds(t, pki, drAgent))

	// The client closes its side at once: rsync fails its handshake and
	// exits non-zero, which the stream reports as data, not as an error.
	args := []string{"rsync", "--server", "--sender", capabilities, ".", declared + "/"}
	exit, err := rawTunnel(ctxT(t), client, &drplanev1.SyncTunnelRequest{Sync: "app-state", Args: args, CloseWrite: true})
	require.NoError(t, err)
	require.NotNil(t, exit)
	require.NotZero(t, *exit)
}
