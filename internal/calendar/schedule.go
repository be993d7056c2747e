package calendar

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is one schedule block's timing: exactly one of a cron spec or
// an interval.
//
// Build it with NewSchedule. A Schedule written as a literal with Cron set
// parses Cron on each call instead; if Cron does not parse, it has no slots
// (NextAfter returns the zero time, LatestAtOrBefore false, Interval 0).
type Schedule struct {
	// Cron is a standard 5-field cron spec, empty for an interval.
	Cron string
	// Every is the interval, > 0 for an interval schedule. It is elapsed
	// time: "1d" is 24 hours, even across a DST change.
	Every time.Duration
	// Location is the zone the cron's fields are read in; nil is UTC.
	Location *time.Location

	spec *cron.SpecSchedule // Cron parsed by NewSchedule
}

// cronSyntax is appended to cron errors: what a spec is made of.
const cronSyntax = `expected five fields: minute hour day-of-month month day-of-week, such as "0 6 * * sat"`

// NewSchedule checks and builds a schedule's timing. Exactly one of
// cronSpec and every is given; timezone ("" for UTC) is the cron's zone and
// has no meaning for every, which counts from the last run. Each error
// starts with the attribute it is about (cron, every or timezone).
func NewSchedule(cronSpec, every, timezone string) (Schedule, error) {
	switch {
	case cronSpec != "" && every != "":
		return Schedule{}, errors.New(`cron and every are both set; a schedule takes exactly one: cron for slots on the calendar, every for an interval`)
	case cronSpec == "" && every == "":
		return Schedule{}, errors.New(`neither cron nor every is set; a schedule takes exactly one, such as cron = "0 6 * * sat" or every = "90d"`)
	case every != "":
		if timezone != "" {
			return Schedule{}, errors.New("timezone: only applies to cron; an every schedule counts elapsed time from the last run, so remove timezone")
		}
		d, err := ParseDuration(every)
		if err != nil {
			return Schedule{}, fmt.Errorf("every: %w", err)
		}
		if d < time.Minute {
			return Schedule{}, fmt.Errorf("every: %q is too short; expected 1m or more", every)
		}
		return Schedule{Every: d}, nil
	}
	loc, err := loadLocation(timezone, false)
	if err != nil {
		return Schedule{}, err
	}
	spec, err := parseCron(cronSpec)
	if err != nil {
		return Schedule{}, err
	}
	return Schedule{Cron: cronSpec, Location: loc, spec: spec}, nil
}

// parseCron parses a standard cron spec. robfig/cron also reads
// descriptors and a zone prefix; drplane takes neither, so that a
// schedule's zone is always its timezone attribute.
func parseCron(v string) (*cron.SpecSchedule, error) {
	v = strings.TrimSpace(v)
	switch {
	case strings.HasPrefix(v, "@"):
		return nil, fmt.Errorf("cron: descriptor %q is not supported; %s; for an interval use every = \"90d\"", v, cronSyntax)
	case strings.HasPrefix(v, "TZ=") || strings.HasPrefix(v, "CRON_TZ="):
		return nil, errors.New("cron: a zone prefix such as CRON_TZ= is not supported; set the timezone attribute instead")
	}
	parsed, err := cron.ParseStandard(v)
	if err != nil {
		return nil, fmt.Errorf("cron: %q is not a valid spec (%v); %s", v, err, cronSyntax)
	}
	// Without descriptors, ParseStandard only builds a *SpecSchedule,
	// whose minute field Interval reads.
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("cron: %q is not a valid spec; %s", v, cronSyntax)
	}
	// Next looks five years ahead, which covers every date a spec can name
	// (29 February included), so a spec with no slot then has none ever.
	if spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("cron: %q never fires; check that its day-of-month exists in its month", v)
	}
	return spec, nil
}

// parsed returns the parsed spec and its zone; spec is nil for an interval
// schedule or a Cron that does not parse.
func (s Schedule) parsed() (*cron.SpecSchedule, *time.Location) {
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	if s.spec != nil || s.Cron == "" {
		return s.spec, loc
	}
	spec, _ := parseCron(s.Cron)
	return spec, loc
}

// NextAfter returns the first cron slot strictly after t, in s.Location,
// or for an interval schedule t + Every. It returns the zero time for a
// Schedule with neither.
func (s Schedule) NextAfter(t time.Time) time.Time {
	if s.Every > 0 {
		return t.Add(s.Every)
	}
	spec, loc := s.parsed()
	if spec == nil {
		return time.Time{}
	}
	return spec.Next(t.In(loc))
}

