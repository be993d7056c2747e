// Package calendar is the time arithmetic of scheduled drills: the trading
// sessions of a server's trading_hours blocks, the slots of its schedule
// blocks, and the first instant from a slot at which a drill of a given
// length overlaps no session, because a drill must never run while a
// market is open.
//
// It does no I/O and reads no clock: every function takes the instants it
// works from, so the leader and its tests compute the same answers.
package calendar

import (
	"fmt"
	"slices"
	"time"

	// The zone database is built in so that a server whose image has no
	// /usr/share/zoneinfo still loads the zones its config names; Go reads
	// the system's copy first when there is one.
	_ "time/tzdata"
)

// Session is one trading session: [Open, Close).
type Session struct {
	Market      string
	Open, Close time.Time
}

// TradingHours is one trading_hours block.
type TradingHours struct {
	Name     string
	Location *time.Location
	// Days are the local weekdays a session opens on.
	Days []time.Weekday
	// Open is the opening time as an offset from local midnight (wall
	// clock), 0 to 24h.
	Open time.Duration
	// Close is the closing time, likewise. Close <= Open means the session
	// closes on the next local day (an overnight session such as futures'
	// 18:00 to 17:00); Close == Open is a 24-hour session.
	Close time.Duration
}

// dayNames are the names a days list takes, in the order of time.Weekday.
var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// validDays lists dayNames for error messages, starting on Monday as a
// trader reads a week.
const validDays = "mon, tue, wed, thu, fri, sat, sun"

// NewTradingHours checks and builds one trading_hours block. Each error
// starts with the attribute it is about (timezone, days, open or close)
// and says what to write instead.
func NewTradingHours(name, timezone string, days []string, opens, closes string) (TradingHours, error) {
	loc, err := loadLocation(timezone, true)
	if err != nil {
		return TradingHours{}, err
	}
	weekdays, err := parseDays(days)
	if err != nil {
		return TradingHours{}, err
	}
	open, err := parseClock("open", opens, false)
	if err != nil {
		return TradingHours{}, err
	}
	closeAt, err := parseClock("close", closes, true)
	if err != nil {
		return TradingHours{}, err
	}
	return TradingHours{Name: name, Location: loc, Days: weekdays, Open: open, Close: closeAt}, nil
}

// loadLocation loads the IANA zone a timezone attribute names. "" is UTC
// unless the attribute is required. "Local" is refused: it is whatever
// zone each server happens to run in, and the servers must agree.
func loadLocation(name string, required bool) (*time.Location, error) {
	const want = `expected an IANA time zone name such as "America/New_York", "Europe/London" or "UTC"`
	switch name {
	case "":
		if required {
			return nil, fmt.Errorf("timezone: missing; %s", want)
		}
		return time.UTC, nil
	case "Local":
		return nil, fmt.Errorf(`timezone: "Local" is each server's own zone, which can differ between servers; %s`, want)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("timezone: unknown time zone %q; %s", name, want)
	}
	return loc, nil
}

func parseDays(days []string) ([]time.Weekday, error) {
	if len(days) == 0 {
		return nil, fmt.Errorf("days: empty; expected at least one of %s", validDays)
	}
	var out []time.Weekday
	for _, name := range days {
		i := slices.Index(dayNames, name)
		switch {
		case i < 0:
			return nil, fmt.Errorf("days: %q is not a day; expected three-letter names: %s", name, validDays)
		case slices.Contains(out, time.Weekday(i)):
			return nil, fmt.Errorf("days: %q is listed twice; list each day once", name)
		}
		out = append(out, time.Weekday(i))
	}
	slices.Sort(out)
	return out, nil
}

