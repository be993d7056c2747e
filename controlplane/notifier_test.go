package controlplane

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/notify"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// webhookReceiver is a real HTTP receiver that records every delivery.
type webhookReceiver struct {
	*httptest.Server
	mu         sync.Mutex
	deliveries []receivedNotification
}

type receivedNotification struct {
	Path, Delivery, Signature string
	Body                      []byte
	At                        time.Time
	Message                   notify.Message
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	w := &webhookReceiver{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := receivedNotification{Path: req.URL.Path, Delivery: req.Header.Get(notify.DeliveryHeader),
			Signature: req.Header.Get(notify.SignatureHeader), Body: body, At: time.Now()}
		_ = json.Unmarshal(body, &d.Message)
		w.mu.Lock()
		w.deliveries = append(w.deliveries, d)
		w.mu.Unlock()
	}))
	t.Cleanup(w.Close)
	return w
}

// at returns the deliveries to path.
func (w *webhookReceiver) at(path string) []receivedNotification {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []receivedNotification
	for _, d := range w.deliveries {
		if d.Path == path {
			out = append(out, d)
		}
	}
	return out
}

// waitFor waits until path received n deliveries.
func (w *webhookReceiver) waitFor(t *testing.T, path string, n int) []receivedNotification {
	t.Helper()
	var got []receivedNotification
	testutil.WaitForResult(t, time.Minute, func() (bool, error) {
		got = w.at(path)
		return len(got) >= n, fmt.Errorf("%s received %d of %d", path, len(got), n)
	})
	return got
}

// TestNotify_AutomaticFailover_EscalatesUntilAck: the business-continuity
// plan's hierarchy against a real HTTP receiver. An automatic failover is
// told to the on-call receiver at once and signed; managers after their
// `after`; the leader changes, and the new leader tells the executives
// when their time comes without telling anyone twice; an acknowledgement
// stops the escalation before the last level.
func TestNotify_AutomaticFailover_EscalatesUntilAck(t *testing.T) {
	hook := newWebhookReceiver(t)
	ts := newDetectorSites(t, func(cfg *config.ServerConfig) {
		fastFailover(true)(cfg)
		cfg.Notify = []config.NotifyConfig{
			{Name: "oncall", Webhook: hook.URL + "/oncall", Events: []string{notify.EventFailover, notify.EventStepFailed}, Format: notify.FormatJSON, Secret: "s3cret"},
			{Name: "managers", Webhook: hook.URL + "/managers", Events: []string{notify.EventFailover}, After: 3 * time.Second, Format: notify.FormatSlack},
			{Name: "execs", Webhook: hook.URL + "/execs", Events: []string{notify.EventFailover}, After: 8 * time.Second, Format: notify.FormatJSON},
			{Name: "ceo", Webhook: hook.URL + "/ceo", Events: []string{notify.EventFailover}, After: 25 * time.Second, Format: notify.FormatJSON},
		}
	})
	ts.losePrimaryAgents(t)
	ts.c.kill(ts.server("primary"))
	ex := ts.waitLastExecution(t)
	require.Equal(t, "failover", ex.GetKind())

	oncall := hook.waitFor(t, "/oncall", 1)[0]
	require.Equal(t, notify.EventFailover, oncall.Message.Event)
	require.Equal(t, ex.GetId()+"/failover", oncall.Message.ID)
	require.Equal(t, ex.GetId(), oncall.Message.ExecutionID)
	require.Equal(t, "dr", oncall.Message.Site)
	require.Equal(t, "drplane history "+ex.GetId(), oncall.Message.Link)
	require.Equal(t, notify.Sign("s3cret", oncall.Body), oncall.Signature, "signed with the block's secret")
	raised := oncall.Message.RaisedAt

	managers := hook.waitFor(t, "/managers", 1)[0]
	require.Contains(t, string(managers.Body), `"text":"*drplane failover* (critical)`, "Slack's shape")
	require.GreaterOrEqual(t, managers.At.Sub(raised), 3*time.Second, "managers are told after their after")
	require.Empty(t, hook.at("/execs"), "not yet")

	// The leader changes before the executives' turn, once the managers'
	// delivery is recorded (a delivery the leader had no time to record
	// is sent again by the next one: see the README).
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		list, err := ts.c.client(ts.c.waitForLeader()).ListNotifications(testCtx(t), &pb.ListNotificationsRequest{})
		if err != nil {
			return false, err
		}
		for _, n := range list.GetNotifications() {
			if n.GetId() == oncall.Message.ID && len(n.GetDeliveries()) == 2 {
				return true, nil
			}
		}
		return false, fmt.Errorf("the managers' delivery is not recorded yet")
	})
	leader := ts.c.waitForLeader()
	require.NoError(t, leader.raft.LeadershipTransfer().Error())
	testutil.WaitForResult(t, 30*time.Second, func() (bool, error) {
		l := ts.c.waitForLeader()
		return l != leader, fmt.Errorf("leader is still %s", l.cfg.NodeID)
	})
	execs := hook.waitFor(t, "/execs", 1)[0]
	require.GreaterOrEqual(t, execs.At.Sub(raised), 8*time.Second)
	require.Equal(t, oncall.Message.ID, execs.Message.ID, "the same notification, escalated")

	_, err := ts.c.client(ts.c.follower()).AckNotifications(testCtx(t), &pb.AckNotificationsRequest{Event: notify.EventFailover})
	require.NoError(t, err)
	list, err := ts.c.client(ts.c.waitForLeader()).ListNotifications(testCtx(t), &pb.ListNotificationsRequest{})
	require.NoError(t, err)
	var kept *pb.Notification
	for _, n := range list.GetNotifications() {
		if n.GetId() == oncall.Message.ID {
			kept = n
		}
	}
	require.NotNil(t, kept)
	require.NotNil(t, kept.GetAckedAt())
	require.Len(t, kept.GetDeliveries(), 3, "oncall, managers and execs were told")

	// Past the CEO's time: nobody was told twice, and the CEO never.
	time.Sleep(time.Until(raised.Add(25*time.Second + 2*time.Second)))
	for _, path := range []string{"/oncall", "/managers", "/execs"} {
		var failover []receivedNotification
		for _, d := range hook.at(path) {
			if d.Delivery == oncall.Message.ID+"/"+path[1:] {
				failover = append(failover, d)
			}
		}
		require.Len(t, failover, 1, "%s was told of the failover once", path)
	}
	require.Empty(t, hook.at("/ceo"), "the acknowledgement stopped the escalation")
	t.Logf("failover %s raised %s; told oncall +%s, managers +%s (after 3s), execs +%s (after 8s, by the new leader)",
		ex.GetId(), raised.Format("15:04:05.000"), oncall.At.Sub(raised).Round(time.Millisecond), managers.At.Sub(raised).Round(time.Millisecond),
		execs.At.Sub(raised).Round(time.Millisecond))
}

