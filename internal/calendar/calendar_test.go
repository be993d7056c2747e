package calendar

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	newYork = mustLoad("America/New_York")
	chicago = mustLoad("America/Chicago")
	london  = mustLoad("Europe/London")
)

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// at is a wall-clock time in loc.
func at(loc *time.Location, y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, loc)
}

// requireInstant compares instants whatever their zones.
func requireInstant(t *testing.T, want, got time.Time) {
	t.Helper()
	require.Truef(t, want.Equal(got), "want %s (%s), got %s (%s)", want, want.UTC(), got, got.UTC())
}

func requireSession(t *testing.T, want, got Session) {
	t.Helper()
	require.Equal(t, want.Market, got.Market)
	requireInstant(t, want.Open, got.Open)
	requireInstant(t, want.Close, got.Close)
}

func mustHours(t *testing.T, name, tz string, days []string, opens, closes string) TradingHours {
	t.Helper()
	h, err := NewTradingHours(name, tz, days, opens, closes)
	require.NoError(t, err)
	return h
}

var weekdays = []string{"mon", "tue", "wed", "thu", "fri"}

// The markets the tests use. January 2027 starts on a Friday, so the 4th
// and the 11th are Mondays; the US clocks go forward on Sunday 14 March.
func usEquities(t *testing.T) TradingHours {
	return mustHours(t, "us-equities", "America/New_York", weekdays, "09:30", "16:00")
}

func futures(t *testing.T) TradingHours {
	return mustHours(t, "futures", "America/Chicago", []string{"sun", "mon", "tue", "wed", "thu"}, "18:00", "17:00")
}

func TestNewTradingHours(t *testing.T) {
	h := usEquities(t)
	require.Equal(t, "us-equities", h.Name)
	require.Equal(t, "America/New_York", h.Location.String())
	require.Equal(t, []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}, h.Days)
	require.Equal(t, 9*time.Hour+30*time.Minute, h.Open)
	require.Equal(t, 16*time.Hour, h.Close)

	// "24:00" closes at the end of the day.
	h = mustHours(t, "late", "UTC", []string{"sat"}, "18:00", "24:00")
	require.Equal(t, 24*time.Hour, h.Close)
}

func TestNewTradingHours_Errors(t *testing.T) {
	cases := []struct {
		name           string
		timezone       string
		days           []string
		opens, closes  string
		wantErrMessage string
	}{
		{
			name: "unknown zone", timezone: "America/New_Yrok", days: weekdays, opens: "09:30", closes: "16:00",
			wantErrMessage: `timezone: unknown time zone "America/New_Yrok"; expected an IANA time zone name such as "America/New_York", "Europe/London" or "UTC"`,
		},
		{
			name: "zone required", timezone: "", days: weekdays, opens: "09:30", closes: "16:00",
			wantErrMessage: `timezone: missing; expected an IANA time zone name such as "America/New_York", "Europe/London" or "UTC"`,
		},
		{
			// Servers in different zones would disagree on "Local".
			name: "server's zone", timezone: "Local", days: weekdays, opens: "09:30", closes: "16:00",
			wantErrMessage: `timezone: "Local" is each server's own zone, which can differ between servers; expected an IANA time zone name such as "America/New_York", "Europe/London" or "UTC"`,
		},
		{
			name: "long day name", timezone: "UTC", days: []string{"monday"}, opens: "09:30", closes: "16:00",
			wantErrMessage: `days: "monday" is not a day; expected three-letter names: mon, tue, wed, thu, fri, sat, sun`,
		},
		{
			// Names are lower case, as the message lists them.
			name: "capitalised day", timezone: "UTC", days: []string{"Mon"}, opens: "09:30", closes: "16:00",
			wantErrMessage: `days: "Mon" is not a day; expected three-letter names: mon, tue, wed, thu, fri, sat, sun`,
		},
		{
			name: "duplicate day", timezone: "UTC", days: []string{"mon", "tue", "mon"}, opens: "09:30", closes: "16:00",
			wantErrMessage: `days: "mon" is listed twice; list each day once`,
		},
		{
			name: "no days", timezone: "UTC", days: nil, opens: "09:30", closes: "16:00",
			wantErrMessage: `days: empty; expected at least one of mon, tue, wed, thu, fri, sat, sun`,
		},
		{
			name: "one-digit hour", timezone: "UTC", days: weekdays, opens: "9:30", closes: "16:00",
			wantErrMessage: `open: "9:30" is not a time; expected HH:MM on a 24-hour clock, such as "09:30"`,
		},
		{
			name: "12-hour clock", timezone: "UTC", days: weekdays, opens: "09:30", closes: "4:00pm",
			wantErrMessage: `close: "4:00pm" is not a time; expected HH:MM on a 24-hour clock, such as "09:30"`,
		},
		{
			// A session cannot open at the end of a day.
			name: "open at 24:00", timezone: "UTC", days: weekdays, opens: "24:00", closes: "16:00",
			wantErrMessage: `open: "24:00" is out of range; expected 00:00 to 23:59`,
		},
		{
			name: "minute out of range", timezone: "UTC", days: weekdays, opens: "09:30", closes: "16:60",
			wantErrMessage: `close: "16:60" is out of range; expected 00:00 to 24:00`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTradingHours("us-equities", tc.timezone, tc.days, tc.opens, tc.closes)
			require.EqualError(t, err, tc.wantErrMessage)
		})
	}
}

