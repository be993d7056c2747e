package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/drplane/drplane/internal/notify"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// NotificationJSON is the stable shape of `drplane notify list --json`.
type NotificationJSON struct {
	ID          string                     `json:"id"`
	Event       string                     `json:"event"`
	Severity    string                     `json:"severity"`
	Site        string                     `json:"site,omitempty"`
	ExecutionID string                     `json:"execution_id,omitempty"`
	Message     string                     `json:"message"`
	RaisedAt    time.Time                  `json:"raised_at"`
	AckedAt     *time.Time                 `json:"acked_at,omitempty"`
	AckedBy     string                     `json:"acked_by,omitempty"`
	ResolvedAt  *time.Time                 `json:"resolved_at,omitempty"`
	Deliveries  []NotificationDeliveryJSON `json:"deliveries"`
}

// NotificationDeliveryJSON is one notify block told (or given up on).
type NotificationDeliveryJSON struct {
	Receiver string     `json:"receiver"`
	SentAt   *time.Time `json:"sent_at,omitempty"`
	Error    string     `json:"error,omitempty"`
}

func notificationJSONOf(n *pb.Notification) NotificationJSON {
	ts := func(t interface{ AsTime() time.Time }, ok bool) *time.Time {
		if !ok {
			return nil
		}
		v := t.AsTime()
		return &v
	}
	out := NotificationJSON{ID: n.GetId(), Event: n.GetEvent(), Severity: n.GetSeverity(), Site: n.GetSite(), ExecutionID: n.GetExecutionId(),
		Message: n.GetMessage(), RaisedAt: n.GetRaisedAt().AsTime(), AckedAt: ts(n.GetAckedAt(), n.GetAckedAt() != nil), AckedBy: n.GetAckedBy(),
		ResolvedAt: ts(n.GetResolvedAt(), n.GetResolvedAt() != nil), Deliveries: []NotificationDeliveryJSON{}}
	for _, d := range n.GetDeliveries() {
		out.Deliveries = append(out.Deliveries, NotificationDeliveryJSON{Receiver: d.GetReceiver(), SentAt: ts(d.GetSentAt(), d.GetSentAt() != nil), Error: d.GetError()})
	}
	return out
}

func newCmdNotify(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "notify", Short: "List notifications and their escalation, or send a test through a notify block"}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the notifications kept: event, who was told when, acknowledgements",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp *pb.ListNotificationsResponse
			if err := callOperator(cmd.Context(), f, func(ctx context.Context, c pb.OperatorClient) (err error) {
				resp, err = c.ListNotifications(ctx, &pb.ListNotificationsRequest{})
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				out := []NotificationJSON{}
				for _, n := range resp.GetNotifications() {
					out = append(out, notificationJSONOf(n))
				}
				return printJSON(f.IO.Out, out)
			}
			t := newTable(f.IO.Out, "ID", "EVENT", "RAISED", "STATE", "TOLD", "MESSAGE")
			for _, n := range resp.GetNotifications() {
				state := "open"
				switch {
				case n.GetAckedAt() != nil:
					state = "acknowledged by " + n.GetAckedBy()
				case n.GetResolvedAt() != nil:
					state = "resolved"
				}
				var told []string
				for _, d := range n.GetDeliveries() {
					if d.GetError() != "" {
						told = append(told, d.GetReceiver()+" (failed)")
					} else {
						told = append(told, d.GetReceiver())
					}
				}
				t.row(n.GetId(), n.GetEvent(), n.GetRaisedAt().AsTime().Local().Format(time.DateTime), state, orDash(strings.Join(told, ", ")), n.GetMessage())
			}
			return t.flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	test := &cobra.Command{
		Use:   "test NAME",
		Short: "Send a test notification through notify block NAME of the servers' configuration",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp *pb.TestNotificationResponse
			if err := callOperator(cmd.Context(), f, func(ctx context.Context, c pb.OperatorClient) (err error) {
				resp, err = c.TestNotification(ctx, &pb.TestNotificationRequest{Write: &pb.WriteOptions{RequestId: uuid.NewString()}, Receiver: args[0]})
				return err
			}); err != nil {
				return err
			}
			fmt.Fprintf(f.IO.Out, "test notification %s raised for %s; the leader sends it now (drplane notify list shows the delivery)\n", resp.GetId(), args[0])
			return nil
		},
	}
	cmd.AddCommand(list, test)
	return cmd
}

// newCmdAck acknowledges: with no argument the last automatic failover
// (lifting its cooldown) and every open notification; with one, the
// notifications of that event or with that id.
func newCmdAck(f *Factory) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "ack [EVENT|ID]",
		Short: "Acknowledge: stop the escalation of notifications, and lift the cooldown of the last automatic failover",
		Long: "With no argument, acknowledge the last automatic failover (lifting its cooldown) and every open notification.\n" +
			"With EVENT (" + strings.Join(notify.Events, ", ") + ") or a notification ID, acknowledge those notifications only.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &pb.AckNotificationsRequest{}
			if len(args) == 1 {
				if slices.Contains(notify.Events, args[0]) || args[0] == notify.EventTest {
					req.Event = args[0]
				} else {
					req.Id = args[0]
				}
			}
			return simpleWrite(cmd.Context(), f, func(ctx context.Context, c pb.OperatorClient, w *pb.WriteOptions) error {
				if len(args) == 0 {
					if _, err := c.SetAutomation(ctx, &pb.SetAutomationRequest{Write: w, Action: "ack", Reason: reason}); err != nil {
						return err
					}
					w = &pb.WriteOptions{RequestId: uuid.NewString()}
				}
				req.Write = w
				_, err := c.AckNotifications(ctx, req)
				return err
			}, ackDone(args))
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail")
	return cmd
}

func ackDone(args []string) string {
	if len(args) == 0 {
		return "automatic failover acknowledged; automatic failover is armed again; open notifications acknowledged: no further escalation"
	}
	return "notifications " + args[0] + " acknowledged: no further escalation"
}
