package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func testMessage() Message {
	return Message{ID: "n-1", Event: EventFailover, Severity: SeverityCritical, Site: "dr", ExecutionID: "ex-1",
		Message: "automatic failover from primary to dr", RaisedAt: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC),
		Escalation: "0s", Link: "drplane history ex-1", Source: "s1"}
}

// TestBody_Formats: drplane's JSON carries every field; Slack gets a text;
// PagerDuty an Events API v2 trigger deduplicated on the notification id.
func TestBody_Formats(t *testing.T) {
	r := Receiver{Name: "pd", RoutingKey: "R0UT1NG"}
	b, err := Body(FormatJSON, r, testMessage())
	require.NoError(t, err)
	var m Message
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, testMessage(), m)

	b, err = Body(FormatSlack, r, testMessage())
	require.NoError(t, err)
	require.JSONEq(t, `{"text":"*drplane failover* (critical): automatic failover from primary to dr — site dr — `+"`drplane history ex-1`"+`"}`, string(b))

	b, err = Body(FormatPagerDuty, r, testMessage())
	require.NoError(t, err)
	var pd map[string]any
	require.NoError(t, json.Unmarshal(b, &pd))
	require.Equal(t, "R0UT1NG", pd["routing_key"])
	require.Equal(t, "trigger", pd["event_action"])
	require.Equal(t, "n-1", pd["dedup_key"])
	require.Equal(t, "critical", pd["payload"].(map[string]any)["severity"])

	_, err = Body("teams", r, testMessage())
	require.ErrorContains(t, err, `format "teams" is not one of json, slack, pagerduty`)
}

// TestSend_RetriesSignsAndStops: a receiver that fails twice gets the
// same signed body three times; a 400 is final; a dead receiver's error
// names its host, never its path (a token).
func TestSend_RetriesSignsAndStops(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	var sigs, deliveries []string
	status := []int{503, 502, 200}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, string(b))
		sigs = append(sigs, req.Header.Get(SignatureHeader))
		deliveries = append(deliveries, req.Header.Get(DeliveryHeader))
		w.WriteHeader(status[min(len(bodies)-1, len(status)-1)])
	}))
	defer srv.Close()
	s := &Sender{Client: srv.Client(), Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	r := Receiver{Name: "oncall", Webhook: srv.URL + "/hook", Secret: "s3cret"}
	require.NoError(t, s.Send(context.Background(), r, testMessage()))
	require.Len(t, bodies, 3)
	require.Equal(t, bodies[0], bodies[2])
	require.Equal(t, Sign("s3cret", []byte(bodies[0])), sigs[2])
	require.Equal(t, []string{"n-1/oncall", "n-1/oncall", "n-1/oncall"}, deliveries)

	status = []int{400}
	bodies = nil
	err := s.Send(context.Background(), r, testMessage())
	require.ErrorContains(t, err, "the receiver refused it: 400 Bad Request")
	require.Len(t, bodies, 1, "a refusal is not retried")

	dead := Receiver{Name: "slack", Webhook: "http://127.0.0.1:1/services/T000/B000/TOKEN", Format: FormatSlack}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = s.Send(ctx, dead, testMessage())
	require.Error(t, err)
	require.NotContains(t, err.Error(), "TOKEN")
	require.Contains(t, err.Error(), "http://127.0.0.1:1/…")
}