// parseClock parses an "HH:MM" 24-hour wall-clock time into its offset
// from midnight. "24:00" is the end of the day, which only a close can be.
func parseClock(attr, v string, endOfDay bool) (time.Duration, error) {
	digit := func(i int) int {
		if c := v[i]; c >= '0' && c <= '9' {
			return int(c - '0')
		}
		return -1
	}
	if len(v) != 5 || v[2] != ':' || digit(0) < 0 || digit(1) < 0 || digit(3) < 0 || digit(4) < 0 {
		return 0, fmt.Errorf(`%s: %q is not a time; expected HH:MM on a 24-hour clock, such as "09:30"`, attr, v)
	}
	hh, mm := digit(0)*10+digit(1), digit(3)*10+digit(4)
	switch {
	case endOfDay && v == "24:00":
		return 24 * time.Hour, nil
	case hh > 23 || mm > 59:
		last := "23:59"
		if endOfDay {
			last = "24:00"
		}
		return 0, fmt.Errorf("%s: %q is out of range; expected 00:00 to %s", attr, v, last)
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

// SessionAt returns the session of h that contains t, if any. Sessions
// keep their local wall-clock times across a DST change: New York's
// 09:30-16:00 is 14:30-21:00 UTC in winter and 13:30-20:00 UTC in summer.
func (h TradingHours) SessionAt(t time.Time) (Session, bool) {
	return h.firstOverlap(t, t)
}

// firstOverlap returns the earliest-opening session of h that overlaps
// [from, to). An empty interval (to <= from) stands for the instant from,
// so that a zero-length drill is checked as a point.
func (h TradingHours) firstOverlap(from, to time.Time) (Session, bool) {
	if h.Location == nil || !slices.ContainsFunc(h.Days, validWeekday) {
		return Session{}, false
	}
	if !to.After(from) {
		to = from.Add(time.Nanosecond)
	}
	// A session closes on the local day it opens or the next one, so the
	// one that opened yesterday is the earliest that can still be open.
	y, m, d := from.In(h.Location).Date()
	for day := d - 1; ; day++ {
		midnight := time.Date(y, m, day, 0, 0, 0, 0, h.Location)
		if !midnight.Before(to) {
			return Session{}, false // this and later sessions open at or after to
		}
		if !slices.Contains(h.Days, midnight.Weekday()) {
			continue
		}
		s, ok := h.sessionOn(y, m, day)
		if ok && s.Open.Before(to) && s.Close.After(from) {
			return s, true
		}
	}
}

func validWeekday(d time.Weekday) bool { return d >= time.Sunday && d <= time.Saturday }

// sessionOn returns the session opening on local date y-m-d (time.Date
// normalises a day past the month's end). ok is false when a DST jump
// leaves the session no time at all.
func (h TradingHours) sessionOn(y int, m time.Month, d int) (Session, bool) {
	open := time.Date(y, m, d, 0, 0, 0, int(h.Open), h.Location)
	closeDay := d
	if h.Close <= h.Open {
		closeDay++
	}
	closeAt := time.Date(y, m, closeDay, 0, 0, 0, int(h.Close), h.Location)
	return Session{Market: h.Name, Open: open, Close: closeAt}, closeAt.After(open)
}

// Calendar is every trading_hours block of a config: a drill must avoid
// them all.
type Calendar []TradingHours

// Inside reports the session (of any market) containing t; if several do,
// the earliest-opening one.
func (c Calendar) Inside(t time.Time) (Session, bool) {
	return c.Overlap(t, t)
}

// Overlap returns the first session of any market that overlaps
// [from, to): the earliest-opening one, a session already open at from
// included; ties go to the market listed first. An empty interval
// (to <= from) stands for the instant from.
func (c Calendar) Overlap(from, to time.Time) (Session, bool) {
	var first Session
	found := false
	for _, h := range c {
		s, ok := h.firstOverlap(from, to)
		if ok && (!found || s.Open.Before(first.Open)) {
			first, found = s, true
		}
	}
	return first, found
}

// FirstFree returns the first instant at or after t at which an interval
// of length d (0 for an instant) overlaps no session, no later than
// horizon after t. It returns t itself when t is free; otherwise the close
// of the last session it had to skip (in that market's zone), skipping
// back-to-back sessions and overlapping markets in turn. ok is false when
// no such instant exists within horizon, e.g. when d is longer than every
// gap between sessions.
func (c Calendar) FirstFree(t time.Time, d, horizon time.Duration) (time.Time, bool) {
	limit := t.Add(horizon)
	// No start before the close of a blocking session can be free: it
	// would begin inside that session or run into its opening.
	for at := t; !at.After(limit); {
		s, busy := c.Overlap(at, at.Add(d))
		if !busy {
			return at, true
		}
		at = s.Close
	}
	return time.Time{}, false
}
