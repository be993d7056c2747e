// Package notify delivers drplane's notifications to webhooks: the
// events a notify block may subscribe to, the body of each receiver
// format (drplane's JSON, Slack, PagerDuty Events API v2), the HMAC
// signature, and delivery with retries. What to send and when (the
// escalation schedule, acknowledgements) is the control plane's: it keeps
// that in the replicated state.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Events a notify block may subscribe to.
const (
	// EventFailover: a failover execution started (automatic or not).
	EventFailover = "failover"
	// EventExecutionFailed: an execution ended failed.
	EventExecutionFailed = "execution_failed"
	// EventStepFailed: a step of an execution failed.
	EventStepFailed = "step_failed"
	// EventApprovalWaiting: an execution waits at an approval step.
	EventApprovalWaiting = "approval_waiting"
	// EventQuorumLost: a server has known no leader for a while. No
	// leader can record it, so each such server sends it itself.
	EventQuorumLost = "quorum_lost"
	// EventReplicationDegraded: a data service in sync mode commits
	// without a synchronous standby.
	EventReplicationDegraded = "replication_degraded"
	// EventBackupFailed: a scheduled backup or a verification failed.
	EventBackupFailed = "backup_failed"
	// EventScheduledDrill: a schedule block started a drill, and how it
	// ended.
	EventScheduledDrill = "scheduled_drill"
	// EventDrillDeferred: a scheduled drill's slot fell inside trading
	// hours and was moved.
	EventDrillDeferred = "drill_deferred"
	// EventNotify: a plan's notify step.
	EventNotify = "notify"
	// EventTest: `drplane notify test NAME`.
	EventTest = "test"
)

// Events lists the events a notify block may name.
var Events = []string{EventFailover, EventExecutionFailed, EventStepFailed, EventApprovalWaiting, EventQuorumLost,
	EventReplicationDegraded, EventBackupFailed, EventScheduledDrill, EventDrillDeferred, EventNotify}

// Severities.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// Severity is an event's severity.
func Severity(event string) string {
	switch event {
	case EventFailover, EventExecutionFailed, EventQuorumLost, EventReplicationDegraded:
		return SeverityCritical
	case EventStepFailed, EventApprovalWaiting, EventBackupFailed:
		return SeverityWarning
	}
	return SeverityInfo
}

// Formats of a webhook body.
const (
	FormatJSON      = "json"
	FormatSlack     = "slack"
	FormatPagerDuty = "pagerduty"
)

// Formats lists the body formats.
var Formats = []string{FormatJSON, FormatSlack, FormatPagerDuty}

// SignatureHeader carries the body's HMAC-SHA256 with the notify block's
// secret, as "sha256=<hex>" (GitHub's webhook convention).
const SignatureHeader = "X-Drplane-Signature-256"

// DeliveryHeader carries the notification's id and the receiver's name,
// stable across retries and leaders: a receiver may drop a repeat.
const DeliveryHeader = "X-Drplane-Delivery"

// Receiver is a notify block: where and how to send.
type Receiver struct {
	Name    string
	Webhook string
	Format  string
	// Secret signs the body; never logged.
	Secret string
	// RoutingKey is PagerDuty's integration key; never logged.
	RoutingKey string
}

// Message is one notification.
type Message struct {
	// ID is the notification's id, the same for every receiver and
	// every retry (PagerDuty's dedup_key).
	ID          string    `json:"id"`
	Event       string    `json:"event"`
	Severity    string    `json:"severity"`
	Site        string    `json:"site,omitempty"`
	ExecutionID string    `json:"execution_id,omitempty"`
	Message     string    `json:"message"`
	RaisedAt    time.Time `json:"raised_at"`
	// Escalation is the receiver's place in the hierarchy: how long after
	// the event it is sent ("0s" at once).
	Escalation string `json:"escalation"`
	// Link says where to read more: `drplane history ID`.
	Link string `json:"link,omitempty"`
	// Source is the server that sent it.
	Source string `json:"source"`
}

// Body renders m for format.
func Body(format string, r Receiver, m Message) ([]byte, error) {
	switch format {
	case FormatJSON, "":
		return json.Marshal(m)
	case FormatSlack:
		text := fmt.Sprintf("*drplane %s* (%s): %s", m.Event, m.Severity, m.Message)
		if m.Site != "" {
			text += fmt.Sprintf(" — site %s", m.Site)
		}
		if m.Link != "" {
			text += fmt.Sprintf(" — `%s`", m.Link)
		}
		return json.Marshal(map[string]string{"text": text})
	case FormatPagerDuty:
		sev := m.Severity
		if sev == SeverityInfo {
			sev = "info"
		}
		return json.Marshal(map[string]any{
			"routing_key":  r.RoutingKey,
			"event_action": "trigger",
			"dedup_key":    m.ID,
			"payload": map[string]any{
				"summary":   fmt.Sprintf("drplane %s: %s", m.Event, m.Message),
				"source":    m.Source,
				"severity":  sev,
				"timestamp": m.RaisedAt.UTC().Format(time.RFC3339),
				"component": m.Site,
				"group":     "drplane",
				"class":     m.Event,
				"custom_details": map[string]string{
					"execution_id": m.ExecutionID, "link": m.Link, "escalation": m.Escalation,
				},
			},
		})
	}
	return nil, fmt.Errorf("format %q is not one of %s", format, strings.Join(Formats, ", "))
}

// Sign is the signature header's value for body.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Redact is a webhook URL fit for logs: its scheme and host; the path and
// query, which often hold a token, are left out.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<webhook>"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// ValidWebhook checks a webhook URL: http or https with a host.
func ValidWebhook(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	case u.Host == "":
		return errors.New("it names no host")
	}
	return nil
}

// Sender posts notifications.
type Sender struct {
	Client *http.Client
	// Backoff is the first retry's delay, doubling up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
}

// NewSender returns a sender with a 10 s timeout per attempt and retries
// from 1 s to 30 s apart.
func NewSender() *Sender {
	return &Sender{Client: &http.Client{Timeout: 10 * time.Second}, Backoff: time.Second, MaxBackoff: 30 * time.Second}
}

// Send posts m to r, retrying with backoff until a 2xx answer or ctx
// ends. A 4xx answer other than 408 and 429 is final: the receiver
// refuses the request, and sending it again would not change that.
// The error never carries the secret or the routing key.
func (s *Sender) Send(ctx context.Context, r Receiver, m Message) error {
	body, err := Body(r.Format, r, m)
	if err != nil {
		return err
	}
	delay := s.Backoff
	for attempt := 1; ; attempt++ {
		final, err := s.post(ctx, r, m, body)
		if err == nil {
			return nil
		}
		if final {
			return fmt.Errorf("notify %s: %w", r.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("notify %s: gave up after %d attempts: %w", r.Name, attempt, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, s.MaxBackoff)
	}
}

func (s *Sender) post(ctx context.Context, r Receiver, m Message, body []byte) (final bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Webhook, bytes.NewReader(body))
	if err != nil {
		return true, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "drplane")
	req.Header.Set(DeliveryHeader, m.ID+"/"+r.Name)
	if r.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(r.Secret, body))
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		// A webhook URL may itself be a secret (Slack's are): errors name
		// its scheme and host only.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = Redact(r.Webhook)
		}
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return true, fmt.Errorf("the receiver refused it: %s", resp.Status)
	}
	return false, fmt.Errorf("the receiver answered %s", resp.Status)
}
