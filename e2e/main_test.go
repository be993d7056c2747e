// Package e2e runs real drplane processes on separate addresses and checks
// what an operator would see. The binary is built once for the package.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// drplaneBin is the binary built by TestMain.
var drplaneBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drplane-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	drplaneBin = filepath.Join(dir, "drplane")
	args := []string{"build", "-o", drplaneBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/drplane/drplane/cli/drplane")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build drplane:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
