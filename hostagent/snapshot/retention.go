package snapshot

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Prune applies retention to name's snapshots and returns those it
// deleted. A snapshot is kept if it is younger than keepWithin at now, or
// is among the newest keepLast; the rest are deleted. This is restic's
// union semantics: either rule alone is enough to keep a snapshot. With
// both zero there is no policy and everything is kept. Every reason counts
// alike, pre-restore snapshots included. Deletion goes on past a failure;
// the failures are returned together.
func (m *Manager) Prune(ctx context.Context, name string, keepWithin time.Duration, keepLast int, now time.Time) ([]Meta, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.unlock()
	metas, err := m.engine.List(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("prune snapshots of %s: %w", name, err)
	}
	var deleted []Meta
	var errs []error
	for _, meta := range expired(metas, keepWithin, keepLast, now) {
		if err := m.engine.Delete(ctx, meta.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, meta)
	}
	if len(deleted) > 0 {
		m.logger.Info("pruned snapshots", "name", name, "deleted", len(deleted), "kept", len(metas)-len(deleted))
	}
	if err := errors.Join(errs...); err != nil {
		return deleted, fmt.Errorf("prune snapshots of %s: %w", name, err)
	}
	return deleted, nil
}

// expired returns the snapshots retention does not keep. metas must be
// newest first, as List returns them.
func expired(metas []Meta, keepWithin time.Duration, keepLast int, now time.Time) []Meta {
	if keepWithin <= 0 && keepLast <= 0 {
		return nil
	}
	var out []Meta
	for i, meta := range metas {
		recent := keepWithin > 0 && now.Sub(meta.CreatedAt) < keepWithin
		if i < keepLast || recent {
			continue
		}
		out = append(out, meta)
	}
	return out
}