// LatestAtOrBefore returns the latest slot in (after, now], if any: the
// leader takes that one missed slot, not every slot it missed while no
// leader ran. For an interval schedule it is after + Every if that is not
// after now.
func (s Schedule) LatestAtOrBefore(after, now time.Time) (time.Time, bool) {
	if s.Every > 0 {
		next := after.Add(s.Every)
		return next, !next.After(now)
	}
	spec, loc := s.parsed()
	if spec == nil || !now.After(after) {
		return time.Time{}, false
	}
	// robfig/cron only steps forward, so look back over a window that
	// doubles until it holds a slot, then walk it forward to the last one.
	// Walking all of (after, now] instead could take a slot a minute for
	// months of downtime.
	span := now.Sub(after) // saturates at about 292 years
	for w := time.Hour; ; {
		from := after
		if w < span {
			from = now.Add(-w)
		}
		var latest time.Time
		for next := spec.Next(from.In(loc)); !next.IsZero() && !next.After(now); next = spec.Next(next) {
			latest = next
		}
		if !latest.IsZero() {
			return latest, true
		}
		if w >= span {
			return time.Time{}, false
		}
		if w > span/2 {
			w = span
		} else {
			w *= 2
		}
	}
}

// Interval is the schedule's nominal spacing, for "overdue" checks: Every,
// or for a cron the longest gap, in elapsed time, from a slot in the 366
// days after from (or the first slot after from) to the next slot.
// "0 6 * * sat" gives 7 days in UTC, and 7 days and an hour in New York
// for the week the clocks go back. It is 0 for a Schedule with no slots.
func (s Schedule) Interval(from time.Time) time.Duration {
	if s.Every > 0 {
		return s.Every
	}
	spec, loc := s.parsed()
	if spec == nil {
		return 0
	}
	end := from.AddDate(0, 0, 366)
	var longest time.Duration
	// A spec fires at the same minutes of every hour it fires in, so walk
	// the hours rather than the slots (at most 8,784 steps rather than
	// 527,040 for "* * * * *"): gaps inside an hour come from the minute
	// field, and each step measures the gap from an hour's last slot to
	// the next slot. The first slot counts even when it is past the 366
	// days, so that a spec firing less than yearly ("0 0 29 feb *") has
	// an interval too.
	for slot := spec.Next(from.In(loc)); !slot.IsZero(); {
		last := slot.Minute()
		for m := last + 1; m < 60; m++ {
			if spec.Minute&(1<<m) != 0 {
				longest = max(longest, time.Duration(m-last)*time.Minute)
				last = m
			}
		}
		lastSlot := slot.Add(time.Duration(last-slot.Minute()) * time.Minute)
		// No slot is left in this hour, so ask for the first from the next
		// hour on: that spares Next stepping through the minutes between.
		next := spec.Next(lastSlot.Add(time.Duration(60-last)*time.Minute - time.Second))
		if next.IsZero() {
			break
		}
		longest = max(longest, next.Sub(lastSlot))
		if next.After(end) {
			break
		}
		slot = next
	}
	return longest
}

// ParseDuration parses a duration as time.ParseDuration does, with one
// more unit, d for 24 hours: "90d", "1d12h", "1.5d". Errors name the value
// and what to write instead; the caller adds the attribute.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" || s == "+0" || s == "-0" {
		return 0, nil
	}
	if !durationSyntax.MatchString(s) {
		return 0, fmt.Errorf(`%q is not a duration; expected a number with a unit, such as "90d", "12h", "30m" or "1d12h"`, s)
	}
	var total time.Duration
	for _, part := range durationPart.FindAllStringSubmatch(s, -1) {
		num, unit, scale := part[1], part[2], time.Duration(1)
		if unit == "d" {
			unit, scale = "h", 24
		}
		// The syntax is checked above, so an error here is an overflow.
		v, err := time.ParseDuration(num + unit)
		if err != nil || v > math.MaxInt64/scale || total > math.MaxInt64-v*scale {
			return 0, fmt.Errorf("%q is out of range; the longest duration is about 292 years", s)
		}
		total += v * scale
	}
	if strings.HasPrefix(s, "-") {
		total = -total
	}
	return total, nil
}

// durationPart is one number and unit of a duration.
var durationPart = regexp.MustCompile(`(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)`)

// durationSyntax is a whole duration: a sign, then numbers with units.
var durationSyntax = regexp.MustCompile(`^[-+]?(?:` + durationPart.String() + `)+$`)
