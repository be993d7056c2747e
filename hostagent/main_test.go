package hostagent

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestMain lets the test binary stand in for the drplane binary as the
// lease guard: started as "agent lease-guard --dir DIR", as the agent
// starts Deps.LeaseGuard, it runs RunLeaseGuard as the hidden cobra
// command does, instead of the tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "agent" && os.Args[2] == "lease-guard" {
		os.Exit(runLeaseGuardCommand(os.Args[3:]))
	}
	os.Exit(m.Run())
}

// runLeaseGuardCommand is `drplane agent lease-guard` for the tests.
func runLeaseGuardCommand(args []string) int {
	fs := flag.NewFlagSet("lease-guard", flag.ContinueOnError)
	dir := fs.String("dir", "", "the agent's data dir")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGUSR1)
	defer stop()
	logger := hclog.New(&hclog.LoggerOptions{Name: "lease-guard", Output: os.Stderr})
	if err := RunLeaseGuard(ctx, GuardConfig{Dir: *dir, In: os.Stdin, Ready: os.Stdout, Logger: logger}); err != nil {
		fmt.Fprintln(os.Stderr, "lease-guard:", err)
		return 1
	}
	return 0
}
