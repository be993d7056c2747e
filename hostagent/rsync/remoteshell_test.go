package rsync

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRemoteShell_PlainWordsUnquoted(t *testing.T) {
	got := RemoteShell("/usr/bin/drplane", TunnelOptions{
		PeerAddr: "10.0.1.5:7500", SyncName: "app-state",
		CAFile: "/etc/drplane/ca.pem", CertFile: "/etc/drplane/db-2.pem", KeyFile: "/etc/drplane/db-2-key.pem",
	})
	require.Equal(t, "/usr/bin/drplane agent rsync-tunnel --peer 10.0.1.5:7500 --sync app-state"+
		" --ca /etc/drplane/ca.pem --cert /etc/drplane/db-2.pem --key /etc/drplane/db-2-key.pem --", got)
}

// TestRemoteShell_RsyncSplitsBack has the real rsync split the -e string:
// every word, however awkward, must reach the remote shell intact.
func TestRemoteShell_RsyncSplitsBack(t *testing.T) {
	rsyncBin := requireRsync(t)
	dir := filepath.Join(t.TempDir(), `it's a "dir" \ $HOME`)
	require.NoError(t, os.Mkdir(dir, 0o755))
	// The stand-in for drplane records its arguments and fails.
	fake, argvFile := filepath.Join(dir, "drplane"), filepath.Join(t.TempDir(), "argv")
	script := "#!/bin/sh\nprintf '%s\\0' \"$@\" > '" + argvFile + "'\nexit 1\n"
	require.NoError(t, os.WriteFile(fake, []byte(script), 0o755))
	opts := TunnelOptions{
		PeerAddr: "[::1]:7500", SyncName: "",
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: "tab\there", KeyFile: "'; rm -rf / #",
	}

	cmd := exec.Command(rsyncBin, "-a", "-e", RemoteShell(fake, opts), "peer:/srv/x/", t.TempDir()+"/")
	require.Error(t, cmd.Run(), "the fake remote shell fails the transfer")

	argv, err := os.ReadFile(argvFile)
	require.NoError(t, err)
	got := splitNUL(argv)
	want := []string{"agent", "rsync-tunnel", "--peer", opts.PeerAddr, "--sync", "",
		"--ca", opts.CAFile, "--cert", opts.CertFile, "--key", opts.KeyFile, "--", remoteHost, "rsync", "--server", "--sender"}
	require.Equal(t, want, got[:len(want)])
}
