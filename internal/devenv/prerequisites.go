package devenv

import (
	"fmt"
	"os/exec"

	"github.com/drplane/drplane/internal/devcluster"
)

// checkPrerequisites fails, before anything is created or started, when a
// program the deployment would run is missing. Without it a missing rsync
// showed only as a readiness timeout two minutes later, and as a warning
// per sync interval in the agents' logs.
func checkPrerequisites(lookPath func(string) (string, error), mountNamespaces func() error) error {
	// The app hosts' sync block exists only when each agent gets a mount
	// namespace of its own (see layout); the agents then run rsync.
	if mountNamespaces() != nil {
		return nil
	}
	if _, err := lookPath("rsync"); err != nil {
		return fmt.Errorf("drplane dev needs rsync, which is not installed (%v): the app hosts' sync block "+
			"replicates the sample application's state with it; install it with `apt-get install rsync` "+
			"(Debian/Ubuntu; `make demo` does so when run as root) and run drplane dev again", err)
	}
	return nil
}

// prerequisitesHere checks this machine.
func prerequisitesHere() error {
	return checkPrerequisites(exec.LookPath, devcluster.MountNamespaces)
}
