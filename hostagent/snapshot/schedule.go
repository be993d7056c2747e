package snapshot

import (
	"context"
	"time"
)

// Schedule is a snapshot block with an interval.
type Schedule struct {
	Name  string
	Paths []string
	// Every is the interval between snapshots.
	Every time.Duration
	// KeepWithin and KeepLast are the retention policy applied after each
	// snapshot; see Manager.Prune.
	KeepWithin time.Duration
	KeepLast   int
}

// RunSchedule takes a snapshot (reason "scheduled") and prunes every
// s.Every until ctx ends. It also takes one at once when the newest
// snapshot is older than s.Every, so an agent restarted more often than the
// interval still snapshots. Failures are logged and the loop goes on.
func (m *Manager) RunSchedule(ctx context.Context, s Schedule) {
	logger := m.logger.With("snapshot", s.Name)
	if s.Every <= 0 {
		logger.Error("snapshot schedule needs a positive interval", "every", s.Every)
		return
	}
	t := m.clock.NewTicker(s.Every)
	defer t.Stop()
	if m.due(ctx, s) {
		m.runScheduled(ctx, s)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			m.runScheduled(ctx, s)
		}
	}
}

// due reports whether the newest snapshot of s is older than its interval.
func (m *Manager) due(ctx context.Context, s Schedule) bool {
	metas, err := m.engine.List(ctx, s.Name)
	if err != nil {
		m.logger.Error("failed to list snapshots", "snapshot", s.Name, "error", err)
		return false
	}
	return len(metas) == 0 || m.clock.Now().Sub(metas[0].CreatedAt) >= s.Every
}

// runScheduled is one tick: create, then prune. A failed snapshot skips
// the prune, so a snapshot that keeps failing never lets keep_within empty
// the store.
func (m *Manager) runScheduled(ctx context.Context, s Schedule) {
	meta, err := m.Create(ctx, s.Name, s.Paths, ReasonScheduled)
	if err != nil {
		if ctx.Err() == nil {
			m.logger.Error("scheduled snapshot failed", "snapshot", s.Name, "error", err)
		}
		return
	}
	m.logger.Debug("scheduled snapshot taken", "snapshot", s.Name, "id", meta.ID)
	if _, err := m.Prune(ctx, s.Name, s.KeepWithin, s.KeepLast, m.clock.Now()); err != nil && ctx.Err() == nil {
		m.logger.Error("failed to prune snapshots", "snapshot", s.Name, "error", err)
	}
}
