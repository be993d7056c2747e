package kpi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// t0 is a Monday midnight UTC; tests count minutes from it.
var t0 = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

// at is the start of minute i after t0.
func at(i int64) time.Time { return t0.Add(time.Duration(i) * time.Minute) }

func run(i, n int64, s MinuteState) Run { return Run{Start: at(i), Minutes: n, State: s} }

// obs is one observation: minute i after t0, plus some seconds into it.
type obs struct {
	minute  int64
	seconds int
	state   MinuteState
}

func record(observations ...obs) Minutes {
	var m Minutes
	for _, o := range observations {
		m.Record(at(o.minute).Add(time.Duration(o.seconds)*time.Second), o.state)
	}
	return m
}

const (
	unobs = MinuteUnobserved
	up    = MinuteUp
	down  = MinuteDown
)

func TestMinutesRecord(t *testing.T) {
	cases := []struct {
		name string
		obs  []obs
		want []Run
	}{
		{
			// The first observation starts the record at its minute.
			name: "first",
			obs:  []obs{{5, 30, up}},
			want: []Run{run(5, 1, up)},
		},
		{
			// Consecutive minutes in one state are one run.
			name: "extend same state",
			obs:  []obs{{0, 0, up}, {1, 10, up}, {2, 59, up}},
			want: []Run{run(0, 3, up)},
		},
		{
			// A new state starts a new run.
			name: "extend other state",
			obs:  []obs{{0, 0, up}, {1, 0, down}, {2, 0, down}},
			want: []Run{run(0, 1, up), run(1, 2, down)},
		},
		{
			// Minutes nobody recorded between two observations are unobserved.
			name: "gap becomes unobserved",
			obs:  []obs{{0, 0, up}, {5, 0, up}},
			want: []Run{run(0, 1, up), run(1, 4, unobs), run(5, 1, up)},
		},
		{
			// Any probe seeing the service down makes the minute down.
			name: "down wins over up",
			obs:  []obs{{0, 0, up}, {1, 5, up}, {1, 40, down}},
			want: []Run{run(0, 1, up), run(1, 1, down)},
		},
		{
			// A later up observation of the same minute does not clear it.
			name: "up does not clear down",
			obs:  []obs{{0, 0, up}, {1, 5, down}, {1, 40, up}},
			want: []Run{run(0, 1, up), run(1, 1, down)},
		},
		{
			// Recording "nobody saw it" never erases what somebody saw.
			name: "unobserved does not clear up",
			obs:  []obs{{0, 0, up}, {0, 30, unobs}},
			want: []Run{run(0, 1, up)},
		},
		{
			// A down minute inside a long up run splits it in three.
			name: "down in the middle splits",
			obs:  append(upFor(0, 10), obs{4, 20, down}),
			want: []Run{run(0, 4, up), run(4, 1, down), run(5, 5, up)},
		},
		{
			// A down minute next to a down run joins it.
			name: "down next to down merges",
			obs:  append(upFor(0, 10), obs{5, 0, down}, obs{4, 0, down}),
			want: []Run{run(0, 4, up), run(4, 2, down), run(6, 4, up)},
		},
		{
			// The other leader's observation filling a gap merges both sides.
			name: "up fills a gap and merges",
			obs:  []obs{{0, 0, up}, {2, 0, up}, {1, 0, up}},
			want: []Run{run(0, 3, up)},
		},
		{
			// Filling one minute of a longer gap keeps the rest unobserved.
			name: "up in a gap splits it",
			obs:  []obs{{0, 0, up}, {4, 0, up}, {2, 0, down}},
			want: []Run{run(0, 1, up), run(1, 1, unobs), run(2, 1, down), run(3, 1, unobs), run(4, 1, up)},
		},
		{
			// A minute before the first is set in place, the gap unobserved.
			name: "before the first",
			obs:  []obs{{5, 0, up}, {2, 0, down}},
			want: []Run{run(2, 1, down), run(3, 2, unobs), run(5, 1, up)},
		},
		{
			// A minute just before the first in the same state merges.
			name: "just before the first merges",
			obs:  []obs{{5, 0, up}, {4, 0, up}},
			want: []Run{run(4, 2, up)},
		},
		{
			// A state this version does not know is not up.
			name: "unknown state is down",
			obs:  []obs{{0, 0, MinuteState(7)}},
			want: []Run{run(0, 1, down)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := record(tc.obs...)
			require.Equal(t, tc.want, m.Runs)
		})
	}
}

func upFor(from, n int64) []obs {
	var o []obs
	for i := from; i < from+n; i++ {
		o = append(o, obs{i, 0, up})
	}
	return o
}

// Instants in other zones are recorded at their UTC minute.
func TestMinutesRecordUTC(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tz database:", err)
	}
	var m Minutes
	m.Record(time.Date(2025, 3, 2, 19, 0, 42, 5, ny), up) // 2025-03-03 00:00:42 UTC
	require.Equal(t, []Run{run(0, 1, up)}, m.Runs)
	require.Equal(t, time.UTC, m.Runs[0].Start.Location())
}

// An always-up service over a year stays one run, and recording it is fast
// (the leader appends at the end: no copying).
func TestMinutesRecordYear(t *testing.T) {
	const year = 365 * 24 * 60
	var m Minutes
	for i := int64(0); i < year; i++ {
		m.Record(at(i).Add(17*time.Second), up)
	}
	require.Equal(t, []Run{run(0, year, up)}, m.Runs)

	b, err := json.Marshal(m)
	require.NoError(t, err)
	require.Less(t, len(b), 100, "a year of up minutes must stay small in the Raft state: %s", b)
}