// TestNotify_TestAndAckRefusals: `drplane notify test NAME` reaches that
// block alone; unknown names and events are refused.
func TestNotify_TestAndAckRefusals(t *testing.T) {
	hook := newWebhookReceiver(t)
	c := newTestClusterWith(t, 3, func(cfg *config.ServerConfig) {
		cfg.Notify = []config.NotifyConfig{
			{Name: "oncall", Webhook: hook.URL + "/oncall", Events: []string{notify.EventFailover}, Format: notify.FormatJSON},
			{Name: "pager", Webhook: hook.URL + "/pager", Events: []string{notify.EventFailover}, Format: notify.FormatPagerDuty, RoutingKey: "R0UT1NG"},
		}
	})
	resp, err := c.client(c.follower()).TestNotification(testCtx(t), &pb.TestNotificationRequest{Receiver: "pager"})
	require.NoError(t, err)
	got := hook.waitFor(t, "/pager", 1)[0]
	require.Contains(t, string(got.Body), `"dedup_key":"`+resp.GetId()+`"`, "PagerDuty's shape, deduplicated on the id")
	require.Empty(t, hook.at("/oncall"), "a test reaches the block named alone")

	_, err = c.client(c.follower()).TestNotification(testCtx(t), &pb.TestNotificationRequest{Receiver: "pagr"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, err.Error(), `no notify block "pagr" in the servers' configuration; declared: oncall, pager`)
	_, err = c.client(c.follower()).AckNotifications(testCtx(t), &pb.AckNotificationsRequest{Event: "failovr"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = c.client(c.follower()).AckNotifications(testCtx(t), &pb.AckNotificationsRequest{Id: "nope"})
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
}

// TestNotify_QuorumLost_SentByTheServerLeftAlone: with no leader to
// record it, a server that has known no leader for a while tells the
// quorum_lost receivers itself, naming itself.
func TestNotify_QuorumLost_SentByTheServerLeftAlone(t *testing.T) {
	hook := newWebhookReceiver(t)
	c := newTestClusterWith(t, 3, func(cfg *config.ServerConfig) {
		cfg.Notify = []config.NotifyConfig{
			{Name: "oncall", Webhook: hook.URL + "/oncall", Events: []string{notify.EventQuorumLost}, Format: notify.FormatJSON},
			{Name: "managers", Webhook: hook.URL + "/managers", Events: []string{notify.EventQuorumLost}, After: time.Second, Format: notify.FormatJSON},
		}
	})
	survivor := c.servers[2]
	c.kill(survivor)
	c.quorumNotifyAfter = time.Second
	c.restart(survivor)
	c.waitForLeader()
	require.Empty(t, hook.at("/oncall"), "nothing while a leader is known")
	for _, ts := range c.servers[:2] {
		c.kill(ts)
	}
	got := hook.waitFor(t, "/oncall", 1)[0]
	require.Equal(t, notify.EventQuorumLost, got.Message.Event)
	require.Equal(t, survivor.cfg.NodeID, got.Message.Source)
	require.Contains(t, got.Message.Message, "server "+survivor.cfg.NodeID+" (site "+survivor.cfg.Site+") has known no leader since")
	managers := hook.waitFor(t, "/managers", 1)[0]
	require.GreaterOrEqual(t, managers.At.Sub(got.Message.RaisedAt), time.Second, "escalated after its after")
	time.Sleep(2 * time.Second)
	require.Len(t, hook.at("/oncall"), 1, "told once per outage")
}
