package snapshot

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/drplane/drplane/internal/fsutil"
)

const (
	// archiveFile and manifestFile are a builtin snapshot's two files. The
	// manifest is written last: a directory without one is incomplete.
	archiveFile  = "data.tar.zst"
	manifestFile = "manifest.json"

	// manifestVersion is bumped on any incompatible manifest change.
	manifestVersion = 1
)

// manifest records what a builtin snapshot holds, so Verify can recompute
// and compare every hash.
type manifest struct {
	Version int  `json:"version"`
	Meta    Meta `json:"meta"`
	// ArchiveSHA256 and ArchiveSize describe data.tar.zst as written.
	ArchiveSHA256 string `json:"archive_sha256"`
	ArchiveSize   int64  `json:"archive_size"`
	// Entries are in archive order.
	Entries []manifestEntry `json:"entries"`
}

// manifestEntry describes one archive entry.
type manifestEntry struct {
	// Path is the archive name: the captured absolute path without its
	// leading slash.
	Path string      `json:"path"`
	Size int64       `json:"size"`
	Mode fs.FileMode `json:"mode"`
	// SHA256 is set for regular files, Link for symlinks.
	SHA256 string `json:"sha256,omitempty"`
	Link   string `json:"link,omitempty"`
}

// archiveName is the archive entry name of an absolute path.
func archiveName(abs string) string {
	return strings.TrimPrefix(filepath.ToSlash(abs), "/")
}

// writeManifest stores m in dir atomically; it is the step that makes the
// snapshot complete.
func writeManifest(dir string, m *manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	return fsutil.WriteFileDurable(filepath.Join(dir, manifestFile), data)
}

// readManifest loads and sanity-checks dir's manifest. A missing manifest
// returns an error wrapping fs.ErrNotExist; an unreadable one wraps
// ErrCorrupt.
func readManifest(dir string) (*manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: decode manifest: %w", ErrCorrupt, err)
	}
	if err := m.check(filepath.Base(dir)); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrCorrupt, err)
	}
	return &m, nil
}

// check rejects a manifest that does not belong to snapshot id or whose
// paths a restore could not safely replace.
func (m *manifest) check(id string) error {
	if m.Version != manifestVersion {
		return fmt.Errorf("version %d, want %d", m.Version, manifestVersion)
	}
	if m.Meta.ID != id {
		return fmt.Errorf("records id %q in directory %q", m.Meta.ID, id)
	}
	clean := make([]string, 0, len(m.Meta.Paths))
	for _, p := range m.Meta.Paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
			return fmt.Errorf("path %q is not absolute and clean", p)
		}
		if err := checkOverlap(clean, p); err != nil {
			return err
		}
		clean = append(clean, p)
	}
	return nil
}