// The record survives the JSON-encoded Raft state unchanged, and an empty
// one costs nothing.
func TestMinutesJSON(t *testing.T) {
	m := record(obs{0, 0, up}, obs{1, 0, down}, obs{4, 0, up})
	b, err := json.Marshal(m)
	require.NoError(t, err)
	var got Minutes
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, m, got)

	b, err = json.Marshal(Minutes{})
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(b))
}

func TestMinutesTrim(t *testing.T) {
	base := func() Minutes { return record(append(upFor(0, 10), obs{12, 0, down})...) }
	// base: up [0,10), unobserved [10,12), down [12,13)
	cases := []struct {
		name   string
		before time.Time
		want   []Run
	}{
		{
			// Before the first minute there is nothing to drop.
			name:   "before the record",
			before: at(-100),
			want:   []Run{run(0, 10, up), run(10, 2, unobs), run(12, 1, down)},
		},
		{
			// A run straddling the horizon keeps its part after it.
			name:   "splits a run",
			before: at(4).Add(30 * time.Second),
			want:   []Run{run(4, 6, up), run(10, 2, unobs), run(12, 1, down)},
		},
		{
			// At a run boundary whole runs go.
			name:   "at a boundary",
			before: at(10),
			want:   []Run{run(10, 2, unobs), run(12, 1, down)},
		},
		{
			// After the end nothing is left.
			name:   "after the record",
			before: at(13),
			want:   nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			m.Trim(tc.before)
			require.Equal(t, tc.want, m.Runs)
		})
	}
}

func TestMinutesSpan(t *testing.T) {
	// Empty: zero times.
	from, to := Minutes{}.Span()
	require.True(t, from.IsZero())
	require.True(t, to.IsZero())

	// From the first recorded minute to the end of the last one.
	from, to = record(obs{3, 10, up}, obs{7, 50, down}).Span()
	require.Equal(t, at(3), from)
	require.Equal(t, at(8), to)
}

// nyseHours is 14:30-21:00 UTC on weekdays.
func nyseHours(t time.Time) bool {
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	return m >= 14*60+30 && m < 21*60
}

// day records a full day of minutes from minute first: up except the down
// ones and the unobserved ones (left unrecorded, so they become gaps).
func day(first int64, downs, unobserved []int64) Minutes {
	var m Minutes
	skip := map[int64]bool{}
	for _, i := range unobserved {
		skip[first+i] = true
	}
	for i := first; i < first+1440; i++ {
		if !skip[i] {
			m.Record(at(i), up)
		}
	}
	for _, i := range downs {
		m.Record(at(first+i), down)
	}
	return m
}

func TestMinutesAvailability(t *testing.T) {
	const trading = 15 * 60 // minute of Monday 15:00 UTC: inside NYSE hours
	// Monday: down at 03:00, 15:00 and 23:00, unobserved at 15:10 and 20:59.
	monday := day(0, []int64{3 * 60, trading, 23 * 60}, []int64{trading + 10, 20*60 + 59})
	// Saturday: down at 15:00.
	saturday := day(5*1440, []int64{trading}, nil)

	cases := []struct {
		name     string
		minutes  Minutes
		from, to time.Time
		include  func(time.Time) bool
		want     Availability
	}{
		{
			// Unobserved minutes count as down: 1440 - 3 down - 2 unobserved.
			name:    "whole day",
			minutes: monday,
			from:    at(0), to: at(1440),
			want: Availability{Minutes: 1440, Up: 1435, Down: 3, Unobserved: 2, Ratio: 1435.0 / 1440, Known: true},
		},
		{
			// Minutes before the first record and after the last are not
			// counted: drplane was not installed, or the window runs ahead.
			name:    "window wider than the record",
			minutes: monday,
			from:    at(-1440), to: at(2 * 1440),
			want: Availability{Minutes: 1440, Up: 1435, Down: 3, Unobserved: 2, Ratio: 1435.0 / 1440, Known: true},
		},
		{
			// A window starting before the record counts from its first minute.
			name:    "window partly before the record",
			minutes: monday,
			from:    at(-100), to: at(100),
			want: Availability{Minutes: 100, Up: 100, Ratio: 1, Known: true},
		},
		{
			// Bounds are truncated to their minutes: [02:00:30, 04:00:30)
			// is 120 minutes from 02:00.
			name:    "part of the day",
			minutes: monday,
			from:    at(120).Add(30 * time.Second), to: at(240).Add(30 * time.Second),
			want: Availability{Minutes: 120, Up: 119, Down: 1, Ratio: 119.0 / 120, Known: true},
		},
		{
			// Inside trading hours only the 15:00 down and the 15:10 and
			// 20:59 unobserved minutes count, out of 390.
			name:    "trading hours",
			minutes: monday,
			from:    at(0), to: at(1440),
			include: nyseHours,
			want:    Availability{Minutes: 390, Up: 387, Down: 1, Unobserved: 2, Ratio: 387.0 / 390, Known: true},
		},
		{
			// A weekend down minute is outside trading hours: nothing to count.
			name:    "weekend outside trading hours",
			minutes: saturday,
			from:    at(0), to: at(7 * 1440),
			include: nyseHours,
			want:    Availability{},
		},
		{
			// A window before the record has nothing to compute from.
			name:    "before the record",
			minutes: monday,
			from:    at(-100), to: at(0),
			want: Availability{},
		},
		{
			// An empty record has nothing to compute from.
			name: "empty record",
			from: at(0), to: at(1440),
			want: Availability{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.minutes.Availability(tc.from, tc.to, tc.include))
		})
	}
}
