package snapshot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/fsutil"
	"github.com/hashicorp/go-hclog"
)

// Builtin is the engine that needs nothing installed: each snapshot is
// dir/<id>/data.tar.zst, a zstd-compressed tar of the captured paths, and
// dir/<id>/manifest.json, written last and atomically, holding the Meta,
// every entry's size, mode and sha256, and the archive's sha256.
type Builtin struct {
	dir    string
	logger hclog.Logger
	// now stamps new snapshots; tests replace it.
	now func() time.Time

	mu sync.Mutex
	// creating holds the ids whose Create is still writing, so List does
	// not clean them up as incomplete.
	creating map[string]bool
}

var _ Engine = (*Builtin)(nil)

// NewBuiltin returns a builtin engine storing snapshots under dir, which
// is created if missing.
func NewBuiltin(dir string, logger hclog.Logger) (*Builtin, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: builtin engine needs a directory", ErrInvalid)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot directory: %w", err)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Builtin{dir: dir, logger: logger.Named("builtin"), now: time.Now, creating: map[string]bool{}}, nil
}

// Create writes a new snapshot of paths. The archive is streamed and synced
// before the manifest is written, so a crash leaves either a complete
// snapshot or an incomplete directory that List removes.
func (b *Builtin) Create(ctx context.Context, name string, paths []string, reason string) (Meta, error) {
	meta, err := b.create(ctx, name, paths, reason)
	if err != nil {
		return Meta{}, fmt.Errorf("create snapshot %s: %w", name, err)
	}
	b.logger.Info("snapshot created", "id", meta.ID, "files", meta.Files, "bytes", meta.Bytes)
	return meta, nil
}

func (b *Builtin) create(ctx context.Context, name string, paths []string, reason string) (Meta, error) {
	if err := checkName(name); err != nil {
		return Meta{}, err
	}
	clean, err := cleanPaths(paths)
	if err != nil {
		return Meta{}, err
	}
	meta := Meta{Name: name, Engine: EngineBuiltin, CreatedAt: b.now().UTC(), Paths: clean, Reason: reason}
	dir, err := b.makeSnapshotDir(&meta)
	if err != nil {
		return Meta{}, err
	}
	defer b.doneCreating(meta.ID)
	m, err := writeArchive(ctx, dir, &meta, b.logger)
	if err == nil {
		err = writeManifest(dir, m)
	}
	if err == nil {
		err = fsutil.SyncDir(b.dir)
	}
	if err != nil {
		if rerr := os.RemoveAll(dir); rerr != nil {
			b.logger.Warn("failed to remove incomplete snapshot", "id", meta.ID, "error", rerr)
		}
		return Meta{}, err
	}
	return meta, nil
}

// makeSnapshotDir picks an unused id for meta and creates its directory,
// marking it as being created.
func (b *Builtin) makeSnapshotDir(meta *Meta) (string, error) {
	for attempt := 0; ; attempt++ {
		id, err := newID(meta.Name, meta.CreatedAt)
		if err != nil {
			return "", err
		}
		dir := filepath.Join(b.dir, id)
		b.mu.Lock()
		err = os.Mkdir(dir, 0o700)
		if err == nil {
			b.creating[id] = true
		}
		b.mu.Unlock()
		// Two snapshots in the same second share all but the suffix.
		if errors.Is(err, fs.ErrExist) && attempt < 10 {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("create snapshot directory: %w", err)
		}
		meta.ID = id
		return dir, nil
	}
}

func (b *Builtin) doneCreating(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.creating, id)
}

// writeArchive streams meta.Paths into dir's archive and returns the
// manifest to write, with meta's counts filled in.
func writeArchive(ctx context.Context, dir string, meta *Meta, logger hclog.Logger) (*manifest, error) {
	meter := newProgressMeter(ctx, "snapshot "+meta.Name)
	w, err := newArchiveWriter(filepath.Join(dir, archiveFile), meter, logger)
	if err != nil {
		return nil, err
	}
	for _, p := range meta.Paths {
		if err := w.addTree(ctx, p); err != nil {
			w.abort()
			return nil, err
		}
	}
	sum, size, err := w.close()
	if err != nil {
		return nil, err
	}
	meter.done()
	meta.Files, meta.Bytes = w.files, w.bytes
	return &manifest{Version: manifestVersion, Meta: *meta, ArchiveSHA256: sum, ArchiveSize: size, Entries: w.entries}, nil
}

// List returns the complete snapshots of name (all when empty), newest
// first. A directory without a manifest whose Create is not running is an
// interrupted snapshot and is removed; an unreadable manifest is logged and
// skipped but kept for inspection.
func (b *Builtin) List(ctx context.Context, name string) ([]Meta, error) {
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []Meta
	for _, ent := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !ent.IsDir() || !validName.MatchString(ent.Name()) {
			continue
		}
		m, ok := b.listOne(ent.Name())
		if ok && (name == "" || m.Meta.Name == name) {
			out = append(out, m.Meta)
		}
	}
	sortNewestFirst(out)
	return out, nil
}

// listOne reads one snapshot directory's manifest for List.
func (b *Builtin) listOne(id string) (*manifest, bool) {
	dir := filepath.Join(b.dir, id)
	m, err := readManifest(dir)
	switch {
	case err == nil:
		return m, true
	case errors.Is(err, fs.ErrNotExist):
		b.removeIncomplete(id)
	default:
		b.logger.Warn("skipping unreadable snapshot", "id", id, "error", err)
	}
	return nil, false
}

// removeIncomplete removes the directory of an interrupted Create.
func (b *Builtin) removeIncomplete(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.creating[id] {
		return
	}
	b.logger.Warn("removing incomplete snapshot", "id", id)
	if err := os.RemoveAll(filepath.Join(b.dir, id)); err != nil {
		b.logger.Warn("failed to remove incomplete snapshot", "id", id, "error", err)
	}
}

// sortNewestFirst orders snapshots by creation time, newest first, then by
// id so the order is total.
func sortNewestFirst(metas []Meta) {
	slices.SortFunc(metas, func(a, b Meta) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
}

// Verify recomputes the archive's sha256 and every entry's size and sha256
// and compares them with the manifest, in one streaming pass.
func (b *Builtin) Verify(ctx context.Context, id string) error {
	dir, m, err := b.load(id)
	if err == nil {
		meter := newProgressMeter(ctx, "verify "+id)
		err = readArchive(ctx, dir, m, meter, nil)
		meter.done()
	}
	if err != nil {
		return fmt.Errorf("verify snapshot %s: %w", id, err)
	}
	return nil
}

// Delete removes a snapshot. The manifest goes first, so a crash midway
// leaves an incomplete directory that List cleans up.
func (b *Builtin) Delete(ctx context.Context, id string) error {
	dir, _, err := b.load(id)
	if errors.Is(err, ErrCorrupt) {
		err = nil
	}
	if err == nil {
		err = os.Remove(filepath.Join(dir, manifestFile))
	}
	if err == nil {
		err = os.RemoveAll(dir)
	}
	if err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	b.logger.Info("snapshot deleted", "id", id)
	return nil
}

// load returns the directory and manifest of a complete snapshot.
func (b *Builtin) load(id string) (string, *manifest, error) {
	if !validName.MatchString(id) {
		return "", nil, fmt.Errorf("%w: id %q", ErrNotFound, id)
	}
	dir := filepath.Join(b.dir, id)
	m, err := readManifest(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return dir, nil, err
	}
	return dir, m, nil
}
