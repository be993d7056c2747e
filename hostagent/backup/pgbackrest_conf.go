package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/drplane/drplane/internal/osuser"
)

// confSection is one [section] of pgbackrest.conf, its options in the
// order they are written.
type confSection struct {
	name    string
	options []confOption
}

// confOption is one key=value line.
type confOption struct{ key, value string }

// Configure writes the engine's pgbackrest.conf (mode 0600, owned by
// RunAs: it is where repository credentials will go) and creates the
// repository directory, owned by RunAs. It runs nothing and may be called
// again after a configuration change. RunAs must be able to reach both,
// which Configure checks, since pgBackRest runs as RunAs from
// archive_command.
func (e *PgBackRest) Configure(ctx context.Context) error {
	if err := e.configure(ctx); err != nil {
		return fmt.Errorf("configure pgbackrest stanza %s: %w", e.cfg.Stanza, err)
	}
	e.logger.Info("configured", "config", e.ConfigFile(), "repository", e.cfg.Repository)
	return nil
}

func (e *PgBackRest) configure(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Created traversable (not listable): RunAs reads the file in it.
	if err := os.MkdirAll(e.cfg.ConfigDir, 0o711); err != nil {
		return fmt.Errorf("create config dir: %w", err)
	}
	if err := e.user.CheckReachable(e.cfg.ConfigDir); err != nil {
		return fmt.Errorf("config dir: %w", err)
	}
	if err := writeOwned(e.user, e.ConfigFile(), renderConf(e.confSections())); err != nil {
		return fmt.Errorf("write %s: %w", e.ConfigFile(), err)
	}
	if err := mkdirOwned(e.user, e.lockDir(), 0o700); err != nil {
		return fmt.Errorf("create lock dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(e.cfg.Repository), 0o755); err != nil {
		return fmt.Errorf("create repository's parent: %w", err)
	}
	if err := mkdirOwned(e.user, e.cfg.Repository, 0o750); err != nil {
		return fmt.Errorf("create repository: %w", err)
	}
	if err := e.user.CheckReachable(e.cfg.Repository); err != nil {
		return fmt.Errorf("repository: %w", err)
	}
	return nil
}

// confSections is the configuration: global options, the repository's,
// then the stanza's cluster. A remote repository (s3, sftp) adds its
// options, credentials included, in repoOptions: this file is the only
// place they may go.
func (e *PgBackRest) confSections() []confSection {
	global := append(e.repoOptions(),
		// Backups begin with an immediate checkpoint rather than waiting
		// for the next scheduled one.
		confOption{"start-fast", "y"},
		confOption{"compress-type", "lz4"},
		confOption{"process-max", strconv.Itoa(e.cfg.ProcessMax)},
		// Standard output is parsed (info's JSON) or reported as progress,
		// so pgBackRest logs only warnings and errors, to standard error:
		// the engine's error for a command, the server log for
		// archive-push. No log files: nothing outside the agent's paths.
		confOption{"log-level-console", "off"},
		confOption{"log-level-stderr", "warn"},
		confOption{"log-level-file", "off"},
		// The stanza's own locks: pgBackRest's default, /tmp/pgbackrest,
		// is shared by every stanza of that name on the machine.
		confOption{"lock-path", e.lockDir()},
	)
	stanza := []confOption{
		{"pg1-path", e.cfg.DataDir},
		{"pg1-port", strconv.Itoa(e.cfg.Port)},
		{"pg1-socket-path", e.cfg.SocketDir},
		{"pg1-user", e.cfg.User},
	}
	return []confSection{{name: "global", options: global}, {name: e.cfg.Stanza, options: stanza}}
}

// lockDir is where pgBackRest keeps the stanza's locks, in ConfigDir.
func (e *PgBackRest) lockDir() string { return filepath.Join(e.cfg.ConfigDir, "lock") }

// repoOptions are the repository's options: for now a local path.
func (e *PgBackRest) repoOptions() []confOption {
	return []confOption{
		{"repo1-type", "posix"},
		{"repo1-path", e.cfg.Repository},
		{"repo1-retention-full", strconv.Itoa(e.cfg.KeepFull)},
		// pgBackRest retries a failed file copy after 15 seconds, which
		// helps against a network store's hiccups; a local file that
		// failed to read fails again, and a damaged backup's restore
		// would only be slower to say so.
		{"job-retry", "0"},
	}
}

// renderConf writes sections in pgBackRest's ini format. Values are
// validated plain (no newline can start another option), since the format
// has no quoting.
func renderConf(sections []confSection) []byte {
	var b strings.Builder
	b.WriteString("# Written by drplane; changes are overwritten.\n")
	for _, s := range sections {
		fmt.Fprintf(&b, "\n[%s]\n", s.name)
		for _, o := range s.options {
			fmt.Fprintf(&b, "%s=%s\n", o.key, o.value)
		}
	}
	return []byte(b.String())
}

// writeOwned replaces path with data atomically: written to a temporary
// file beside it, mode 0600 and given to user before it is renamed over
// path, so the file is never readable by anyone else, nor half written.
func writeOwned(user *osuser.User, path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = user.Chown(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
