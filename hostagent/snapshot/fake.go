package snapshot

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Fake is an in-memory Engine for tests of the Manager and the agent, as
// raft's in-memory transport is for raft: it stores only Metas and records
// restores and deletes.
type Fake struct {
	// Now stamps created snapshots; time.Now when nil.
	Now func() time.Time
	// CreateErr, when set, fails every Create.
	CreateErr error
	// RestoreErr, when set, fails every Restore.
	RestoreErr error

	mu       sync.Mutex
	seq      int
	metas    []Meta
	restored []string
	deleted  []string
}

var _ Engine = (*Fake)(nil)

// NewFake returns an empty fake engine.
func NewFake() *Fake { return &Fake{} }

// Add stores meta as if it had been created, for tests that need snapshots
// with chosen times.
func (f *Fake) Add(meta Meta) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metas = append(f.metas, meta)
}

// Create records a snapshot without reading paths.
func (f *Fake) Create(_ context.Context, name string, paths []string, reason string) (Meta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.CreateErr != nil {
		return Meta{}, f.CreateErr
	}
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	f.seq++
	meta := Meta{
		ID: fmt.Sprintf("%s-%06d", name, f.seq), Name: name, Engine: "fake",
		CreatedAt: now().UTC(), Paths: slices.Clone(paths), Reason: reason,
	}
	f.metas = append(f.metas, meta)
	return meta, nil
}

// List returns name's snapshots (all when empty), newest first.
func (f *Fake) List(_ context.Context, name string) ([]Meta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Meta
	for _, m := range f.metas {
		if name == "" || m.Name == name {
			out = append(out, m)
		}
	}
	sortNewestFirst(out)
	return out, nil
}

// Verify succeeds for any stored snapshot.
func (f *Fake) Verify(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.indexLocked(id) < 0 {
		return fmt.Errorf("verify snapshot %s: %w", id, ErrNotFound)
	}
	return nil
}

// Restore records the id.
func (f *Fake) Restore(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.indexLocked(id) < 0 {
		return fmt.Errorf("restore snapshot %s: %w", id, ErrNotFound)
	}
	if f.RestoreErr != nil {
		return f.RestoreErr
	}
	f.restored = append(f.restored, id)
	return nil
}

// Delete removes the snapshot and records the id.
func (f *Fake) Delete(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.indexLocked(id)
	if i < 0 {
		return fmt.Errorf("delete snapshot %s: %w", id, ErrNotFound)
	}
	f.metas = slices.Delete(f.metas, i, i+1)
	f.deleted = append(f.deleted, id)
	return nil
}

// Restored returns the ids restored so far, in order.
func (f *Fake) Restored() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.restored)
}

// Deleted returns the ids deleted so far, in order.
func (f *Fake) Deleted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deleted)
}

func (f *Fake) indexLocked(id string) int {
	return slices.IndexFunc(f.metas, func(m Meta) bool { return m.ID == id })
}
