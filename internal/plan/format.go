package plan

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Format writes p as the table `drplane plan show` prints: a heading with
// the plan, its sites and objectives, one row per step in order (phase,
// step id, action, host/site, target, depends_on, timeout, on_failure and
// notes: health gate, always, retries, arguments), then the warnings.
// JSON output comes from the struct tags instead.
func (p *Plan) Format(w io.Writer) error {
	var sb strings.Builder
	if p.From == p.To {
		fmt.Fprintf(&sb, "plan %s (%s): at %s\n", p.Name, p.Kind, p.From)
	} else {
		fmt.Fprintf(&sb, "plan %s (%s): %s -> %s\n", p.Name, p.Kind, p.From, p.To)
	}
	fmt.Fprintf(&sb, "objectives: rto %s, rpo %s; max data loss %s\n\n", orNone(fmtDuration(p.Objectives.RTO), p.Objectives.RTO == 0),
		orNone(fmtDuration(p.Objectives.RPO), !p.Objectives.HasRPO()), fmtDuration(p.MaxDataLoss))
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tSTEP\tACTION\tHOST/SITE\tTARGET\tDEPENDS ON\tTIMEOUT\tON FAILURE\tNOTES")
	for _, s := range p.Steps {
		where := "leader"
		if s.Host != "" {
			where = s.Host + "/" + s.Site
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Phase, s.ID, s.Action, where, dash(s.Target),
			dash(strings.Join(s.DependsOn, ",")), fmtDuration(s.Timeout), s.OnFailure, dash(notes(s)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(p.Warnings) > 0 {
		sb.WriteString("\nwarnings:\n")
		for _, w := range p.Warnings {
			fmt.Fprintf(&sb, "  - %s\n", w)
		}
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// notes are a step's flags and arguments, for the table.
func notes(s Step) string {
	var out []string
	if s.HealthGate {
		out = append(out, "health gate")
	}
	if s.Always {
		out = append(out, "always")
	}
	if s.Rollback {
		out = append(out, "only to roll back")
	}
	if s.Retries > 0 {
		out = append(out, fmt.Sprintf("retries %d", s.Retries))
	}
	for _, k := range sortedKeys(s.Args) {
		out = append(out, k+"="+s.Args[k])
	}
	for _, k := range sortedKeys(s.ArgsFrom) {
		out = append(out, k+"<-"+s.ArgsFrom[k])
	}
	return strings.Join(out, "; ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(s string, none bool) string {
	if none {
		return "none"
	}
	return s
}
