package backup

import (
	"errors"
	"io/fs"
	"os"

	"github.com/drplane/drplane/internal/osuser"
)

// pgBackRest runs as PostgreSQL's user (internal/osuser): archive-push runs
// as that user from archive_command, and the repository must be one
// user's.

// mkdirOwned creates dir with perm unless it exists, and gives it to u;
// its parent must exist.
func mkdirOwned(u *osuser.User, dir string, perm fs.FileMode) error {
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return u.Chown(dir)
}