func TestTradingHours_SessionAt(t *testing.T) {
	equities := usEquities(t)
	thursday := Session{Market: "us-equities", Open: at(newYork, 2027, 1, 7, 9, 30), Close: at(newYork, 2027, 1, 7, 16, 0)}
	globex := futures(t)
	sundayNight := Session{Market: "futures", Open: at(chicago, 2027, 1, 10, 18, 0), Close: at(chicago, 2027, 1, 11, 17, 0)}
	thursdayNight := Session{Market: "futures", Open: at(chicago, 2027, 1, 7, 18, 0), Close: at(chicago, 2027, 1, 8, 17, 0)}
	fx := mustHours(t, "fx", "America/New_York", weekdays, "17:00", "17:00")
	fxMonday := Session{Market: "fx", Open: at(newYork, 2027, 1, 4, 17, 0), Close: at(newYork, 2027, 1, 5, 17, 0)}
	fxTuesday := Session{Market: "fx", Open: at(newYork, 2027, 1, 5, 17, 0), Close: at(newYork, 2027, 1, 6, 17, 0)}

	cases := []struct {
		name   string
		hours  TradingHours
		t      time.Time
		want   Session
		inside bool
	}{
		// A day session, [Open, Close).
		{name: "midday", hours: equities, t: at(newYork, 2027, 1, 7, 12, 0), want: thursday, inside: true},
		{name: "before open", hours: equities, t: at(newYork, 2027, 1, 7, 9, 29)},
		{name: "at open is inside", hours: equities, t: at(newYork, 2027, 1, 7, 9, 30), want: thursday, inside: true},
		{name: "at close is outside", hours: equities, t: at(newYork, 2027, 1, 7, 16, 0)},
		{name: "after close", hours: equities, t: at(newYork, 2027, 1, 7, 16, 1)},
		{name: "weekend", hours: equities, t: at(newYork, 2027, 1, 9, 12, 0)},
		// The instant is read in the market's zone, whatever zone it is given in.
		{name: "given in UTC", hours: equities, t: time.Date(2027, 1, 7, 17, 0, 0, 0, time.UTC), want: thursday, inside: true},

		// An overnight session belongs to the day it opens: Monday
		// 02:00 is in the session Sunday opened.
		{name: "overnight, opened yesterday", hours: globex, t: at(chicago, 2027, 1, 11, 2, 0), want: sundayNight, inside: true},
		{name: "overnight, daily break", hours: globex, t: at(chicago, 2027, 1, 11, 17, 30)},
		{name: "overnight, Friday before close", hours: globex, t: at(chicago, 2027, 1, 8, 16, 59), want: thursdayNight, inside: true},
		// Friday opens no session, so Thursday's is the week's last.
		{name: "overnight, Friday after close", hours: globex, t: at(chicago, 2027, 1, 8, 17, 30)},
		{name: "overnight, Saturday", hours: globex, t: at(chicago, 2027, 1, 9, 12, 0)},
		{name: "overnight, Sunday before open", hours: globex, t: at(chicago, 2027, 1, 10, 17, 59)},

		// open == close chains 24-hour sessions: the instant one closes
		// belongs to the next.
		{name: "24h chain, within", hours: fx, t: at(newYork, 2027, 1, 5, 16, 59), want: fxMonday, inside: true},
		{name: "24h chain, handover", hours: fx, t: at(newYork, 2027, 1, 5, 17, 0), want: fxTuesday, inside: true},
		{name: "24h chain, Sunday", hours: fx, t: at(newYork, 2027, 1, 10, 12, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, inside := tc.hours.SessionAt(tc.t)
			require.Equal(t, tc.inside, inside, "session %+v", got)
			if tc.inside {
				requireSession(t, tc.want, got)
			}
		})
	}
}

