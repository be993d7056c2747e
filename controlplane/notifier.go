package controlplane

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/notify"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/wirecheck"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	// notifyTick is how often the leader looks for a due delivery; an
	// escalation is late by at most this much.
	notifyTick = 500 * time.Millisecond
	// notifyMaxAge: a notification older than this is not sent any more
	// (a notify block added long after an event is not told of it).
	notifyMaxAge = 24 * time.Hour
	// notifyGiveUp bounds the retries of one delivery; then it is
	// recorded as failed.
	notifyGiveUp = 10 * time.Minute
	// defaultQuorumNotifyAfter is how long a server knows no leader
	// before it tells the quorum_lost receivers itself: longer than an
	// election.
	defaultQuorumNotifyAfter = 15 * time.Second
)

// receiver is a notify block as the sender takes it.
func receiver(n config.NotifyConfig) notify.Receiver {
	return notify.Receiver{Name: n.Name, Webhook: n.Webhook, Format: n.Format, Secret: n.Secret, RoutingKey: n.RoutingKey}
}

// wants reports whether notify block r is told of n.
func wants(r config.NotifyConfig, n *structs.Notification) bool {
	if n.Only != "" {
		return n.Only == r.Name
	}
	return slices.Contains(r.Events, n.Event)
}

// message is what a notify block receives of n.
func (s *Server) message(r config.NotifyConfig, n *structs.Notification) notify.Message {
	m := notify.Message{ID: n.ID, Event: n.Event, Severity: n.Severity, Site: n.Site, ExecutionID: n.ExecutionID,
		Message: n.Message, RaisedAt: n.RaisedAt, Escalation: r.After.String(), Source: s.config.NodeID}
	if n.ExecutionID != "" {
		m.Link = "drplane history " + n.ExecutionID
	}
	return m
}

// delivery is the outcome of one send.
type delivery struct {
	key string
	err error
}

// runNotifier, on the leader, sends every open notification of the
// replicated state to each notify block that wants it once its `after`
// has passed since the event, and records each delivery, so that a new
// leader sends only what its predecessor did not. A delivery cut short by
// the end of this leadership is not recorded: the next leader sends it.
func (s *Server) runNotifier(ctx context.Context) {
	inflight := map[string]bool{}
	done := make(chan delivery)
	tick := time.NewTicker(notifyTick)
	defer tick.Stop()
	for {
		kept := s.fsm.notifications()
		s.raiseBackupFailures(kept)
		now := time.Now()
		for _, n := range kept {
			if !n.Open() || now.Sub(n.RaisedAt) > notifyMaxAge {
				continue
			}
			for _, r := range s.config.Notify {
				key := n.ID + "\x00" + r.Name
				if inflight[key] || n.Done(r.Name) || !wants(r, &n) || now.Before(n.RaisedAt.Add(r.After)) {
					continue
				}
				inflight[key] = true
				n, r := n, r
				s.goLeader(func() {
					err := s.deliver(ctx, r, &n)
					select {
					case done <- delivery{key: key, err: err}:
					case <-ctx.Done():
					}
				})
			}
		}
		select {
		case <-ctx.Done():
			return
		case d := <-done:
			delete(inflight, d.key)
		case <-tick.C:
		case <-s.fsm.watch():
		}
	}
}

// deliver sends n to r and records the outcome.
func (s *Server) deliver(ctx context.Context, r config.NotifyConfig, n *structs.Notification) error {
	sctx, cancel := context.WithTimeout(ctx, notifyGiveUp)
	defer cancel()
	err := s.notifySender.Send(sctx, receiver(r), s.message(r, n))
	if ctx.Err() != nil {
		return ctx.Err() // this leadership ended: the next leader sends it
	}
	req := &structs.NotificationSentRequest{WriteRequest: structs.WriteRequest{RequestID: uuid.NewString(), Actor: s.config.NodeID},
		ID: n.ID, Receiver: r.Name}
	if err != nil {
		req.Error = err.Error()
		s.logger.Warn("notification not delivered", "notify", r.Name, "id", n.ID, "event", n.Event, "error", err)
	} else {
		s.logger.Info("notification delivered", "notify", r.Name, "id", n.ID, "event", n.Event, "after", r.After)
	}
	// Only the record is retried, never the send: a leader whose write
	// failed (a leadership transfer in progress, say) and sent again
	// would tell the receiver once per attempt. The request id stays the
	// same, so a record that did land is not applied twice.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		_, aerr := s.raftApply(structs.NotificationSentRequestType, req)
		if aerr == nil {
			return err
		}
		s.logger.Warn("failed to record a notification's delivery; retrying the record", "notify", r.Name, "id", n.ID, "error", aerr)
		select {
		case <-ctx.Done():
			// This leadership ended unrecorded: the next leader sends it
			// again, which the delivery id lets the receiver drop.
			return fmt.Errorf("record the delivery of %s to %s: %w", n.ID, r.Name, aerr)
		case <-time.After(wait):
		}
	}
}

