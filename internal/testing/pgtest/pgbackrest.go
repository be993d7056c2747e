package pgtest

import (
	"os"
	"os/exec"
	"testing"
)

// RequirePgBackRest skips t without pgbackrest, or under CI=true fails
// it: a suite that skips in CI tests nothing.
func RequirePgBackRest(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("pgbackrest"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgbackrest is not installed, and CI=true: %v", err)
		}
		t.Skip("pgbackrest is not installed (apt-get install pgbackrest); skipping the pgBackRest test")
	}
}