// Sessions keep their local times across a DST change, so the same UTC
// time of day can be outside the session one week and inside it the next.
func TestTradingHours_SessionAt_DST(t *testing.T) {
	equities := usEquities(t)
	utc := func(d, hh, mm int) time.Time { return time.Date(2027, 3, d, hh, mm, 0, 0, time.UTC) }

	cases := []struct {
		name   string
		t      time.Time
		inside bool
		open   time.Time
		close  time.Time
	}{
		// Friday 5 March, EST (UTC-5): 14:30Z to 21:00Z.
		{name: "EST, 14:00Z is before open", t: utc(5, 14, 0)},
		{name: "EST, open", t: utc(5, 14, 30), inside: true, open: utc(5, 14, 30), close: utc(5, 21, 0)},
		{name: "EST, 20:30Z is before close", t: utc(5, 20, 30), inside: true, open: utc(5, 14, 30), close: utc(5, 21, 0)},
		// Monday 15 March, EDT (UTC-4): 13:30Z to 20:00Z.
		{name: "EDT, 14:00Z is inside", t: utc(15, 14, 0), inside: true, open: utc(15, 13, 30), close: utc(15, 20, 0)},
		{name: "EDT, 20:30Z is after close", t: utc(15, 20, 30)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, inside := equities.SessionAt(tc.t)
			require.Equal(t, tc.inside, inside, "session %+v", got)
			if tc.inside {
				requireSession(t, Session{Market: "us-equities", Open: tc.open, Close: tc.close}, got)
			}
		})
	}
}

func TestCalendar_InsideAndOverlap(t *testing.T) {
	uk := mustHours(t, "uk", "Europe/London", weekdays, "08:00", "16:30")
	cal := Calendar{usEquities(t), uk}
	ukMonday := Session{Market: "uk", Open: at(london, 2027, 1, 11, 8, 0), Close: at(london, 2027, 1, 11, 16, 30)}
	usMonday := Session{Market: "us-equities", Open: at(newYork, 2027, 1, 11, 9, 30), Close: at(newYork, 2027, 1, 11, 16, 0)}

	// When markets overlap, Inside names the one that opened first.
	got, inside := cal.Inside(at(newYork, 2027, 1, 11, 10, 0))
	require.True(t, inside)
	requireSession(t, ukMonday, got)

	// After London closes, only New York is open.
	got, inside = cal.Inside(at(newYork, 2027, 1, 11, 12, 0))
	require.True(t, inside)
	requireSession(t, usMonday, got)

	cases := []struct {
		name     string
		from, to time.Time
		want     Session
		overlaps bool
	}{
		// A session already open at from counts.
		{name: "open at from", from: at(newYork, 2027, 1, 11, 12, 0), to: at(newYork, 2027, 1, 11, 13, 0), want: usMonday, overlaps: true},
		// Intervals are half-open: ending at an open, or starting at a close, is clear.
		{name: "ends at open", from: at(london, 2027, 1, 11, 7, 0), to: at(london, 2027, 1, 11, 8, 0)},
		{name: "starts at close", from: at(newYork, 2027, 1, 11, 16, 0), to: at(newYork, 2027, 1, 11, 20, 0)},
		// The earliest-opening session is returned, not the first market's.
		{name: "weekend into Monday", from: at(newYork, 2027, 1, 9, 0, 0), to: at(newYork, 2027, 1, 12, 0, 0), want: ukMonday, overlaps: true},
		// An empty interval is the instant from.
		{name: "empty interval", from: at(newYork, 2027, 1, 11, 12, 0), to: at(newYork, 2027, 1, 11, 12, 0), want: usMonday, overlaps: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, overlaps := cal.Overlap(tc.from, tc.to)
			require.Equal(t, tc.overlaps, overlaps, "session %+v", got)
			if tc.overlaps {
				requireSession(t, tc.want, got)
			}
		})
	}
}

