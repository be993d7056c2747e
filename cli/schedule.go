package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// ScheduleJSON is the stable shape of one schedule in `drplane schedule
// list --json`.
type ScheduleJSON struct {
	Name          string              `json:"name"`
	Plan          string              `json:"plan"`
	Drill         bool                `json:"drill"`
	Cron          string              `json:"cron,omitempty"`
	Timezone      string              `json:"timezone,omitempty"`
	Every         string              `json:"every,omitempty"`
	Due           *time.Time          `json:"due,omitempty"`
	NextSlot      *time.Time          `json:"next_slot,omitempty"`
	NextRun       *time.Time          `json:"next_run,omitempty"`
	LastSlot      *time.Time          `json:"last_slot,omitempty"`
	LastExecution string              `json:"last_execution,omitempty"`
	Deferred      *DeferralJSON       `json:"deferred,omitempty"`
	Waiting       string              `json:"waiting,omitempty"`
	Log           []ScheduleEventJSON `json:"log,omitempty"`
}

// DeferralJSON is a due slot moved out of trading hours.
type DeferralJSON struct {
	Slot   time.Time  `json:"slot"`
	To     *time.Time `json:"to,omitempty"`
	Market string     `json:"market,omitempty"`
	NoSlot bool       `json:"no_slot,omitempty"`
}

// ScheduleEventJSON is one line of a schedule's log.
type ScheduleEventJSON struct {
	At     time.Time `json:"at"`
	Slot   time.Time `json:"slot"`
	Detail string    `json:"detail"`
}

func newCmdSchedule(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "schedule", Short: "Show the scheduled drills: next runs, deferrals out of trading hours, what ran"}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the schedule blocks with their next run and what became of their slots",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp *pb.ListSchedulesResponse
			if err := callOperator(cmd.Context(), f, func(ctx context.Context, c pb.OperatorClient) (err error) {
				resp, err = c.ListSchedules(ctx, &pb.ListSchedulesRequest{})
				return err
			}); err != nil {
				return err
			}
			out := []ScheduleJSON{}
			for _, s := range resp.GetSchedules() {
				out = append(out, scheduleJSONOf(s))
			}
			if asJSON {
				return printJSON(f.IO.Out, out)
			}
			if len(out) == 0 {
				fmt.Fprintln(f.IO.Out, "no schedule blocks in the servers' configuration")
				return nil
			}
			t := newTable(f.IO.Out, "NAME", "PLAN", "TIMING", "LAST", "NEXT RUN", "NOTE")
			for _, s := range out {
				what := s.Plan
				if s.Drill {
					what += " (drill)"
				}
				t.row(s.Name, what, timingText(s), lastText(s), localTime(s.NextRun), scheduleNote(s))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if th := resp.GetTradingHours(); len(th) > 0 {
				fmt.Fprintf(f.IO.Out, "\nDrills run outside trading hours: %s.\n", strings.Join(th, ", "))
			}
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}

func scheduleJSONOf(s *pb.Schedule) ScheduleJSON {
	out := ScheduleJSON{Name: s.GetName(), Plan: s.GetPlan(), Drill: s.GetDrill(), Cron: s.GetCron(), Timezone: s.GetTimezone(),
		Due: optTime(s.GetDue()), NextSlot: optTime(s.GetNextSlot()), NextRun: optTime(s.GetNextRun()), LastSlot: optTime(s.GetLastSlot()),
		LastExecution: s.GetLastExecution(), Waiting: s.GetWaiting()}
	if s.GetEvery() != nil {
		out.Every = days(s.GetEvery().AsDuration())
	}
	if d := s.GetDeferred(); d != nil {
		out.Deferred = &DeferralJSON{Slot: d.GetSlot().AsTime(), To: optTime(d.GetTo()), Market: d.GetMarket(), NoSlot: d.GetNoSlot()}
	}
	for _, e := range s.GetLog() {
		out.Log = append(out.Log, ScheduleEventJSON{At: e.GetAt().AsTime(), Slot: e.GetSlot().AsTime(), Detail: e.GetDetail()})
	}
	return out
}

func optTime(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	return &t
}

// days writes a duration of whole days as "90d", others as Go does.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

func timingText(s ScheduleJSON) string {
	if s.Cron != "" {
		return fmt.Sprintf("cron %q %s", s.Cron, s.Timezone)
	}
	return "every " + s.Every
}

func lastText(s ScheduleJSON) string {
	if s.LastExecution == "" {
		return "never"
	}
	return s.LastExecution + " (" + localTime(s.LastSlot) + ")"
}

func localTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04 MST")
}

func scheduleNote(s ScheduleJSON) string {
	var notes []string
	if s.Due != nil {
		notes = append(notes, "due since "+localTime(s.Due))
	}
	if d := s.Deferred; d != nil {
		if d.NoSlot {
			notes = append(notes, fmt.Sprintf("inside trading hours (%s), no free time found yet", d.Market))
		} else {
			notes = append(notes, fmt.Sprintf("deferred out of trading hours (%s) to %s", d.Market, localTime(d.To)))
		}
	}
	if s.Waiting != "" {
		notes = append(notes, "waiting: "+s.Waiting)
	}
	return orDash(strings.Join(notes, "; "))
}
