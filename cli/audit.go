package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// AuditJSON is the stable shape of one entry of `drplane audit --json`.
type AuditJSON struct {
	Index uint64    `json:"index"`
	Time  time.Time `json:"time"`
	// Actor is who: the certificate's role and name ("cli:ops"), or the
	// server that acted by itself.
	Actor     string `json:"actor"`
	Action    string `json:"action"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id,omitempty"`
}

func newCmdAudit(f *Factory) *cobra.Command {
	var asJSON bool
	var since string
	cmd := &cobra.Command{
		Use:   "audit [--since T]",
		Short: "Print the audit trail: who did what, when, from which certificate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var from time.Time
			if since != "" {
				if d, err := time.ParseDuration(since); err == nil {
					from = time.Now().Add(-d)
				} else if t, err := parseRestoreTime(since); err == nil {
					from = t
				} else {
					return fmt.Errorf(`--since %q is neither a duration ("24h") nor a time with its zone ("2026-12-03 09:00:00+00")`, since)
				}
			}
			var resp *pb.ListAuditResponse
			if err := callOperator(cmd.Context(), f, func(ctx context.Context, c pb.OperatorClient) (err error) {
				resp, err = c.ListAudit(ctx, &pb.ListAuditRequest{})
				return err
			}); err != nil {
				return err
			}
			out := []AuditJSON{}
			for _, e := range resp.GetEntries() {
				if e.GetTime().AsTime().Before(from) {
					continue
				}
				out = append(out, AuditJSON{Index: e.GetIndex(), Time: e.GetTime().AsTime(), Actor: e.GetActor(), Action: e.GetAction(),
					Detail: e.GetDetail(), RequestID: e.GetRequestId()})
			}
			if asJSON {
				return printJSON(f.IO.Out, out)
			}
			t := newTable(f.IO.Out, "TIME", "WHO", "ACTION", "DETAIL")
			for _, e := range out {
				t.row(e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Actor, e.Action, oneLine(e.Detail))
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&since, "since", "", `only entries since this time ("2026-12-03 09:00:00+00") or this long ago ("24h")`)
	return cmd
}
