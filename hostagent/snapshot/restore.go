package snapshot

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Restore replaces every captured path with its content in the snapshot,
// exactly: files created since are gone afterwards.
//
// The archive is extracted into staging directories while being verified in
// the same pass, and the staged trees are swapped in only once every hash
// has matched; a corrupt snapshot, or any failure before the swap, leaves
// the paths untouched. This is Verify-then-restore in one read of the
// archive instead of two.
//
// Each captured path is renamed as a whole, so a path that is itself a
// mount point cannot be restored: the rename fails (EBUSY) before anything
// changed. Snapshot a directory inside the mount instead.
func (b *Builtin) Restore(ctx context.Context, id string) error {
	if err := b.restore(ctx, id); err != nil {
		return fmt.Errorf("restore snapshot %s: %w", id, err)
	}
	b.logger.Info("snapshot restored", "id", id)
	return nil
}

func (b *Builtin) restore(ctx context.Context, id string) error {
	dir, m, err := b.load(id)
	if err != nil {
		return err
	}
	st, err := newStaging(m.Meta.Paths, nil, b.logger)
	if err != nil {
		return err
	}
	defer st.cleanup()
	x := newExtractor(m.Meta.Paths, st)
	meter := newProgressMeter(ctx, "restore "+id)
	if err := readArchive(ctx, dir, m, meter, x.visit); err != nil {
		return err
	}
	if err := x.finish(); err != nil {
		return err
	}
	meter.done()
	return st.swap()
}

// extractor writes archive entries into staging directories. It only
// creates entries inside directories it created itself, so neither a
// symlink in the archive nor anything already on disk can redirect a
// write.
type extractor struct {
	roots []string
	st    *staging
	// made holds the directories created so far; dirs their headers, whose
	// modes and times are applied last, deepest first.
	made  map[string]bool
	dirs  []dirEntry
	chown bool
	buf   []byte
}

type dirEntry struct {
	path string
	hdr  *tar.Header
}

func newExtractor(roots []string, st *staging) *extractor {
	return &extractor{
		roots: roots,
		st:    st,
		made:  map[string]bool{},
		// Only root can give files away; anyone else restores as itself.
		chown: os.Geteuid() == 0,
		buf:   make([]byte, copyBufferSize),
	}
}

// visit creates one entry; it is an entryVisitor.
func (x *extractor) visit(hdr *tar.Header, r io.Reader) error {
	dest, err := x.destination(hdr.Name)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		// Writable until finish applies the recorded mode.
		if err := os.Mkdir(dest, 0o700); err != nil {
			return fmt.Errorf("create directory: %w", err)
		}
		x.made[dest] = true
		x.dirs = append(x.dirs, dirEntry{dest, hdr})
		return nil
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, dest); err != nil {
			return fmt.Errorf("create symlink: %w", err)
		}
		return x.own(dest, hdr)
	default:
		return x.writeFile(dest, hdr, r)
	}
}

// destination maps an archive name to its path in the staging directories
// and checks that its parent was created by this extraction.
func (x *extractor) destination(name string) (string, error) {
	abs := "/" + name
	i := rootOf(abs, x.roots)
	if i < 0 {
		return "", fmt.Errorf("%w: %s is not inside a captured path", ErrCorrupt, abs)
	}
	next := x.st.paths[i].next
	if abs == x.roots[i] {
		return next, nil
	}
	dest := filepath.Join(next, filepath.FromSlash(strings.TrimPrefix(abs, x.roots[i])))
	if !x.made[filepath.Dir(dest)] {
		return "", fmt.Errorf("%w: %s comes before its directory", ErrCorrupt, abs)
	}
	return dest, nil
}

// writeFile writes and syncs a regular file, then applies its metadata.
func (x *extractor) writeFile(dest string, hdr *tar.Header, r io.Reader) error {
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create file: %w", err)
	}
	// The file is wrapped so io.CopyBuffer uses our large buffer.
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, r, x.buf)
	if err == nil {
		// Synced now so the swap never exposes data still in page cache.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write /%s: %w", hdr.Name, err)
	}
	if err := x.own(dest, hdr); err != nil {
		return err
	}
	return x.setModeAndTime(dest, hdr)
}

// finish applies the directories' owners, modes and times, deepest first,
// after their contents are in place (creating an entry changes a
// directory's mtime).
func (x *extractor) finish() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := x.own(d.path, d.hdr); err != nil {
			return err
		}
		if err := x.setModeAndTime(d.path, d.hdr); err != nil {
			return err
		}
	}
	return nil
}

// own gives path its recorded owner when running as root. It goes before
// chmod, since chown clears set-id bits.
func (x *extractor) own(path string, hdr *tar.Header) error {
	if !x.chown {
		return nil
	}
	if err := os.Lchown(path, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("set owner of /%s: %w", hdr.Name, err)
	}
	return nil
}

func (x *extractor) setModeAndTime(path string, hdr *tar.Header) error {
	if err := os.Chmod(path, hdr.FileInfo().Mode()); err != nil {
		return fmt.Errorf("set mode of /%s: %w", hdr.Name, err)
	}
	if err := os.Chtimes(path, hdr.ModTime, hdr.ModTime); err != nil {
		return fmt.Errorf("set times of /%s: %w", hdr.Name, err)
	}
	return nil
}
