package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// ReadinessJSON is the stable shape of `drplane ready --json`, and of
// each site's verdict in `drplane status --json`.
type ReadinessJSON struct {
	Site   string               `json:"site"`
	Ready  bool                 `json:"ready"`
	Checks []ReadinessCheckJSON `json:"checks"`
}

// ReadinessCheckJSON is one condition: name, whether it holds, and what
// was found.
type ReadinessCheckJSON struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func toReadinessJSON(r *pb.Readiness) ReadinessJSON {
	out := ReadinessJSON{Site: r.GetSite(), Ready: r.GetReady(), Checks: []ReadinessCheckJSON{}}
	for _, c := range r.GetChecks() {
		out.Checks = append(out.Checks, ReadinessCheckJSON{Name: c.GetName(), OK: c.GetOk(), Detail: c.GetDetail()})
	}
	return out
}

func newCmdReady(f *Factory) *cobra.Command {
	var to string
	var asJSON bool
	var drillWithin time.Duration
	cmd := &cobra.Command{
		Use:   "ready --to SITE",
		Short: "Exit 0 only if a failover to SITE would succeed now within the objectives; otherwise list every reason",
		Long: "Checks, on the leader: SITE's agents answer and its data services are healthy standbys; the failover plan derives;\n" +
			"what a failover would lose now is bounded and within max_data_loss and the plan's RPO objective; SITE's sync blocks\n" +
			"synced; the backups are fresh and verified; the failover plan was drilled at SITE within --drill-within.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return fmt.Errorf("--to is required: the data site a failover would go to")
			}
			var resp *pb.CheckReadinessResponse
			if err := callOperator(cmd.Context(), f, func(ctx context.Context, c pb.OperatorClient) (err error) {
				resp, err = c.CheckReadiness(ctx, &pb.CheckReadinessRequest{To: to, DrillWithinSeconds: drillWithin.Seconds()})
				return err
			}); err != nil {
				return err
			}
			r := toReadinessJSON(resp.GetReadiness())
			var err error
			if asJSON {
				err = printJSON(f.IO.Out, r)
			} else {
				err = printReadiness(f.IO.Out, r)
			}
			if err == nil && !r.Ready {
				// It printed why; the exit status says it.
				return &ExitError{Code: 1}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the data site a failover would go to")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&drillWithin, "drill-within", 92*24*time.Hour, "how recent the last successful failover drill must be")
	return cmd
}

// printReadiness prints the verdict and each check.
func printReadiness(w io.Writer, r ReadinessJSON) error {
	verdict := "READY"
	if !r.Ready {
		verdict = "NOT READY"
	}
	fmt.Fprintf(w, "Failover to %s: %s\n", r.Site, verdict)
	t := newTable(w, "CHECK", "OK", "DETAIL")
	for _, c := range r.Checks {
		t.row(c.Name, yesNo(c.OK), c.Detail)
	}
	return t.flush()
}
