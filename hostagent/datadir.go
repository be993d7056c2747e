package hostagent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/drplane/drplane/internal/names"
)

// The agent's data_dir holds, besides the epoch, the lease and the
// journal, one directory per declared name:
//
//	services/<service>          a service's state (pid file, log)
//	snapshots/<snapshot>        a builtin snapshot block's snapshots
//	drill/<drill id>/<service>  a service's drill copy
//
// namedDir is the one way the agent makes such a path.

// namedDir returns parent/name for a name declared in the config. It
// refuses a name outside the name rule, and any join that would leave
// parent, so that no name ever creates or removes anything outside
// data_dir. The config loader refuses such names first, with their
// file:line; this is the agent's own check for configs built in code.
func namedDir(parent, name string) (string, error) {
	if err := names.Check(name); err != nil {
		return "", fmt.Errorf("%q: %w", name, err)
	}
	dir := filepath.Join(parent, name)
	// Unreachable for a name that follows the rule; kept so that a
	// change of the rule cannot reopen the path.
	if rel, err := filepath.Rel(parent, dir); err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%q would lead outside %s", name, parent)
	}
	return dir, nil
}

// addDirMode creates dir with mode perm if it is missing (Mkdir's mode is
// subject to the umask) and adds perm's bits to its mode, never removing
// one. A postgres process running as run_as, another user, reaches what
// the agent keeps for it (a drill copy, a backup block's pgBackRest
// config) through o+x directories: traverse, not list; what they hold
// stays private by its own modes.
func addDirMode(dir string, perm os.FileMode) error {
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st.Mode().Perm()|perm != st.Mode().Perm() {
		return os.Chmod(dir, st.Mode().Perm()|perm)
	}
	return nil
}