// raiseBackupFailures raises a backup_failed notification for each
// failed verification and failed scheduled backup the agents report that
// the notifications kept do not hold yet.
func (s *Server) raiseBackupFailures(notes []structs.Notification) {
	kept := map[string]bool{}
	for _, n := range notes {
		kept[n.ID] = true
	}
	for _, a := range s.fsm.view().Agents {
		r, ok := s.probes.get(a.HostID)
		if !ok || r.lastResp == nil {
			continue
		}
		for _, b := range r.lastResp.GetBackups() {
			var n *structs.Notification
			if lv := b.GetLastVerification(); lv != nil && !lv.GetOk() && lv.GetAt() != nil {
				n = &structs.Notification{ID: fmt.Sprintf("%s/%s/verification/%d", a.HostID, b.GetName(), lv.GetAt().AsTime().Unix()),
					Message: fmt.Sprintf("the verification of backup %s of block %s on %s failed: %s", lv.GetLabel(), b.GetName(), a.HostID, lv.GetReason())}
			} else if at := b.GetBackupFailedAt(); at != nil {
				n = &structs.Notification{ID: fmt.Sprintf("%s/%s/backup/%d", a.HostID, b.GetName(), at.AsTime().Unix()),
					Message: fmt.Sprintf("the scheduled backup of block %s on %s failed: %s", b.GetName(), a.HostID, b.GetBackupFailure())}
			}
			if n == nil || kept[n.ID] {
				continue
			}
			n.Event, n.Site = notify.EventBackupFailed, a.Site
			s.raise(*n)
			kept[n.ID] = true
		}
	}
}

// raise records a notification through Raft; errors are logged, and the
// next look raises it again.
func (s *Server) raise(n structs.Notification) {
	_, err := s.raftApply(structs.RaiseNotificationRequestType, &structs.RaiseNotificationRequest{
		WriteRequest: structs.WriteRequest{RequestID: uuid.NewString(), Actor: s.config.NodeID}, Notification: n})
	if err != nil {
		s.logger.Warn("failed to raise a notification", "id", n.ID, "event", n.Event, "error", err)
	}
}

// runQuorumNotifier, on every server, tells the quorum_lost receivers
// when this server has known no leader for quorumNotifyAfter, each after
// its own `after`: no leader can record the event, so it is this
// server's alone, kept in its memory, and sent again by each server that
// lost its leader.
func (s *Server) runQuorumNotifier(ctx context.Context) {
	var receivers []config.NotifyConfig
	for _, r := range s.config.Notify {
		if slices.Contains(r.Events, notify.EventQuorumLost) {
			receivers = append(receivers, r)
		}
	}
	if len(receivers) == 0 {
		return
	}
	var since time.Time
	sent := map[string]bool{}
	tick := time.NewTicker(notifyTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, leader := s.raft.LeaderWithID(); leader != "" {
			since, sent = time.Time{}, map[string]bool{}
			continue
		}
		now := time.Now()
		if since.IsZero() {
			since = now
		}
		n := &structs.Notification{ID: fmt.Sprintf("quorum_lost/%s/%d", s.config.NodeID, since.Unix()), Event: notify.EventQuorumLost,
			Severity: notify.Severity(notify.EventQuorumLost), Site: s.config.Site, RaisedAt: since.Add(s.quorumNotifyAfter),
			Message: fmt.Sprintf("server %s (site %s) has known no leader since %s: no quorum of servers reaches each other; nothing fails over until one does",
				s.config.NodeID, s.config.Site, since.UTC().Format(time.RFC3339))}
		for _, r := range receivers {
			if sent[r.Name] || now.Before(n.RaisedAt.Add(r.After)) {
				continue
			}
			sent[r.Name] = true
			s.goFunc(func(ctx context.Context) {
				sctx, cancel := context.WithTimeout(ctx, notifyGiveUp)
				defer cancel()
				if err := s.notifySender.Send(sctx, receiver(r), s.message(r, n)); err != nil && !errors.Is(err, context.Canceled) {
					s.logger.Warn("quorum_lost notification not delivered", "notify", r.Name, "error", err)
				}
			})
		}
	}
}

