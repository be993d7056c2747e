package controlplane

import (
	"maps"
	"slices"
	"strings"

	"github.com/drplane/drplane/internal/structs"
)

// stateView is a copy of the FSM's state for readers, taken under the lock
// so that one answer never mixes two versions of the state.
type stateView struct {
	Initialized bool
	Sites       []structs.Site
	ActiveSite  string
	Epoch       uint64
	// Agents are sorted by host id.
	Agents  []structs.Agent
	Servers map[string]structs.Server
}

// view returns a consistent copy of everything but the audit trail.
func (f *FSM) view() stateView {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.state
	agents := slices.Collect(maps.Values(s.Agents))
	slices.SortFunc(agents, func(a, b structs.Agent) int { return strings.Compare(a.HostID, b.HostID) })
	return stateView{
		Initialized: s.Initialized,
		Sites:       slices.Clone(s.Sites),
		ActiveSite:  s.ActiveSite,
		Epoch:       s.Epoch,
		Agents:      agents,
		Servers:     maps.Clone(s.Servers),
	}
}

// auditTrail returns the newest limit entries (all when limit is 0).
func (f *FSM) auditTrail(limit int) []structs.AuditEntry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	entries := f.state.Audit
	if limit > 0 && len(entries) > limit {
		entries = entries[len(entries)-limit:]
	}
	return slices.Clone(entries)
}
