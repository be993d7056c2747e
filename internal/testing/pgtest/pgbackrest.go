package pgtest

import (
	"testing"

	"github.com/drplane/drplane/internal/testutil"
)

// RequirePgBackRest skips t without pgbackrest, or under CI=true fails
// it: a suite that skips in CI tests nothing.
func RequirePgBackRest(t testing.TB) {
	t.Helper()
	testutil.RequireProgram(t, "pgbackrest", "pgbackrest")
}
