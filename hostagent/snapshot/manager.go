package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Manager is what the agent calls for one snapshot block: it runs one
// operation at a time on its engine, so a scheduled snapshot never captures
// a restore half-way through, and takes a pre-restore snapshot before every
// restore so a bad restore can be undone.
type Manager struct {
	engine Engine
	logger hclog.Logger
	clock  Clock
	// sem is a one-slot lock that a waiter can abandon when its context
	// ends.
	sem chan struct{}
}

// ManagerOption configures a Manager.
type ManagerOption func(*Manager)

// WithClock replaces the real clock, for tests of the schedule.
func WithClock(c Clock) ManagerOption {
	return func(m *Manager) { m.clock = c }
}

// CallOption configures one Create or Restore call.
type CallOption func(*callOptions)

type callOptions struct {
	progress ProgressFunc
}

// WithProgress sends the call's progress lines, such as
// "snapshot state: 123 files, 4.5 MB", to p.
func WithProgress(p ProgressFunc) CallOption {
	return func(o *callOptions) { o.progress = p }
}

// NewManager returns a manager over engine.
func NewManager(engine Engine, logger hclog.Logger, opts ...ManagerOption) *Manager {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	m := &Manager{engine: engine, logger: logger, clock: realClock{}, sem: make(chan struct{}, 1)}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Create takes a snapshot of paths under name; reason is one of the
// Reason constants.
func (m *Manager) Create(ctx context.Context, name string, paths []string, reason string, opts ...CallOption) (Meta, error) {
	if err := m.lock(ctx); err != nil {
		return Meta{}, err
	}
	defer m.unlock()
	return m.engine.Create(callContext(ctx, opts), name, paths, reason)
}

// Restore restores snapshot id. It first snapshots the same paths with
// reason "pre-restore" and returns that snapshot's Meta, also when the
// restore itself then fails, so the state before the restore can be
// brought back. If the pre-restore snapshot cannot be taken nothing is
// restored. Paths that do not exist now are left out of it; if none exist
// there is nothing to keep and the returned Meta is zero.
func (m *Manager) Restore(ctx context.Context, id string, opts ...CallOption) (Meta, error) {
	if err := m.lock(ctx); err != nil {
		return Meta{}, err
	}
	defer m.unlock()
	ctx = callContext(ctx, opts)
	target, err := m.find(ctx, id)
	if err != nil {
		return Meta{}, err
	}
	pre, err := m.preRestore(ctx, target)
	if err != nil {
		return Meta{}, fmt.Errorf("restore snapshot %s: take pre-restore snapshot: %w", id, err)
	}
	if err := m.engine.Restore(ctx, id); err != nil {
		m.logger.Error("restore failed", "id", id, "pre_restore_id", pre.ID, "error", err)
		return pre, err
	}
	m.logger.Info("restored snapshot", "id", id, "pre_restore_id", pre.ID)
	return pre, nil
}

// List returns the snapshots taken under name (all when name is empty),
// newest first. It does not wait for a running operation: engines list
// only complete snapshots.
func (m *Manager) List(ctx context.Context, name string) ([]Meta, error) {
	return m.engine.List(ctx, name)
}

// At returns the newest snapshot of name taken at or before t: what the
// paths held then, as far as the snapshots know.
func (m *Manager) At(ctx context.Context, name string, t time.Time) (Meta, error) {
	all, err := m.engine.List(ctx, name)
	if err != nil {
		return Meta{}, fmt.Errorf("find the snapshot of %s at %s: %w", name, t.UTC().Format(time.RFC3339), err)
	}
	var found, oldest *Meta
	for i := range all {
		meta := &all[i]
		if !meta.CreatedAt.After(t) && (found == nil || meta.CreatedAt.After(found.CreatedAt)) {
			found = meta
		}
		if oldest == nil || meta.CreatedAt.Before(oldest.CreatedAt) {
			oldest = meta
		}
	}
	switch {
	case found != nil:
		return *found, nil
	case oldest == nil:
		return Meta{}, fmt.Errorf("snapshot block %s holds no snapshot: %w", name, ErrNotFound)
	}
	return Meta{}, fmt.Errorf("snapshot block %s holds no snapshot taken at or before %s; the oldest, %s, was taken %s: %w",
		name, t.UTC().Format(time.RFC3339), oldest.ID, oldest.CreatedAt.UTC().Format(time.RFC3339), ErrNotFound)
}

// find returns the Meta of snapshot id.
func (m *Manager) find(ctx context.Context, id string) (Meta, error) {
	all, err := m.engine.List(ctx, "")
	if err != nil {
		return Meta{}, fmt.Errorf("restore snapshot %s: %w", id, err)
	}
	for _, meta := range all {
		if meta.ID == id {
			return meta, nil
		}
	}
	return Meta{}, fmt.Errorf("restore snapshot %s: %w", id, ErrNotFound)
}

// preRestore snapshots the paths that target would replace, as they are.
func (m *Manager) preRestore(ctx context.Context, target Meta) (Meta, error) {
	var paths []string
	for _, p := range target.Paths {
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			paths = append(paths, p)
		case !errors.Is(err, fs.ErrNotExist):
			return Meta{}, fmt.Errorf("stat %s: %w", p, err)
		}
	}
	if len(paths) == 0 {
		m.logger.Warn("no captured path exists; restoring without a pre-restore snapshot", "id", target.ID)
		return Meta{}, nil
	}
	return m.engine.Create(ctx, target.Name, paths, ReasonPreRestore)
}

// lock takes the manager's one slot, giving up when ctx ends first.
func (m *Manager) lock(ctx context.Context) error {
	select {
	case m.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case m.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for other snapshot operation: %w", ctx.Err())
	}
}

func (m *Manager) unlock() { <-m.sem }

// callContext carries the call's options to the engine.
func callContext(ctx context.Context, opts []CallOption) context.Context {
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	return withProgress(ctx, o.progress)
}