// ListNotifications lists the notifications kept, newest last.
func (e *operatorEndpoint) ListNotifications(ctx context.Context, req *pb.ListNotificationsRequest) (*pb.ListNotificationsResponse, error) {
	local := func(_ context.Context, req *pb.ListNotificationsRequest) (*pb.ListNotificationsResponse, error) {
		resp := &pb.ListNotificationsResponse{Meta: e.srv.meta(req.GetRead().GetStale())}
		for _, n := range e.srv.fsm.notifications() {
			resp.Notifications = append(resp.Notifications, notificationToProto(n))
		}
		return resp, nil
	}
	if req.GetRead().GetStale() {
		return local(ctx, req)
	}
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.ListNotifications), local)
}

func notificationToProto(n structs.Notification) *pb.Notification {
	out := &pb.Notification{Id: n.ID, Event: n.Event, Severity: n.Severity, Site: n.Site, ExecutionId: n.ExecutionID,
		Message: n.Message, RaisedAt: timestamppb.New(n.RaisedAt), AckedBy: n.AckedBy}
	if !n.AckedAt.IsZero() {
		out.AckedAt = timestamppb.New(n.AckedAt)
	}
	if !n.ResolvedAt.IsZero() {
		out.ResolvedAt = timestamppb.New(n.ResolvedAt)
	}
	for _, r := range slices.Sorted(maps.Keys(n.Sent)) {
		out.Deliveries = append(out.Deliveries, &pb.NotificationDelivery{Receiver: r, SentAt: timestamppb.New(n.Sent[r])})
	}
	for _, r := range slices.Sorted(maps.Keys(n.Failed)) {
		out.Deliveries = append(out.Deliveries, &pb.NotificationDelivery{Receiver: r, Error: n.Failed[r]})
	}
	return out
}

// AckNotifications acknowledges open notifications.
func (e *operatorEndpoint) AckNotifications(ctx context.Context, req *pb.AckNotificationsRequest) (*pb.AckNotificationsResponse, error) {
	if ev := req.GetEvent(); ev != "" && !slices.Contains(notify.Events, ev) && ev != notify.EventTest {
		return nil, toStatus(fmt.Errorf("%w: event %s is not one of %s", errInvalidArgument, wirecheck.Quote(ev), strings.Join(notify.Events, ", ")))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.AckNotifications), func(ctx context.Context, req *pb.AckNotificationsRequest) (*pb.AckNotificationsResponse, error) {
		if id := req.GetId(); id != "" && !slices.ContainsFunc(e.srv.fsm.notifications(), func(n structs.Notification) bool { return n.ID == id }) {
			return nil, toStatus(fmt.Errorf("%w: no notification %s (drplane notify list)", errNotFound, wirecheck.Quote(id)))
		}
		res, err := e.srv.raftApply(structs.AckNotificationsRequestType, &structs.AckNotificationsRequest{
			WriteRequest: writeRequest(ctx, req.GetWrite(), e.srv.config.NodeID), ID: req.GetId(), Event: req.GetEvent()})
		if err != nil {
			return nil, err
		}
		return &pb.AckNotificationsResponse{Meta: e.srv.metaAt(res.Index)}, nil
	})
}

// TestNotification raises a test notification for one notify block.
func (e *operatorEndpoint) TestNotification(ctx context.Context, req *pb.TestNotificationRequest) (*pb.TestNotificationResponse, error) {
	var names []string
	for _, r := range e.srv.config.Notify {
		names = append(names, r.Name)
	}
	if !slices.Contains(names, req.GetReceiver()) {
		return nil, toStatus(fmt.Errorf("%w: no notify block %s in the servers' configuration; declared: %s", errInvalidArgument,
			wirecheck.Quote(req.GetReceiver()), strings.Join(names, ", ")))
	}
	req.Write = ensureRequestID(req.GetWrite())
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.TestNotification), func(ctx context.Context, req *pb.TestNotificationRequest) (*pb.TestNotificationResponse, error) {
		w := writeRequest(ctx, req.GetWrite(), e.srv.config.NodeID)
		id := "test/" + w.RequestID
		res, err := e.srv.raftApply(structs.RaiseNotificationRequestType, &structs.RaiseNotificationRequest{WriteRequest: w,
			Notification: structs.Notification{ID: id, Event: notify.EventTest, Only: req.GetReceiver(), Site: e.srv.fsm.view().ActiveSite,
				Message: fmt.Sprintf("a test notification for notify block %s, asked by %s", req.GetReceiver(), w.Actor)}})
		if err != nil {
			return nil, err
		}
		return &pb.TestNotificationResponse{Meta: e.srv.metaAt(res.Index), Id: id}, nil
	})
}
