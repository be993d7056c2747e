package controlplane

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drplane/drplane/internal/notify"
	"github.com/drplane/drplane/internal/structs"
)

// applySyncReplication replaces a data service's synchronous replication
// record, compare-and-set on the record the leader decided on and on the
// epoch, so a decision taken on a state that moved on (a leader change in
// the middle of a degrade, a failover) is refused rather than applied.
func (f *FSM) applySyncReplication(req *structs.SyncReplicationRequest, index uint64) string {
	rec := req.Record
	cur, ok := f.state.SyncReplication[rec.Service]
	switch {
	case rec.Service == "":
		return "sync replication record names no service"
	case rec.Epoch != f.state.Epoch:
		return fmt.Sprintf("sync replication record of epoch %d, but the epoch is %d", rec.Epoch, f.state.Epoch)
	case ok && cur.Index != req.ExpectIndex, !ok && req.ExpectIndex != 0:
		return fmt.Sprintf("sync replication record of %s changed since (index %d, expected %d)", rec.Service, cur.Index, req.ExpectIndex)
	}
	rec.Index, rec.UpdatedAt = index, req.Time
	rec.Synchronous = slices.Clone(rec.Synchronous)
	if f.state.SyncReplication == nil {
		f.state.SyncReplication = map[string]structs.SyncReplication{}
	}
	f.state.SyncReplication[rec.Service] = rec
	switch {
	case rec.Degraded() && (!ok || !cur.Degraded()):
		f.raiseLocked(structs.Notification{ID: fmt.Sprintf("%s/degraded/%d", rec.Service, index), Event: notify.EventReplicationDegraded,
			Site: f.state.ActiveSite, Message: fmt.Sprintf("%s on %s commits without a synchronous standby: %s", rec.Service, rec.Primary, rec.DegradedReason),
			RaisedAt: req.Time})
	case !rec.Degraded() && ok && cur.Degraded():
		f.resolveLocked(req.Time, func(n *structs.Notification) bool {
			return n.Event == notify.EventReplicationDegraded && strings.HasPrefix(n.ID, rec.Service+"/degraded/")
		})
	}
	if !ok || cur.Degraded() != rec.Degraded() || !slices.Equal(cur.Synchronous, rec.Synchronous) || cur.Primary != rec.Primary || cur.Epoch != rec.Epoch {
		f.auditLocked(index, &req.WriteRequest, "sync-replication", fmt.Sprintf("%s on %s: %s (%s)", rec.Service, rec.Primary, syncStateText(rec), req.Reason))
	}
	return ""
}

// syncStateText says what a record means, for the audit trail and logs.
func syncStateText(r structs.SyncReplication) string {
	switch {
	case r.Degraded():
		return "degraded to async since " + r.DegradedSince.UTC().Format("15:04:05.000") + ": " + r.DegradedReason
	case len(r.Synchronous) == 0:
		return "synchronous, no standby confirmed yet (commits wait)"
	}
	return "synchronous with " + strings.Join(r.Synchronous, ", ")
}

// syncReplication returns the record of service, if any.
func (f *FSM) syncReplication(service string) (structs.SyncReplication, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.state.SyncReplication[service]
	r.Synchronous = slices.Clone(r.Synchronous)
	return r, ok
}
