// Package osuser is the OS user the agent runs a service's programs as
// (run_as): who it is, the credential to exec as it, and whether it can
// reach a directory. The PostgreSQL driver, the process driver and the
// pgBackRest engine share it.
package osuser

import (
	"context"
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

// User is a resolved OS user.
type User struct {
	Name     string
	UID, GID uint32
	// Groups are its supplementary groups.
	Groups []uint32
	Home   string
}

// Lookup resolves name to its uid, primary gid, supplementary groups and
// home. Supplementary groups are best effort (a group database entry that
// cannot be read leaves them out).
func Lookup(name string) (*User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up run_as user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of run_as user %s: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of run_as user %s: %w", name, err)
	}
	out := &User{Name: name, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
	gids, _ := u.GroupIds()
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			out.Groups = append(out.Groups, uint32(n))
		}
	}
	return out, nil
}

// Credential is what to exec a program with to run it as u; nil when this
// process runs as u already (switching identity needs root).
func (u *User) Credential() *syscall.Credential {
	if uint32(os.Geteuid()) == u.UID {
		return nil
	}
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups}
}

// LoginEnv is the HOME, USER and LOGNAME a login as u would set, so that
// its programs do not see the agent's.
func (u *User) LoginEnv() []string {
	return []string{"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name}
}

// Chown gives path to u.
func (u *User) Chown(path string) error { return os.Chown(path, int(u.UID), int(u.GID)) }

// CanTraverse applies a directory's owner, group and other search bits to
// u; true for root, and when the ownership is unknown (let the programs
// tell).
func (u *User) CanTraverse(st fs.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	perm := st.Mode().Perm()
	switch {
	case !ok || u.UID == 0:
		return true
	case sys.Uid == u.UID:
		return perm&0o100 != 0
	case sys.Gid == u.GID || slices.Contains(u.Groups, sys.Gid):
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}

// CheckReachable fails, naming the culprit, unless u may pass through
// every directory from / down to dir: a program run as u would otherwise
// fail later with a bare "permission denied".
func (u *User) CheckReachable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if !u.CanTraverse(st) {
			return fmt.Errorf("run_as user %s cannot reach %s: %s (mode %s) is not traversable by it; give it o+x", u.Name, dir, d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// Command builds an invocation of path running as u, in /, with a clean
// environment: PATH, the login variables and the agent's LANG, LC_ALL and
// TZ; no PG* or other variable of the agent's may redirect the program.
func (u *User) Command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, u.LoginEnv()...)
	for _, k := range []string{"LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	if c := u.Credential(); c != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c}
	}
	return cmd
}
