package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// runAs is the OS identity pgBackRest runs as: PostgreSQL's user, since
// archive-push runs as that user from archive_command and the repository
// must be one user's. It mirrors the driver's pgCredential, which is
// unexported.
type runAs struct {
	name     string
	uid, gid uint32
	groups   []uint32
	home     string
}

// lookupRunAs resolves name to its uid, gid, groups and home.
func lookupRunAs(name string) (*runAs, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up run_as user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("run_as user %s: %w", name, err)
	}
	r := &runAs{name: name, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}
	gids, _ := u.GroupIds() // supplementary groups are best effort
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			r.groups = append(r.groups, uint32(n))
		}
	}
	return r, nil
}

// command builds an invocation of path running as the user, with a clean
// environment: no PGBACKREST_* variable of the agent's may override the
// configuration file, and no PG* variable may point at another cluster.
func (r *runAs) command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = "/"
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + r.home, "USER=" + r.name, "LOGNAME=" + r.name,
	}
	for _, k := range []string{"LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	// Switching identity needs root; an agent already running as the user
	// execs the programs directly.
	if uint32(os.Geteuid()) != r.uid {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: r.uid, Gid: r.gid, Groups: r.groups,
		}}
	}
	return cmd
}

// mkdirOwned creates dir with perm unless it exists, and gives it to the
// user; its parent must exist.
func (r *runAs) mkdirOwned(dir string, perm fs.FileMode) error {
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return r.chown(dir)
}

// chown gives path to the user, unless the agent already runs as it.
func (r *runAs) chown(path string) error {
	if uint32(os.Geteuid()) == r.uid {
		return nil
	}
	return os.Chown(path, int(r.uid), int(r.gid))
}

// checkReachable fails unless the user may traverse every directory from
// / down to dir: pgBackRest, run by PostgreSQL's archive_command as the
// user, must read the configuration file and write the repository, and
// would otherwise fail only when the first WAL segment is archived.
func (r *runAs) checkReachable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if !r.canTraverse(st) {
			return fmt.Errorf("run_as user %s cannot reach %s: %s (mode %s) is not traversable by it; give it o+x", r.name, dir, d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// canTraverse reports whether the user may search the directory st
// describes.
func (r *runAs) canTraverse(st fs.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	perm := st.Mode().Perm()
	switch {
	case !ok || r.uid == 0:
		return true // unknown ownership or root: let the programs tell
	case sys.Uid == r.uid:
		return perm&0o100 != 0
	case sys.Gid == r.gid || slices.Contains(r.groups, sys.Gid):
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}
