package structs

import "time"

// Notification is an event drplane tells people of through the notify
// blocks: at once, then, while nobody acknowledges it, each later block
// when its `after` has passed since the event (the escalation hierarchy).
// It lives in the replicated state, so that a new leader keeps the
// schedule and knows what was sent.
type Notification struct {
	// ID is stable for the event (e.g. "<execution>/failover"): raising
	// it twice records it once, and receivers may drop repeats of it.
	ID          string    `json:"id"`
	Event       string    `json:"event"`
	Severity    string    `json:"severity"`
	Site        string    `json:"site,omitempty"`
	ExecutionID string    `json:"execution_id,omitempty"`
	Message     string    `json:"message"`
	RaisedAt    time.Time `json:"raised_at"`
	// Only, when set, is the one notify block told (a test).
	Only string `json:"only,omitempty"`
	// AckedAt and AckedBy: an operator's acknowledgement, which stops
	// the escalation.
	AckedAt time.Time `json:"acked_at,omitzero"`
	AckedBy string    `json:"acked_by,omitempty"`
	// ResolvedAt: the condition ended by itself (replication synchronous
	// again, the approval given); no later block is told.
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// Sent records, per notify block, when its delivery succeeded;
	// Failed, per notify block, why it was given up.
	Sent   map[string]time.Time `json:"sent,omitempty"`
	Failed map[string]string    `json:"failed,omitempty"`
}

// Open reports whether the notification still escalates.
func (n *Notification) Open() bool { return n.AckedAt.IsZero() && n.ResolvedAt.IsZero() }

// Done reports whether the notify block receiver has been dealt with.
func (n *Notification) Done(receiver string) bool {
	_, sent := n.Sent[receiver]
	_, failed := n.Failed[receiver]
	return sent || failed
}

// RaiseNotificationRequest records a notification; one with an id the
// state holds is ignored.
type RaiseNotificationRequest struct {
	WriteRequest
	Notification Notification `json:"notification"`
}

// NotificationSentRequest records a delivery to a notify block, or, with
// Error, that it was given up.
type NotificationSentRequest struct {
	WriteRequest
	ID       string `json:"id"`
	Receiver string `json:"receiver"`
	Error    string `json:"error,omitempty"`
}

// AckNotificationsRequest acknowledges the open notifications: the one
// with ID, or those of Event, or (both empty) all.
type AckNotificationsRequest struct {
	WriteRequest
	ID    string `json:"id,omitempty"`
	Event string `json:"event,omitempty"`
}
