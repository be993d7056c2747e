package rsync

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for the drplane binary as rsync's
// remote shell. Pull runs Self as "Self agent rsync-tunnel --peer ... --
// ARGS"; started that way, the test binary runs RunTunnel as the hidden
// cobra command does, instead of the tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "agent" && os.Args[2] == "rsync-tunnel" {
		os.Exit(runTunnelCommand(os.Args[3:]))
	}
	// Under -race, each tunnel process would sleep a second at exit for
	// late race reports; its goroutines have ended by then, so skip that.
	_ = os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	os.Exit(m.Run())
}

// runTunnelCommand is `drplane agent rsync-tunnel` for the tests.
func runTunnelCommand(args []string) int {
	var opts TunnelOptions
	fs := flag.NewFlagSet("rsync-tunnel", flag.ContinueOnError)
	fs.StringVar(&opts.PeerAddr, "peer", "", "peer agent's HostAgent address")
	fs.StringVar(&opts.SyncName, "sync", "", "sync block name")
	fs.StringVar(&opts.CAFile, "ca", "", "CA certificate file")
	fs.StringVar(&opts.CertFile, "cert", "", "agent certificate file")
	fs.StringVar(&opts.KeyFile, "key", "", "agent key file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	code, err := RunTunnel(context.Background(), opts, os.Stdin, os.Stdout, fs.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "rsync-tunnel:", err)
	}
	return code
}
