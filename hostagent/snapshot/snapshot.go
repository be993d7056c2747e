// Package snapshot takes, lists, verifies, restores and prunes snapshots of
// a host's state directories for the agent.
//
// An Engine stores snapshots: Builtin keeps each one as a zstd-compressed
// tar with a hashed manifest in a local directory; Restic drives a restic
// repository. The Manager is what the agent calls: it serialises the
// operations of one snapshot block, takes a pre-restore snapshot before
// every restore, applies retention and runs the schedule.
package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/names"
)

// Reasons recorded in Meta.Reason.
const (
	ReasonScheduled  = "scheduled"
	ReasonManual     = "manual"
	ReasonPreRestore = "pre-restore"
)

// Engine names recorded in Meta.Engine.
const (
	EngineBuiltin = "builtin"
	EngineRestic  = "restic"
)

var (
	// ErrNotFound is returned for a snapshot id the engine does not hold.
	ErrNotFound = errors.New("snapshot not found")

	// ErrCorrupt is returned by Verify and Restore when stored data does not
	// match what was recorded when the snapshot was taken.
	ErrCorrupt = errors.New("snapshot is corrupt")

	// ErrInvalid is returned for a name, id or path set that cannot be
	// snapshotted safely.
	ErrInvalid = errors.New("invalid snapshot request")
)

// Meta describes one snapshot.
type Meta struct {
	// ID is unique and, for the builtin engine, sorts by creation time:
	// "<name>-<UTC time>-<random suffix>", e.g. "state-20261122T184205Z-3f9a".
	// The restic engine uses restic's snapshot id.
	ID string `json:"id"`
	// Name is the snapshot block's name from the agent config.
	Name string `json:"name"`
	// Engine is EngineBuiltin or EngineRestic.
	Engine    string    `json:"engine"`
	CreatedAt time.Time `json:"created_at"`
	// Paths are the absolute, cleaned paths captured.
	Paths []string `json:"paths"`
	// Files counts the non-directory entries captured.
	Files int64 `json:"files"`
	// Bytes is the uncompressed size of the regular files captured.
	Bytes int64 `json:"bytes"`
	// Reason is ReasonScheduled, ReasonManual or ReasonPreRestore.
	Reason string `json:"reason"`
}

// Engine stores and restores snapshots. Implementations must be safe for
// concurrent use, but the Manager never runs two operations of one engine at
// once.
type Engine interface {
	// Create captures paths (absolute, non-overlapping) as a new snapshot.
	Create(ctx context.Context, name string, paths []string, reason string) (Meta, error)
	// List returns the complete snapshots of the named block, newest first;
	// an empty name lists every block's snapshots.
	List(ctx context.Context, name string) ([]Meta, error)
	// Verify recomputes and compares every hash recorded for the snapshot,
	// returning an error wrapping ErrCorrupt on any mismatch.
	Verify(ctx context.Context, id string) error
	// Restore verifies the snapshot, then replaces each captured path with
	// its captured content exactly. A corrupt snapshot changes nothing.
	Restore(ctx context.Context, id string) error
	// Delete removes the snapshot.
	Delete(ctx context.Context, id string) error
}

// validName keeps snapshot ids, "<name>-<time>-<suffix>", usable as file
// names and free of path tricks.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// idTimeFormat is the UTC time in a builtin snapshot id; it sorts as text.
const idTimeFormat = "20060102T150405Z"

// newID returns "<name>-<UTC time>-<4 hex digits>".
func newID(name string, t time.Time) (string, error) {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate snapshot id: %w", err)
	}
	return name + "-" + t.UTC().Format(idTimeFormat) + "-" + hex.EncodeToString(b[:]), nil
}

// checkName rejects a block name outside the name rule (package names),
// which the config loader checks too. A name of at most names.MaxLen
// characters leaves room in an id's 128 for the time and suffix.
func checkName(name string) error {
	if err := names.Check(name); err != nil {
		return fmt.Errorf("%w: snapshot name %q: %w", ErrInvalid, name, err)
	}
	return nil
}

// cleanPaths checks that paths are absolute, not the root and existing,
// and that none contains another (a restore swaps each one whole), and
// returns them cleaned and without duplicates, in the given order.
func cleanPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no paths", ErrInvalid)
	}
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		c := filepath.Clean(p)
		if !filepath.IsAbs(c) || c == string(filepath.Separator) {
			return nil, fmt.Errorf("%w: path %q must be absolute and not the root", ErrInvalid, p)
		}
		if _, err := os.Lstat(c); err != nil {
			return nil, fmt.Errorf("%w: path %q: %w", ErrInvalid, p, err)
		}
		if err := checkOverlap(out, c); err != nil {
			return nil, err
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// checkOverlap rejects p when it is inside one of paths or contains one.
func checkOverlap(paths []string, p string) error {
	for _, q := range paths {
		if q != p && (within(p, q) || within(q, p)) {
			return fmt.Errorf("%w: paths %q and %q overlap", ErrInvalid, q, p)
		}
	}
	return nil
}

// within reports whether p is root or below it; both must be clean.
func within(p, root string) bool {
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")
}
