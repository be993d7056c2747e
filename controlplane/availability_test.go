package controlplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/clock"
	"github.com/drplane/drplane/internal/config"
	"github.com/drplane/drplane/internal/kpi"
	"github.com/drplane/drplane/internal/testutil"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// TestMinuteSamples pins when a minute counts as up, down or unobserved.
func TestMinuteSamples(t *testing.T) {
	m0 := time.Date(2027, 3, 12, 14, 0, 0, 0, time.UTC)
	every := 500 * time.Millisecond
	samples := func(from, to time.Duration, state kpi.MinuteState) []sample {
		var out []sample
		for d := from; d < to; d += every {
			out = append(out, sample{m0.Add(d), state, true})
		}
		return out
	}
	cases := []struct {
		name    string
		samples []sample
		want    kpi.MinuteState
		ok      bool
	}{
		{"watched throughout, all up", samples(0, time.Minute, kpi.MinuteUp), kpi.MinuteUp, true},
		// One look that found a service down makes the minute down.
		{"one sample down", append(samples(0, 30*time.Second, kpi.MinuteUp), append(samples(30*time.Second, 30*time.Second+every, kpi.MinuteDown),
			samples(30*time.Second+every, time.Minute, kpi.MinuteUp)...)...), kpi.MinuteDown, true},
		// A leader elected at :40 did not see :00 to :40: not up.
		{"watched from :40 only, up", samples(40*time.Second, time.Minute, kpi.MinuteUp), kpi.MinuteUnobserved, false},
		{"watched until :20 only, up", samples(0, 20*time.Second, kpi.MinuteUp), kpi.MinuteUnobserved, false},
		// Down is down, however little was watched.
		{"watched from :40 only, down", samples(40*time.Second, time.Minute, kpi.MinuteDown), kpi.MinuteDown, true},
		// Samples that could not tell (no leader, a host not probed
		// yet) cover nothing.
		{"nothing known", []sample{{m0, kpi.MinuteUnobserved, false}, {m0.Add(59 * time.Second), kpi.MinuteUnobserved, false}}, kpi.MinuteUnobserved, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := minuteSamples{minute: m0}
			for _, s := range tc.samples {
				m.add(s.at, s.state, s.known)
			}
			obs, ok := m.result(every)
			require.Equal(t, tc.ok, ok)
			if ok {
				require.Equal(t, tc.want, obs.State)
				require.True(t, obs.Minute.Equal(m0))
			}
		})
	}
}

type sample struct {
	at    time.Time
	state kpi.MinuteState
	known bool
}

// TestAvailability_PerMinute_SurvivesLeaderChange runs the programme's
// clock forward in step with the leader's samples: minutes of a whole
// production are recorded up, a crashed engine makes a minute down, the
// record is the replicated state's, so the next leader keeps it and
// extends it, and the KPIs are computed from it.
func TestAvailability_PerMinute_SurvivesLeaderChange(t *testing.T) {
	start := time.Date(2027, 3, 12, 14, 0, 0, 0, time.UTC)
	cal := clock.NewFake(start)
	c := newTestClusterSites(t, nil, testRaftConfig, testSites(3), func(cfg *config.ServerConfig) {
		cfg.Programme.Availability, cfg.Programme.Window = 0.995, 365*24*time.Hour
	}, withCalendar(cal))
	ts := newTwoSitesIn(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		every := c.servers[0].cfg.Failover.ProbeInterval
		for ctx.Err() == nil {
			// The leader's sampling timer is armed: move to its sample.
			wait, stop := context.WithTimeout(ctx, 100*time.Millisecond)
			err := cal.BlockUntil(wait, 1)
			stop()
			if err == nil {
				cal.Advance(every)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	record := func() kpi.Minutes { return ts.c.waitForLeader().fsm.availability() }
	waitMinutes := func(what string, cond func(kpi.Minutes) bool) kpi.Minutes {
		t.Helper()
		var m kpi.Minutes
		testutil.WaitForResult(t, 120*time.Second, func() (bool, error) {
			m = record()
			return cond(m), fmt.Errorf("not yet %s: %+v", what, m.Runs)
		})
		return m
	}
	count := func(m kpi.Minutes, state kpi.MinuteState) (n int64) {
		for _, r := range m.Runs {
			if r.State == state {
				n += r.Minutes
			}
		}
		return n
	}

	waitMinutes("3 minutes up", func(m kpi.Minutes) bool { return count(m, kpi.MinuteUp) >= 3 })
	require.Zero(t, count(record(), kpi.MinuteDown), "production ran whole")

	// The engine dies: the minutes from then on are down, until it runs
	// again.
	engine := ts.app1["engine"]
	engine.Crash()
	waitMinutes("a minute down", func(m kpi.Minutes) bool { return count(m, kpi.MinuteDown) >= 1 })
	engine.StartAs = driver.RolePrimary
	require.NoError(t, engine.Start(context.Background(), func(string, ...any) {}))
	before := waitMinutes("up again", func(m kpi.Minutes) bool { return len(m.Runs) > 0 && m.Runs[len(m.Runs)-1].State == kpi.MinuteUp })

	// A new leader keeps the record and goes on from it.
	old := ts.c.waitForLeader()
	ts.c.leadFrom(t, otherSite(old.cfg.Site))
	_, beforeEnd := before.Span()
	after := waitMinutes("2 more minutes up under the new leader", func(m kpi.Minutes) bool {
		_, end := m.Span()
		return count(m, kpi.MinuteUp) >= count(before, kpi.MinuteUp)+2 && end.After(beforeEnd.Add(time.Minute))
	})
	from, _ := after.Span()
	require.True(t, from.Equal(start), "the record still starts at the first minute: %s", from)
	require.GreaterOrEqual(t, count(after, kpi.MinuteDown), int64(1), "the down minute survived the leader change")

	// The KPI is that record's arithmetic.
	resp, err := ts.c.client(ts.c.waitForLeader()).GetKPIs(testCtx(t), &pb.GetKPIsRequest{})
	require.NoError(t, err)
	var avail *pb.KPI
	for _, k := range resp.GetKpis() {
		if k.GetName() == kpi.NameAvailability {
			avail = k
		}
	}
	require.NotNil(t, avail)
	require.True(t, avail.GetKnown(), avail.GetDetail())
	require.Less(t, avail.GetValue(), 1.0, "a down minute shows: %s", avail.GetDetail())
	require.True(t, avail.GetHasTarget())
	require.InDelta(t, 0.995, avail.GetTarget(), 1e-12)
	require.True(t, resp.GetRecordedSince().AsTime().Equal(start))
}
