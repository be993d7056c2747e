package driver

import (
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// lookupCredential resolves the user a service runs as: its uid, primary
// gid and supplementary groups, and the HOME, USER and LOGNAME a login
// would set, so the service does not see the agent's.
func lookupCredential(name string) (*syscall.Credential, []string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, nil, fmt.Errorf("look up run_as user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("uid of user %s: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("gid of user %s: %w", name, err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	groups, err := u.GroupIds()
	if err != nil {
		return nil, nil, fmt.Errorf("groups of user %s: %w", name, err)
	}
	for _, g := range groups {
		id, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, nil, fmt.Errorf("group of user %s: %w", name, err)
		}
		cred.Groups = append(cred.Groups, uint32(id))
	}
	env := []string{"HOME=" + u.HomeDir, "USER=" + u.Username, "LOGNAME=" + u.Username}
	return cred, env, nil
}
