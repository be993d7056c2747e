package snapshot

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/klauspost/compress/zstd"
)

// copyBufferSize is the buffer for file contents in both directions.
const copyBufferSize = 1 << 20

// archiveWriter streams a tar of captured paths through zstd into a file,
// hashing the file as it goes and recording a manifest entry per tar entry.
// Nothing larger than a copy buffer is held in memory.
type archiveWriter struct {
	logger hclog.Logger
	f      *os.File
	bw     *bufio.Writer
	sum    hash.Hash
	enc    *zstd.Encoder
	tw     *tar.Writer
	buf    []byte
	meter  *progressMeter

	entries []manifestEntry
	files   int64
	bytes   int64
}

// newArchiveWriter creates path, which must not exist.
func newArchiveWriter(path string, meter *progressMeter, logger hclog.Logger) (*archiveWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create archive: %w", err)
	}
	w := &archiveWriter{logger: logger, f: f, sum: sha256.New(), buf: make([]byte, copyBufferSize), meter: meter}
	w.bw = bufio.NewWriterSize(io.MultiWriter(f, w.sum), copyBufferSize)
	// SpeedDefault: on the benchmark tree SpeedFastest was about 1.6x
	// faster but barely compressed low-entropy data (archive 94% of the
	// tree against 77%), and retention keeps many archives.
	w.enc, err = zstd.NewWriter(w.bw, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create zstd encoder: %w", err)
	}
	w.tw = tar.NewWriter(w.enc)
	return w, nil
}

// addTree adds root and, if it is a directory, everything below it in
// lexical order, so every directory precedes its contents. Symlinks are
// stored as links and never followed.
func (w *archiveWriter) addTree(ctx context.Context, root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			err = w.addEntry(ctx, path, d)
		}
		// A file removed while the walk runs was not part of the state
		// when the walk reached it; the root itself must exist.
		if errors.Is(err, fs.ErrNotExist) && path != root {
			w.logger.Debug("file vanished during snapshot", "path", path)
			return nil
		}
		return err
	})
}

// addEntry writes one walked path.
func (w *archiveWriter) addEntry(ctx context.Context, path string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	switch mode := info.Mode(); {
	case mode.IsRegular():
		return w.addFile(ctx, path)
	case mode.IsDir():
		return w.writeHeader(path, info, "")
	case mode&fs.ModeSymlink != 0:
		link, err := os.Readlink(path)
		if err != nil {
			return fmt.Errorf("read link %s: %w", path, err)
		}
		return w.writeHeader(path, info, link)
	default:
		// Sockets, fifos and devices are recreated by their owners, not
		// restored from a snapshot.
		w.logger.Warn("skipping special file", "path", path, "mode", mode.String())
		return nil
	}
}

// addFile writes a regular file. The header is built from the open file's
// own stat so size and content agree; a file that grows meanwhile is
// captured at that size, one that shrinks fails the snapshot.
func (w *archiveWriter) addFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s changed type during snapshot", path)
	}
	if err := w.writeHeader(path, info, ""); err != nil {
		return err
	}
	h := sha256.New()
	// The tar writer is wrapped so io.CopyBuffer uses our large buffer.
	dst := io.MultiWriter(struct{ io.Writer }{w.tw}, h)
	n, err := io.CopyBuffer(dst, io.LimitReader(ctxReader{ctx, f}, info.Size()), w.buf)
	if err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	if n != info.Size() {
		return fmt.Errorf("archive %s: file shrank from %d to %d bytes during snapshot", path, info.Size(), n)
	}
	last := &w.entries[len(w.entries)-1]
	last.SHA256 = hex.EncodeToString(h.Sum(nil))
	w.bytes += n
	w.meter.add(0, n)
	return nil
}

// writeHeader writes the tar header for path and records its manifest
// entry; the content, if any, follows.
func (w *archiveWriter) writeHeader(path string, info fs.FileInfo, link string) error {
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return fmt.Errorf("tar header for %s: %w", path, err)
	}
	hdr.Name = archiveName(path)
	// PAX keeps sub-second mtimes and long names. Owner names, atime and
	// ctime are dropped: ids are what a restore applies, and the others
	// would change the archive on every read.
	hdr.Format = tar.FormatPAX
	hdr.Uname, hdr.Gname = "", ""
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write tar header for %s: %w", path, err)
	}
	w.entries = append(w.entries, manifestEntry{Path: hdr.Name, Size: hdr.Size, Mode: hdr.FileInfo().Mode(), Link: link})
	if !info.IsDir() {
		w.files++
		w.meter.add(1, 0)
	}
	return nil
}

// close finishes the archive and syncs it to disk, returning its hash and
// size.
func (w *archiveWriter) close() (sum string, size int64, err error) {
	err = w.tw.Close()
	if cerr := w.enc.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.bw.Flush()
	}
	if err == nil {
		err = w.f.Sync()
	}
	var info fs.FileInfo
	if err == nil {
		info, err = w.f.Stat()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("finish archive: %w", err)
	}
	return hex.EncodeToString(w.sum.Sum(nil)), info.Size(), nil
}

// abort releases the writer after a failure; the caller removes the file.
func (w *archiveWriter) abort() {
	w.enc.Close()
	w.f.Close()
}

// ctxReader stops a long copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
