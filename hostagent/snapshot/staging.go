package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/drplane/drplane/internal/fsutil"
	"github.com/hashicorp/go-hclog"
)

// staging builds restored content beside each target path and swaps it in.
// Each target gets a temporary directory in its own parent (so renames stay
// on one filesystem) holding the new content while it is built and the old
// content while it is being replaced. Until swap returns, every target still
// holds its original content, and cleanup never removes original content
// that could not be put back. After a crash mid-swap the original is in
// .drplane-restore-<name>-*/.drplane-old beside the target.
type staging struct {
	logger    hclog.Logger
	paths     []*stagedPath
	committed bool
}

// stagedPath is one target's temporary directory.
type stagedPath struct {
	target string
	tmp    string
	// next is where the new content is built, inside tmp.
	next string
	// old is where the original content is parked during the swap.
	old string
	// parked is set while the original content is in old and not in target.
	parked  bool
	swapped bool
}

// oldName is the parked original's name inside a staging directory; the
// restic engine restores absolute paths under the same directory, and no
// captured path starts with this name.
const oldName = ".drplane-old"

// newStaging creates a temporary directory beside each target. next, when
// not nil, maps a target and its temporary directory to where the new
// content will be built; by default that is tmp/new.
func newStaging(targets []string, next func(target, tmp string) string, logger hclog.Logger) (*staging, error) {
	s := &staging{logger: logger}
	for _, target := range targets {
		tmp, err := os.MkdirTemp(filepath.Dir(target), ".drplane-restore-"+filepath.Base(target)+"-")
		if err != nil {
			s.cleanup()
			return nil, fmt.Errorf("create staging directory for %s: %w", target, err)
		}
		p := &stagedPath{target: target, tmp: tmp, next: filepath.Join(tmp, "new"), old: filepath.Join(tmp, oldName)}
		if next != nil {
			p.next = next(target, tmp)
		}
		s.paths = append(s.paths, p)
	}
	return s, nil
}

// swap moves every target's new content into place. If any rename fails,
// the targets already swapped are swapped back and an error is returned.
func (s *staging) swap() error {
	for i, p := range s.paths {
		if err := p.swapIn(); err != nil {
			if rerr := s.rollback(i); rerr != nil {
				return fmt.Errorf("%w; rolling back: %w", err, rerr)
			}
			return err
		}
	}
	s.committed = true
	for _, p := range s.paths {
		// Make the renames durable before the old content is removed.
		if err := fsutil.SyncDir(filepath.Dir(p.target)); err != nil {
			return err
		}
	}
	return nil
}

// swapIn parks the target's current content, if any, and renames the new
// content in; on failure the original is put back.
func (p *stagedPath) swapIn() error {
	if _, err := os.Lstat(p.next); err != nil {
		return fmt.Errorf("restored content for %s: %w", p.target, err)
	}
	err := os.Rename(p.target, p.old)
	switch {
	case err == nil:
		p.parked = true
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("move %s aside: %w", p.target, err)
	}
	if err := os.Rename(p.next, p.target); err != nil {
		err = fmt.Errorf("move restored %s into place: %w", p.target, err)
		return errors.Join(err, p.unpark())
	}
	p.swapped = true
	return nil
}

// unpark puts the original content back at target.
func (p *stagedPath) unpark() error {
	if !p.parked {
		return nil
	}
	if err := os.Rename(p.old, p.target); err != nil {
		return fmt.Errorf("put original %s back from %s: %w", p.target, p.old, err)
	}
	p.parked = false
	return nil
}

// rollback undoes the swaps of the first n paths, newest first.
func (s *staging) rollback(n int) error {
	var errs []error
	for i := n - 1; i >= 0; i-- {
		p := s.paths[i]
		if err := os.Rename(p.target, p.next); err != nil {
			errs = append(errs, fmt.Errorf("move restored %s out again: %w", p.target, err))
			continue
		}
		p.swapped = false
		errs = append(errs, p.unpark())
	}
	return errors.Join(errs...)
}

// cleanup removes the temporary directories: after a committed swap they
// hold the replaced content, otherwise the unused new content. A directory
// still holding original content that could not be put back is kept, and
// logged, so no data is lost.
func (s *staging) cleanup() {
	for _, p := range s.paths {
		if p.parked && !s.committed {
			s.logger.Error("original content left in staging directory", "path", p.target, "staging", p.old)
			continue
		}
		if err := os.RemoveAll(p.tmp); err != nil {
			s.logger.Warn("failed to remove staging directory", "staging", p.tmp, "error", err)
		}
	}
}
