package netns

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sync"
	"testing"
)

// PGBinDir holds the PostgreSQL 15 programs.
const PGBinDir = "/usr/lib/postgresql/15/bin"

// PGUser is the OS user PostgreSQL runs as, and its superuser.
const PGUser = "postgres"

var (
	availableOnce sync.Once
	availableErr  error
)

// Available reports why network-namespace tests cannot run here, or nil:
// they need root, iproute2's `ip` with working `ip netns`, PostgreSQL 15
// and its postgres user. The answer is computed once per process.
func Available() error {
	availableOnce.Do(func() { availableErr = available() })
	return availableErr
}

func available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("network-namespace tests must run as root (euid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("iproute2's ip is not installed: %w", err)
	}
	// A namespace with a veth and a bridge is all the topology needs.
	probe := "dpprobe-" + randomSuffix(6)
	if err := ip("netns", "add", probe); err != nil {
		return fmt.Errorf("ip netns is not usable: %w", err)
	}
	defer func() { _ = ip("netns", "delete", probe) }()
	if err := ip("-n", probe, "link", "add", "br0", "type", "bridge"); err != nil {
		return fmt.Errorf("cannot create a bridge in a namespace: %w", err)
	}
	if err := ip("-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1"); err != nil {
		return fmt.Errorf("cannot create a veth pair in a namespace: %w", err)
	}
	if _, err := os.Stat(filepath.Join(PGBinDir, "initdb")); err != nil {
		return fmt.Errorf("PostgreSQL 15 is not installed: %w", err)
	}
	if _, err := user.Lookup(PGUser); err != nil {
		return fmt.Errorf("no %s user: %w", PGUser, err)
	}
	return nil
}

// Require skips t when Available says the tests cannot run here, or fails
// it when the environment variable CI is "true": in CI a skipped suite
// would pass without testing anything. It also skips in -short mode.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("netns: skipping the network-namespace suite in -short mode")
	}
	requireAvailable(t, Available(), os.Getenv("CI") == "true")
}

// requireAvailable skips t, or fails it in CI, when unavailable says why
// the suite cannot run.
func requireAvailable(t testing.TB, unavailable error, ci bool) {
	t.Helper()
	if unavailable == nil {
		return
	}
	if ci {
		t.Fatalf("netns: cannot run with CI=true: %v", unavailable)
	}
	t.Skipf("netns: %v", unavailable)
}
