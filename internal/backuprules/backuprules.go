// Package backuprules holds what drplane allows into pgBackRest's
// configuration and archive_command, and the defaults it gives a backup
// block: the agent's config checks them with file positions when it
// loads, and the engine (hostagent/backup) again before it writes
// anything, from one source.
package backuprules

import "regexp"

// StanzaRE is the stanza names allowed (a backup block's name): they
// become directory names in the repository and go into archive_command,
// which a shell runs.
var StanzaRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// PathRE is the paths allowed (repository, data and config directories).
// archive_command and restore_command run through /bin/sh, and the
// configuration file has no quoting, so a path must not carry quotes,
// spaces, $ or other shell syntax.
var PathRE = regexp.MustCompile(`^/[A-Za-z0-9._/+@,=-]*$`)

// Defaults of a backup block.
const (
	// DefaultKeepFull is how many full backups are kept (and the WAL
	// they need).
	DefaultKeepFull = 2
	// DefaultProcessMax is how many processes pgBackRest copies and
	// compresses with.
	DefaultProcessMax = 2
)
