package cli

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/drplane/drplane/proto/drplane/v1"
)

func sampleKPIs() *pb.GetKPIsResponse {
	yes, no := true, false
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	return &pb.GetKPIsResponse{From: timestamppb.New(at.AddDate(-1, 0, 0)), To: timestamppb.New(at), RecordedSince: timestamppb.New(at.Add(-time.Hour)),
		Kpis: []*pb.KPI{
			{Name: "drill_success_rate", Value: 0.95, Known: true, Detail: "19 of 20 drills passed", Target: 0.95, HasTarget: true, Pass: &yes},
			{Name: "availability", Value: 58.0 / 60, Known: true, Detail: "60 minutes, 2 down, 0 unobserved (counted as down)", Target: 0.995, HasTarget: true, Pass: &no},
			{Name: "availability_trading_hours", Detail: "no trading_hours blocks in the config", Target: 0.999, HasTarget: true},
			{Name: "mttr", Detail: "recovery time unknown for incident restore-1 (it failed: service was not restored by it)", Target: 900, HasTarget: true},
		}}
}

// TestReport_KPIs: the KPIs come first in the report, as text, Markdown
// and JSON; a ratio reads as a percentage, an unknown value as unknown
// (null in JSON), with why.
func TestReport_KPIs(t *testing.T) {
	fake := &fakeExecutions{}
	fake.kpis = sampleKPIs()
	run := func(args ...string) string {
		f, out := testFactory(&fake.fakeOperator)
		f.Operator = func() (pb.OperatorClient, func(), error) { return fake, func() {}, nil }
		root := NewRootCmd(f)
		root.SetArgs(args)
		require.NoError(t, root.Execute())
		return out.String()
	}
	text := run("report", "--kpis")
	require.Regexp(t, `drill_success_rate\s+95 %\s+95 %\s+yes\s+19 of 20 drills passed`, text)
	require.Regexp(t, `availability\s+96.667 %\s+99.5 %\s+no\s+60 minutes, 2 down`, text)
	require.Regexp(t, `mttr\s+unknown\s+15m0s\s+-\s+recovery time unknown for incident restore-1`, text)

	var js KPIsJSON
	require.NoError(t, json.Unmarshal([]byte(run("report", "--kpis", "--json")), &js))
	require.Len(t, js.KPIs, 4)
	require.Nil(t, js.KPIs[3].Value, "unknown is null, not 0")
	require.Equal(t, 900.0, *js.KPIs[3].Target)
	require.Nil(t, js.KPIs[3].Pass)
	require.False(t, *js.KPIs[1].Pass)

	md := run("report", "--markdown")
	require.Contains(t, md, "## KPIs")
	require.Contains(t, md, "| availability | 96.667 % | 99.5 % | no | 60 minutes, 2 down, 0 unobserved (counted as down) |")
}

// TestScheduleList: each schedule's timing, last and next run, and a
// deferral out of trading hours.
func TestScheduleList(t *testing.T) {
	slot := time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)
	fake := &fakeOperator{schedules: &pb.ListSchedulesResponse{TradingHours: []string{"us-equities"}, Schedules: []*pb.Schedule{
		{Name: "restore-drill", Plan: "data-corruption", Drill: true, Cron: "0 6 * * sat", Timezone: "America/New_York",
			NextSlot: timestamppb.New(slot.Add(20 * time.Hour)), NextRun: timestamppb.New(slot.Add(20 * time.Hour))},
		{Name: "site-drill", Plan: "failover", Drill: true, Every: durationpb.New(90 * 24 * time.Hour), Due: timestamppb.New(slot),
			NextRun: timestamppb.New(slot.Add(6 * time.Hour)), Deferred: &pb.ScheduleDeferral{Slot: timestamppb.New(slot), To: timestamppb.New(slot.Add(6 * time.Hour)), Market: "us-equities"}},
	}}}
	f, out := testFactory(fake)
	root := NewRootCmd(f)
	root.SetArgs([]string{"schedule", "list"})
	require.NoError(t, root.Execute())
	require.Regexp(t, `restore-drill\s+data-corruption \(drill\)\s+cron "0 6 \* \* sat" America/New_York\s+never`, out.String())
	require.Regexp(t, `site-drill\s+failover \(drill\)\s+every 90d\s+never\s+.*deferred out of trading hours \(us-equities\)`, out.String())
	require.Contains(t, out.String(), "Drills run outside trading hours: us-equities.")

	out.Reset()
	root = NewRootCmd(f)
	root.SetArgs([]string{"schedule", "list", "--json"})
	require.NoError(t, root.Execute())
	var js []ScheduleJSON
	require.NoError(t, json.Unmarshal(out.Bytes(), &js))
	require.Equal(t, "90d", js[1].Every)
	require.True(t, js[1].Deferred.To.Equal(slot.Add(6*time.Hour)))
}
