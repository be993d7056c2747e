package controlplane

import (
	"fmt"
	"maps"
	"time"

	"github.com/drplane/drplane/internal/notify"
	"github.com/drplane/drplane/internal/structs"
)

// maxNotifications bounds the notifications kept; the oldest go first,
// in application order, so every server drops the same ones.
const maxNotifications = 500

// raiseLocked records n unless the state holds its id already. Apply
// functions raise the events they see (a failover starting, a step
// failing, replication degrading) in the same entry, deterministically.
func (f *FSM) raiseLocked(n structs.Notification) {
	for _, cur := range f.state.Notifications {
		if cur.ID == n.ID {
			return
		}
	}
	if n.Severity == "" {
		n.Severity = notify.Severity(n.Event)
	}
	n.Sent, n.Failed = nil, nil
	n.AckedAt, n.AckedBy, n.ResolvedAt = time.Time{}, "", time.Time{}
	f.state.Notifications = append(f.state.Notifications, &n)
	if over := len(f.state.Notifications) - maxNotifications; over > 0 {
		f.state.Notifications = f.state.Notifications[over:]
	}
}

// resolveLocked marks the open notifications that match resolved at t.
func (f *FSM) resolveLocked(t time.Time, match func(*structs.Notification) bool) {
	for _, n := range f.state.Notifications {
		if n.Open() && match(n) {
			n.ResolvedAt = t
		}
	}
}

func (f *FSM) applyRaiseNotification(req *structs.RaiseNotificationRequest, index uint64) string {
	n := req.Notification
	if n.ID == "" || n.Event == "" {
		return "a notification needs an id and an event"
	}
	if n.RaisedAt.IsZero() {
		n.RaisedAt = req.Time
	}
	f.raiseLocked(n)
	return ""
}

func (f *FSM) applyNotificationSent(req *structs.NotificationSentRequest, index uint64) string {
	for _, n := range f.state.Notifications {
		if n.ID != req.ID {
			continue
		}
		if req.Error != "" {
			if n.Failed == nil {
				n.Failed = map[string]string{}
			}
			n.Failed[req.Receiver] = req.Error
			return ""
		}
		if n.Sent == nil {
			n.Sent = map[string]time.Time{}
		}
		if _, dup := n.Sent[req.Receiver]; !dup {
			n.Sent[req.Receiver] = req.Time
		}
		return ""
	}
	return fmt.Sprintf("notification %q is not kept (any more)", req.ID)
}

func (f *FSM) applyAckNotifications(req *structs.AckNotificationsRequest, index uint64) string {
	acked := 0
	for _, n := range f.state.Notifications {
		if !n.Open() || (req.ID != "" && n.ID != req.ID) || (req.Event != "" && n.Event != req.Event) {
			continue
		}
		n.AckedAt, n.AckedBy = req.Time, req.Actor
		acked++
	}
	if acked > 0 {
		f.auditLocked(index, &req.WriteRequest, "ack-notifications", fmt.Sprintf("%d acknowledged (id %q, event %q)", acked, req.ID, req.Event))
	}
	return ""
}

// notifications returns copies of the kept notifications, oldest first.
func (f *FSM) notifications() []structs.Notification {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]structs.Notification, len(f.state.Notifications))
	for i, n := range f.state.Notifications {
		out[i] = *n
		out[i].Sent, out[i].Failed = maps.Clone(n.Sent), maps.Clone(n.Failed)
	}
	return out
}
