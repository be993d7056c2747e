package snapshot

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// maxDecoderWindow bounds the memory a zstd frame may ask for; the encoder
// uses far less.
const maxDecoderWindow = 64 << 20

// entryVisitor is called for each archive entry once its header has matched
// the manifest; r yields a regular file's content. The entry's size and hash
// are checked after the visitor returns, so a visitor that writes must be
// writing somewhere it can throw away.
type entryVisitor func(hdr *tar.Header, r io.Reader) error

// readArchive streams the archive in dir once, checking every entry against
// m and the whole file against its recorded hash, and hands each entry to
// visit (which may be nil). Any mismatch returns an error wrapping
// ErrCorrupt that names what mismatched.
func readArchive(ctx context.Context, dir string, m *manifest, meter *progressMeter, visit entryVisitor) error {
	f, err := os.Open(filepath.Join(dir, archiveFile))
	if err != nil {
		return fmt.Errorf("%w: open archive: %w", ErrCorrupt, err)
	}
	defer f.Close()
	sum := sha256.New()
	raw := io.TeeReader(bufio.NewReaderSize(f, copyBufferSize), sum)
	entryErr := readEntries(ctx, raw, m, meter, visit)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// Hash whatever decoding left unread, so that a corrupt byte anywhere
	// in the file is reported as such even when decoding tripped over it
	// first.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != m.ArchiveSHA256 {
		err := fmt.Errorf("%w: %s has sha256 %s, manifest records %s", ErrCorrupt, archiveFile, got, m.ArchiveSHA256)
		if entryErr != nil {
			err = fmt.Errorf("%w (while reading it: %v)", err, entryErr)
		}
		return err
	}
	return entryErr
}

// readEntries decompresses raw and checks each tar entry against m.
func readEntries(ctx context.Context, raw io.Reader, m *manifest, meter *progressMeter, visit entryVisitor) error {
	// One decoder goroutine-free stream: decoding outpaces sha256 and the
	// disk, and it keeps every read of raw on this goroutine.
	dec, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxDecoderWindow))
	if err != nil {
		return fmt.Errorf("create zstd decoder: %w", err)
	}
	defer dec.Close()
	tr := tar.NewReader(dec)
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if i != len(m.Entries) {
				return fmt.Errorf("%w: archive ends after %d of the manifest's %d entries", ErrCorrupt, i, len(m.Entries))
			}
			break
		}
		if err != nil {
			return fmt.Errorf("%w: read archive entry %d: %w", ErrCorrupt, i+1, err)
		}
		if i >= len(m.Entries) {
			return fmt.Errorf("%w: archive has more entries than the manifest's %d", ErrCorrupt, len(m.Entries))
		}
		if err := readEntry(ctx, tr, hdr, m, i, visit); err != nil {
			return err
		}
		meter.add(boolInt(hdr.Typeflag != tar.TypeDir), hdr.Size)
	}
	// Read to the end of the zstd stream so its checksum is checked.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return fmt.Errorf("%w: read archive end: %w", ErrCorrupt, err)
	}
	return nil
}

// readEntry checks entry i's header, visits it, then checks its content.
func readEntry(ctx context.Context, tr *tar.Reader, hdr *tar.Header, m *manifest, i int, visit entryVisitor) error {
	e := m.Entries[i]
	if err := checkHeader(hdr, e, m.Meta.Paths); err != nil {
		return fmt.Errorf("%w: entry %d: %w", ErrCorrupt, i+1, err)
	}
	h := sha256.New()
	r := &countingReader{r: io.TeeReader(ctxReader{ctx, tr}, h)}
	if visit != nil {
		if err := visit(hdr, r); err != nil {
			return err
		}
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("%w: read /%s: %w", ErrCorrupt, e.Path, err)
	}
	if r.n != e.Size {
		return fmt.Errorf("%w: /%s has %d bytes, manifest records %d", ErrCorrupt, e.Path, r.n, e.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); hdr.Typeflag == tar.TypeReg && got != e.SHA256 {
		return fmt.Errorf("%w: /%s has sha256 %s, manifest records %s", ErrCorrupt, e.Path, got, e.SHA256)
	}
	return nil
}

// checkHeader compares a tar header with its manifest entry and rejects
// names that could escape the captured paths and types a snapshot never
// holds.
func checkHeader(hdr *tar.Header, e manifestEntry, roots []string) error {
	if hdr.Name != e.Path {
		return fmt.Errorf("archive has %q, manifest records %q", hdr.Name, e.Path)
	}
	if !safeName(hdr.Name, roots) {
		return fmt.Errorf("name %q is not inside a captured path", hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
	default:
		return fmt.Errorf("/%s has unsupported type %q", hdr.Name, hdr.Typeflag)
	}
	if mode := hdr.FileInfo().Mode(); mode != e.Mode {
		return fmt.Errorf("/%s has mode %s, manifest records %s", hdr.Name, mode, e.Mode)
	}
	if hdr.Size != e.Size || hdr.Linkname != e.Link {
		return fmt.Errorf("/%s has size %d and link %q, manifest records %d and %q", hdr.Name, hdr.Size, hdr.Linkname, e.Size, e.Link)
	}
	return nil
}

// safeName reports whether an archive name is relative, clean, free of
// ".." and inside one of roots.
func safeName(name string, roots []string) bool {
	if name == "" || path.Clean(name) != name || !filepath.IsLocal(filepath.FromSlash(name)) {
		return false
	}
	return rootOf("/"+name, roots) >= 0
}

// rootOf returns the index of the root that abs is within, or -1.
func rootOf(abs string, roots []string) int {
	for i, root := range roots {
		if within(abs, root) {
			return i
		}
	}
	return -1
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