func TestCalendar_FirstFree(t *testing.T) {
	equities := Calendar{usEquities(t)}
	globex := Calendar{futures(t)}
	fx := Calendar{mustHours(t, "fx", "America/New_York", weekdays, "17:00", "17:00")}
	twoMarkets := Calendar{usEquities(t), mustHours(t, "uk", "Europe/London", weekdays, "08:00", "16:30")}
	const week = 7 * 24 * time.Hour

	cases := []struct {
		name    string
		cal     Calendar
		slot    time.Time
		d       time.Duration
		horizon time.Duration
		want    time.Time
		ok      bool
	}{
		// A free slot is kept as it is.
		{name: "free", cal: equities, slot: at(newYork, 2027, 1, 9, 6, 0), d: 2 * time.Hour, horizon: week, want: at(newYork, 2027, 1, 9, 6, 0), ok: true},
		// A drill may end exactly when a session opens.
		{name: "ends at open", cal: equities, slot: at(newYork, 2027, 1, 8, 8, 30), d: time.Hour, horizon: week, want: at(newYork, 2027, 1, 8, 8, 30), ok: true},
		// A slot that would run into the open moves past the session.
		{name: "runs into open", cal: equities, slot: at(newYork, 2027, 1, 8, 9, 0), d: time.Hour, horizon: week, want: at(newYork, 2027, 1, 8, 16, 0), ok: true},
		// A slot inside a session moves to its close.
		{name: "inside", cal: equities, slot: at(newYork, 2027, 1, 8, 10, 0), d: 0, horizon: week, want: at(newYork, 2027, 1, 8, 16, 0), ok: true},
		// 18h from Friday's close ends before Monday's open.
		{name: "fits the weekend", cal: equities, slot: at(newYork, 2027, 1, 8, 10, 0), d: 18 * time.Hour, horizon: week, want: at(newYork, 2027, 1, 8, 16, 0), ok: true},
		// Thursday 16:00 to Friday 09:30 is 17.5h, too short for 18h,
		// so the drill goes past Friday's session too.
		{name: "overnight gap too short", cal: equities, slot: at(newYork, 2027, 1, 7, 15, 0), d: 18 * time.Hour, horizon: week, want: at(newYork, 2027, 1, 8, 16, 0), ok: true},
		// The weekend gap is 65.5h: a drill that long just fits.
		{name: "exactly the weekend", cal: equities, slot: at(newYork, 2027, 1, 8, 10, 0), d: 65*time.Hour + 30*time.Minute, horizon: week, want: at(newYork, 2027, 1, 8, 16, 0), ok: true},
		// One minute more fits no gap at all.
		{name: "longer than every gap", cal: equities, slot: at(newYork, 2027, 1, 8, 10, 0), d: 65*time.Hour + 31*time.Minute, horizon: 4 * week},
		// The close must come within the horizon.
		{name: "beyond the horizon", cal: equities, slot: at(newYork, 2027, 1, 8, 10, 0), d: 0, horizon: 5 * time.Hour},
		// A one-hour drill fits the futures' daily 17:00-18:00 break...
		{name: "fits the daily break", cal: globex, slot: at(chicago, 2027, 1, 6, 3, 0), d: time.Hour, horizon: week, want: at(chicago, 2027, 1, 6, 17, 0), ok: true},
		// ...a two-hour one skips session after session to Friday's close.
		{name: "skips the daily breaks", cal: globex, slot: at(chicago, 2027, 1, 6, 3, 0), d: 2 * time.Hour, horizon: week, want: at(chicago, 2027, 1, 8, 17, 0), ok: true},
		// Back-to-back 24h sessions leave no gap until the week ends.
		{name: "24h chain", cal: fx, slot: at(newYork, 2027, 1, 5, 12, 0), d: time.Minute, horizon: week, want: at(newYork, 2027, 1, 9, 17, 0), ok: true},
		// London's close (11:30 New York) still falls in New York's
		// session, so the slot moves on to New York's close.
		{name: "two markets", cal: twoMarkets, slot: at(newYork, 2027, 1, 11, 10, 0), d: time.Hour, horizon: week, want: at(newYork, 2027, 1, 11, 16, 0), ok: true},
		// No trading hours at all: every slot is free.
		{name: "empty calendar", cal: nil, slot: at(newYork, 2027, 1, 8, 10, 0), d: time.Hour, horizon: week, want: at(newYork, 2027, 1, 8, 10, 0), ok: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.cal.FirstFree(tc.slot, tc.d, tc.horizon)
			require.Equal(t, tc.ok, ok, "got %s", got)
			if tc.ok {
				requireInstant(t, tc.want, got)
			}
		})
	}
}

// A cron in UTC keeps its UTC time while the market's UTC hours move with
// New York's clocks: 14:00Z is before the open in EST, inside the session
// in EDT.
func TestDrillSlotAcrossDST(t *testing.T) {
	s, err := NewSchedule("0 14 * * *", "", "UTC")
	require.NoError(t, err)
	cal := Calendar{usEquities(t)}

	cases := []struct {
		name string
		day  int // of March 2027
		want time.Time
	}{
		{name: "EST, free", day: 12, want: time.Date(2027, 3, 12, 14, 0, 0, 0, time.UTC)},
		{name: "EDT, deferred to the close", day: 15, want: time.Date(2027, 3, 15, 20, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			slot := s.NextAfter(time.Date(2027, 3, tc.day, 0, 0, 0, 0, time.UTC))
			requireInstant(t, time.Date(2027, 3, tc.day, 14, 0, 0, 0, time.UTC), slot)
			got, ok := cal.FirstFree(slot, 0, 7*24*time.Hour)
			require.True(t, ok)
			requireInstant(t, tc.want, got)
		})
	}
}
