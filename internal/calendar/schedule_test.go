package calendar

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const day = 24 * time.Hour

func mustSchedule(t *testing.T, cronSpec, every, timezone string) Schedule {
	t.Helper()
	s, err := NewSchedule(cronSpec, every, timezone)
	require.NoError(t, err)
	return s
}

func TestNewSchedule(t *testing.T) {
	s := mustSchedule(t, "0 6 * * sat", "", "America/New_York")
	require.Equal(t, "0 6 * * sat", s.Cron)
	require.Zero(t, s.Every)
	require.Equal(t, "America/New_York", s.Location.String())

	// No timezone means UTC; names are not case-sensitive, as in robfig/cron.
	s = mustSchedule(t, "0 6 1 JAN,JUL *", "", "")
	require.Equal(t, time.UTC, s.Location)

	s = mustSchedule(t, "", "90d", "")
	require.Equal(t, 90*day, s.Every)
	require.Empty(t, s.Cron)
}

func TestNewSchedule_Errors(t *testing.T) {
	const syntax = `expected five fields: minute hour day-of-month month day-of-week, such as "0 6 * * sat"`
	cases := []struct {
		name, cron, every, timezone string
		wantErrMessage              string
	}{
		{
			name: "both", cron: "0 6 * * sat", every: "7d",
			wantErrMessage: `cron and every are both set; a schedule takes exactly one: cron for slots on the calendar, every for an interval`,
		},
		{
			name:           "neither",
			wantErrMessage: `neither cron nor every is set; a schedule takes exactly one, such as cron = "0 6 * * sat" or every = "90d"`,
		},
		{
			// Intervals are the every attribute's job.
			name: "@every", cron: "@every 1h",
			wantErrMessage: `cron: descriptor "@every 1h" is not supported; ` + syntax + `; for an interval use every = "90d"`,
		},
		{
			name: "@daily", cron: "@daily",
			wantErrMessage: `cron: descriptor "@daily" is not supported; ` + syntax + `; for an interval use every = "90d"`,
		},
		{
			// The zone is the timezone attribute's job.
			name: "CRON_TZ", cron: "CRON_TZ=America/New_York 0 6 * * sat",
			wantErrMessage: `cron: a zone prefix such as CRON_TZ= is not supported; set the timezone attribute instead`,
		},
		{
			// robfig/cron would panic on a prefix with no spec after it.
			name: "TZ alone", cron: "TZ=UTC",
			wantErrMessage: `cron: a zone prefix such as CRON_TZ= is not supported; set the timezone attribute instead`,
		},
		{
			name: "four fields", cron: "0 6 * *",
			wantErrMessage: `cron: "0 6 * *" is not a valid spec (expected exactly 5 fields, found 4: [0 6 * *]); ` + syntax,
		},
		{
			// Seconds are not a field of a standard spec.
			name: "six fields", cron: "0 0 6 * * sat",
			wantErrMessage: `cron: "0 0 6 * * sat" is not a valid spec (expected exactly 5 fields, found 6: [0 0 6 * * sat]); ` + syntax,
		},
		{
			name: "hour out of range", cron: "0 24 * * *",
			wantErrMessage: `cron: "0 24 * * *" is not a valid spec (end of range (24) above maximum (23): 24); ` + syntax,
		},
		{
			name: "no such date", cron: "0 6 30 feb *",
			wantErrMessage: `cron: "0 6 30 feb *" never fires; check that its day-of-month exists in its month`,
		},
		{
			name: "bad zone", cron: "0 6 * * sat", timezone: "EST5EDT/Nowhere",
			wantErrMessage: `timezone: unknown time zone "EST5EDT/Nowhere"; expected an IANA time zone name such as "America/New_York", "Europe/London" or "UTC"`,
		},
		{
			// An interval counts elapsed time; a zone would suggest it follows local midnight.
			name: "zone with every", every: "1d", timezone: "America/New_York",
			wantErrMessage: `timezone: only applies to cron; an every schedule counts elapsed time from the last run, so remove timezone`,
		},
		{
			name: "every zero", every: "0s",
			wantErrMessage: `every: "0s" is too short; expected 1m or more`,
		},
		{
			name: "every under a minute", every: "30s",
			wantErrMessage: `every: "30s" is too short; expected 1m or more`,
		},
		{
			name: "every negative", every: "-1h",
			wantErrMessage: `every: "-1h" is too short; expected 1m or more`,
		},
		{
			name: "every in weeks", every: "2w",
			wantErrMessage: `every: "2w" is not a duration; expected a number with a unit, such as "90d", "12h", "30m" or "1d12h"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSchedule(tc.cron, tc.every, tc.timezone)
			require.EqualError(t, err, tc.wantErrMessage)
		})
	}
}

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		// d is 24 hours; Go's own units work as in time.ParseDuration.
		{in: "90d", want: 90 * day},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "12h", want: 12 * time.Hour},
		{in: "30m", want: 30 * time.Minute},
		{in: "1h30m15s", want: time.Hour + 30*time.Minute + 15*time.Second},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "0", want: 0},
		{in: "-2d", want: -2 * day},
		// A number needs a unit, and a unit a number.
		{in: "90", wantErr: `"90" is not a duration; expected a number with a unit, such as "90d", "12h", "30m" or "1d12h"`},
		{in: "d", wantErr: `"d" is not a duration; expected a number with a unit, such as "90d", "12h", "30m" or "1d12h"`},
		{in: "", wantErr: `"" is not a duration; expected a number with a unit, such as "90d", "12h", "30m" or "1d12h"`},
		{in: "90D", wantErr: `"90D" is not a duration; expected a number with a unit, such as "90d", "12h", "30m" or "1d12h"`},
		{in: "1 d", wantErr: `"1 d" is not a duration; expected a number with a unit, such as "90d", "12h", "30m" or "1d12h"`},
		// time.Duration ends at about 292 years.
		{in: "106752d", wantErr: `"106752d" is out of range; the longest duration is about 292 years`},
		{in: "106751d24h", wantErr: `"106751d24h" is out of range; the longest duration is about 292 years`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestSchedule_NextAfter(t *testing.T) {
	saturdays := mustSchedule(t, "0 6 * * sat", "", "America/New_York")
	daily := mustSchedule(t, "0 6 * * *", "", "America/New_York")
	skipped := mustSchedule(t, "30 2 * * *", "", "America/New_York")
	quarterly := mustSchedule(t, "", "90d", "")

	cases := []struct {
		name     string
		schedule Schedule
		t        time.Time
		want     time.Time
	}{
		{name: "from a Friday", schedule: saturdays, t: at(newYork, 2027, 1, 8, 12, 0), want: at(newYork, 2027, 1, 9, 6, 0)},
		// The cron is read in its own zone, whatever zone t is in.
		{name: "from UTC", schedule: saturdays, t: time.Date(2027, 1, 8, 17, 0, 0, 0, time.UTC), want: at(newYork, 2027, 1, 9, 6, 0)},
		// Strictly after: a slot is not its own next.
		{name: "from a slot", schedule: saturdays, t: at(newYork, 2027, 1, 9, 6, 0), want: at(newYork, 2027, 1, 16, 6, 0)},
		// Slots keep their local time across the DST weekend: this
		// week is 167 hours, and Sunday's slot comes 23 hours after
		// Saturday's.
		{name: "DST week", schedule: saturdays, t: at(newYork, 2027, 3, 13, 6, 0), want: time.Date(2027, 3, 20, 10, 0, 0, 0, time.UTC)},
		{name: "DST day", schedule: daily, t: at(newYork, 2027, 3, 13, 6, 0), want: time.Date(2027, 3, 14, 10, 0, 0, 0, time.UTC)},
		// A slot in the hour the clocks skip does not happen that day.
		{name: "skipped hour", schedule: skipped, t: at(newYork, 2027, 3, 13, 12, 0), want: at(newYork, 2027, 3, 15, 2, 30)},
		// An interval counts elapsed time from t.
		{name: "interval", schedule: quarterly, t: at(newYork, 2027, 1, 8, 12, 0), want: at(newYork, 2027, 1, 8, 12, 0).Add(90 * day)},
		// A literal Schedule parses its Cron lazily, in UTC...
		{name: "literal", schedule: Schedule{Cron: "0 6 * * sat"}, t: time.Date(2027, 1, 8, 0, 0, 0, 0, time.UTC), want: time.Date(2027, 1, 9, 6, 0, 0, 0, time.UTC)},
		// ...and one that does not parse, like the zero Schedule, has no slots.
		{name: "literal, bad", schedule: Schedule{Cron: "@weekly"}, t: at(newYork, 2027, 1, 8, 12, 0)},
		{name: "zero", schedule: Schedule{}, t: at(newYork, 2027, 1, 8, 12, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.schedule.NextAfter(tc.t)
			if tc.want.IsZero() {
				require.True(t, got.IsZero(), "got %s", got)
				return
			}
			requireInstant(t, tc.want, got)
		})
	}
}

func TestSchedule_LatestAtOrBefore(t *testing.T) {
	saturdays := mustSchedule(t, "0 6 * * sat", "", "America/New_York")
	fiveMinutes := mustSchedule(t, "*/5 * * * *", "", "")
	quarterly := mustSchedule(t, "0 6 1 */3 *", "", "")
	daily := mustSchedule(t, "", "1d", "")

	cases := []struct {
		name       string
		schedule   Schedule
		after, now time.Time
		want       time.Time
		ok         bool
	}{
		// Three slots were missed; only the latest is taken.
		{name: "latest of three", schedule: saturdays, after: at(newYork, 2027, 1, 2, 6, 0), now: at(newYork, 2027, 1, 27, 12, 0), want: at(newYork, 2027, 1, 23, 6, 0), ok: true},
		{name: "none missed", schedule: saturdays, after: at(newYork, 2027, 1, 23, 6, 0), now: at(newYork, 2027, 1, 29, 12, 0)},
		// A slot at now is due; the slot at after was already taken.
		{name: "slot at now", schedule: saturdays, after: at(newYork, 2027, 1, 23, 6, 0), now: at(newYork, 2027, 1, 30, 6, 0), want: at(newYork, 2027, 1, 30, 6, 0), ok: true},
		{name: "slot at after", schedule: saturdays, after: at(newYork, 2027, 1, 23, 6, 0), now: at(newYork, 2027, 1, 23, 6, 0)},
		// A year of five-minute slots missed: still just the latest.
		{name: "dense, long outage", schedule: fiveMinutes, after: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), now: time.Date(2027, 1, 27, 12, 3, 0, 0, time.UTC), want: time.Date(2027, 1, 27, 12, 0, 0, 0, time.UTC), ok: true},
		// A schedule that never ran (after is the zero time).
		{name: "never ran", schedule: quarterly, after: time.Time{}, now: time.Date(2027, 3, 15, 0, 0, 0, 0, time.UTC), want: time.Date(2027, 1, 1, 6, 0, 0, 0, time.UTC), ok: true},
		// An interval is due Every after the last run, however long ago that was.
		{name: "interval due", schedule: daily, after: time.Date(2027, 1, 1, 6, 0, 0, 0, time.UTC), now: time.Date(2027, 1, 9, 0, 0, 0, 0, time.UTC), want: time.Date(2027, 1, 2, 6, 0, 0, 0, time.UTC), ok: true},
		{name: "interval not yet due", schedule: daily, after: time.Date(2027, 1, 1, 6, 0, 0, 0, time.UTC), now: time.Date(2027, 1, 2, 5, 59, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.schedule.LatestAtOrBefore(tc.after, tc.now)
			require.Equal(t, tc.ok, ok, "got %s", got)
			if tc.ok {
				requireInstant(t, tc.want, got)
			}
		})
	}
}

func TestSchedule_Interval(t *testing.T) {
	from := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		schedule Schedule
		want     time.Duration
	}{
		{name: "weekly", schedule: mustSchedule(t, "0 6 * * sat", "", ""), want: 7 * day},
		// Elapsed time: the week the clocks go back has 169 hours.
		{name: "weekly, New York", schedule: mustSchedule(t, "0 6 * * sat", "", "America/New_York"), want: 7*day + time.Hour},
		// July to October, and October to January, are 92 days.
		{name: "quarterly", schedule: mustSchedule(t, "0 6 1 */3 *", "", ""), want: 92 * day},
		// The weekend is the longest gap of an hourly weekday schedule.
		{name: "office hours", schedule: mustSchedule(t, "0 9-17 * * mon-fri", "", ""), want: 64 * time.Hour},
		// Gaps inside an hour and across hours both count.
		{name: "twice an hour", schedule: mustSchedule(t, "0,10 * * * *", "", ""), want: 50 * time.Minute},
		{name: "every minute", schedule: mustSchedule(t, "* * * * *", "", ""), want: time.Minute},
		// A slot's gap counts even when the next slot is past the 366 days.
		{name: "leap day", schedule: mustSchedule(t, "0 0 29 feb *", "", ""), want: (366 + 3*365) * day},
		{name: "every", schedule: mustSchedule(t, "", "90d", ""), want: 90 * day},
		{name: "zero", schedule: Schedule{}, want: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.schedule.Interval(from))
		})
	}
}

// Interval walks hours rather than slots; it must agree with walking every
// slot, across both of New York's DST changes (the repeated and the
// skipped hour included).
func TestSchedule_Interval_MatchesEverySlot(t *testing.T) {
	from := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, spec := range []string{"*/20 9-17 * * mon-fri", "0,10 * * * *", "30 1 * * *", "15 2 * * sun", "59 23 28-31 * *", "0 6 1 */3 *"} {
		t.Run(spec, func(t *testing.T) {
			s := mustSchedule(t, spec, "", "America/New_York")
			var longest time.Duration
			end := from.AddDate(0, 0, 366)
			for slot := s.NextAfter(from); !slot.After(end); {
				next := s.NextAfter(slot)
				longest = max(longest, next.Sub(slot))
				slot = next
			}
			require.Equal(t, longest, s.Interval(from))
		})
	}
}
