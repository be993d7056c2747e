package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/drplane/drplane/internal/calendar"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// KPIsJSON is the stable shape of `drplane report --kpis --json`. Value
// and Target are ratios (0..1), or seconds for mttr; Value is null when
// unknown (Detail says why), Target and Pass null without a target.
type KPIsJSON struct {
	From          *time.Time `json:"from,omitempty"`
	To            time.Time  `json:"to"`
	RecordedSince *time.Time `json:"recorded_since,omitempty"`
	KPIs          []KPIJSON  `json:"kpis"`
}

// KPIJSON is one KPI in KPIsJSON.
type KPIJSON struct {
	Name   string   `json:"name"`
	Value  *float64 `json:"value"`
	Target *float64 `json:"target"`
	Pass   *bool    `json:"pass"`
	Detail string   `json:"detail"`
}

// fetchKPIs asks for the KPIs over window (0: the objectives' window);
// nil from a server too old to compute them.
func fetchKPIs(ctx context.Context, client pb.OperatorClient, window time.Duration) (*pb.GetKPIsResponse, error) {
	req := &pb.GetKPIsRequest{}
	if window > 0 {
		req.Window = durationpb.New(window)
	}
	resp, err := client.GetKPIs(ctx, req)
	if status.Code(err) == codes.Unimplemented {
		return nil, nil
	}
	return resp, err
}

func kpisJSONOf(resp *pb.GetKPIsResponse) KPIsJSON {
	out := KPIsJSON{From: optTime(resp.GetFrom()), To: resp.GetTo().AsTime(), RecordedSince: optTime(resp.GetRecordedSince()), KPIs: []KPIJSON{}}
	for _, k := range resp.GetKpis() {
		kj := KPIJSON{Name: k.GetName(), Detail: k.GetDetail(), Pass: k.Pass}
		if k.GetKnown() {
			v := k.GetValue()
			kj.Value = &v
		}
		if k.GetHasTarget() {
			t := k.GetTarget()
			kj.Target = &t
		}
		out.KPIs = append(out.KPIs, kj)
	}
	return out
}

// kpiRows are the KPI table's rows: name, value, target, pass, detail.
func kpiRows(resp *pb.GetKPIsResponse) [][]string {
	var rows [][]string
	for _, k := range resp.GetKpis() {
		value, target, pass := "unknown", "-", "-"
		if k.GetKnown() {
			value = kpiValue(k.GetName(), k.GetValue())
		}
		if k.GetHasTarget() {
			target = kpiValue(k.GetName(), k.GetTarget())
		}
		if k.Pass != nil {
			pass = yesNo(k.GetPass())
		}
		rows = append(rows, []string{k.GetName(), value, target, pass, k.GetDetail()})
	}
	return rows
}

// kpiValue writes a ratio as a percentage and mttr as a duration.
func kpiValue(name string, v float64) string {
	if name == "mttr" {
		return time.Duration(v * float64(time.Second)).Round(time.Second).String()
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v*100), "0"), ".") + " %"
}

// kpiWindowText says what window the KPIs cover.
func kpiWindowText(resp *pb.GetKPIsResponse) string {
	var parts []string
	if resp.GetFrom() != nil {
		parts = append(parts, "window since "+resp.GetFrom().AsTime().Local().Format(time.DateTime))
	}
	if resp.GetRecordedSince() != nil {
		parts = append(parts, "availability recorded since "+resp.GetRecordedSince().AsTime().Local().Format(time.DateTime))
	} else {
		parts = append(parts, "no availability recorded yet")
	}
	return strings.Join(parts, "; ")
}

// printKPIs prints the KPI table, as a Markdown section with markdown.
func printKPIs(w io.Writer, resp *pb.GetKPIsResponse, markdown bool) error {
	if resp == nil {
		return nil
	}
	if markdown {
		fmt.Fprintf(w, "## KPIs\n\n%s.\n\n", kpiWindowText(resp))
		markdownTable(w, []string{"KPI", "Value", "Target", "Pass", "Detail"}, kpiRows(resp))
		fmt.Fprintln(w)
		return nil
	}
	fmt.Fprintf(w, "KPIs (%s)\n", kpiWindowText(resp))
	t := newTable(w, "KPI", "VALUE", "TARGET", "PASS", "DETAIL")
	for _, r := range kpiRows(resp) {
		t.row(r...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return nil
}

// parseWindow reads --window: a duration with days allowed ("90d").
func parseWindow(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := calendar.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--window %q: expected a positive duration such as 90d or 720h", s)
	}
	return d, nil
}
