package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// RequireProgram returns the path of program, which Debian's package pkg
// provides. Without it the test is skipped, except in CI (CI=true), where
// scripts/prerequisites installs it and its absence is a failure: a test
// that silently stopped running would hide what it checks.
func RequireProgram(t testing.TB, program, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed, and CI=true: %v (apt-get install %s)", program, err, pkg)
	}
	t.Skipf("%s is not installed (apt-get install %s); skipping", program, pkg)
	return ""
}
