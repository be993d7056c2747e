package kpi

import (
	"slices"
	"sort"
	"time"
)

// MinuteState is what was observed of the active site's services during one
// minute.
type MinuteState uint8

const (
	MinuteUnobserved MinuteState = iota // nobody probed (zero value)
	MinuteUp                            // every probe that minute saw them all up
	MinuteDown                          // some probe that minute saw one down
)

// combine is the state of a minute observed as a and as b: an observation
// beats no observation, and down beats up, so a second observer can only
// make a minute look worse to the report, never better.
func combine(a, b MinuteState) MinuteState {
	return max(a, b)
}

// Run is a stretch of consecutive minutes in one state. Start is a minute
// boundary (UTC, truncated to the minute); Minutes >= 1.
type Run struct {
	Start   time.Time   `json:"start"`
	Minutes int64       `json:"minutes"`
	State   MinuteState `json:"state"`
}

// Minutes is the compact per-minute record: runs in time order, no two
// adjacent runs in the same state, no gaps between runs (a gap is recorded
// as an unobserved run). It is a plain value so that it can be stored in the
// JSON-encoded Raft FSM state.
type Minutes struct {
	Runs []Run `json:"runs,omitempty"`
}

// minuteOf is the index of the minute holding t, counted from the Unix
// epoch (floored, so instants before 1970 work too).
func minuteOf(t time.Time) int64 {
	s := t.Unix()
	if s < 0 && s%60 != 0 {
		return s/60 - 1
	}
	return s / 60
}

// minuteTime is the UTC start of minute i.
func minuteTime(i int64) time.Time {
	return time.Unix(i*60, 0).UTC()
}

// runEnd is the index of the minute just after r.
func runEnd(r Run) int64 {
	return minuteOf(r.Start) + r.Minutes
}

// appendRun appends n minutes in state s starting at minute start, merging
// them into the last run when it is contiguous and in the same state.
func appendRun(runs []Run, start, n int64, s MinuteState) []Run {
	if n <= 0 {
		return runs
	}
	if k := len(runs) - 1; k >= 0 && runs[k].State == s && runEnd(runs[k]) == start {
		runs[k].Minutes += n
		return runs
	}
	return append(runs, Run{Start: minuteTime(start), Minutes: n, State: s})
}

// Record sets the minute holding t (any instant; truncated to its minute,
// UTC) to state s:
//   - a minute recorded Down stays Down (a later Up observation of the same
//     minute does not improve it); Up over Unobserved or Up is Up; recording
//     Unobserved never changes a recorded minute;
//   - a minute after the last recorded one extends the record, and the
//     minutes in between become Unobserved;
//   - a minute before the first recorded one, or in the middle, is set in
//     place, splitting and merging runs: this happens when two leaders'
//     observations of the same minute both land;
//   - adjacent runs in the same state are merged, so an always-up service
//     over a year is one run.
//
// A state outside the known ones is recorded as Down.
func (m *Minutes) Record(t time.Time, s MinuteState) {
	s = min(s, MinuteDown)
	at := minuteOf(t)
	if len(m.Runs) == 0 {
		m.Runs = appendRun(nil, at, 1, s)
		return
	}
	first, end := minuteOf(m.Runs[0].Start), runEnd(m.Runs[len(m.Runs)-1])
	switch {
	case at >= end:
		// The common case, a leader recording the minute it just probed:
		// O(1), no copy.
		m.Runs = appendRun(m.Runs, end, at-end, MinuteUnobserved)
		m.Runs = appendRun(m.Runs, at, 1, s)
	case at < first:
		runs := appendRun(make([]Run, 0, len(m.Runs)+2), at, 1, s)
		runs = appendRun(runs, at+1, first-at-1, MinuteUnobserved)
		m.Runs = appendRuns(runs, m.Runs)
	default:
		i := sort.Search(len(m.Runs), func(i int) bool { return minuteOf(m.Runs[i].Start) > at }) - 1
		r := m.Runs[i]
		state := combine(r.State, s)
		if state == r.State {
			return
		}
		start := minuteOf(r.Start)
		runs := append(make([]Run, 0, len(m.Runs)+2), m.Runs[:i]...)
		runs = appendRun(runs, start, at-start, r.State)
		runs = appendRun(runs, at, 1, state)
		runs = appendRun(runs, at+1, start+r.Minutes-at-1, r.State)
		m.Runs = appendRuns(runs, m.Runs[i+1:])
	}
}

// appendRuns appends rest to runs, merging where they meet.
func appendRuns(runs, rest []Run) []Run {
	for _, r := range rest {
		runs = appendRun(runs, minuteOf(r.Start), r.Minutes, r.State)
	}
	return runs
}

// Trim drops whatever lies before the minute holding before, splitting a
// run that straddles it: the retention horizon.
func (m *Minutes) Trim(before time.Time) {
	b := minuteOf(before)
	k := 0
	for k < len(m.Runs) && runEnd(m.Runs[k]) <= b {
		k++
	}
	if k == len(m.Runs) {
		m.Runs = nil
		return
	}
	if s := minuteOf(m.Runs[k].Start); s < b {
		m.Runs[k].Minutes -= b - s
		m.Runs[k].Start = minuteTime(b)
	}
	if k > 0 {
		// Copy so the dropped runs' backing array can be freed.
		m.Runs = slices.Clone(m.Runs[k:])
	}
}

// Span returns the first recorded minute and the end of the last one (zero
// times when the record is empty).
func (m Minutes) Span() (from, to time.Time) {
	if len(m.Runs) == 0 {
		return time.Time{}, time.Time{}
	}
	return m.Runs[0].Start, minuteTime(runEnd(m.Runs[len(m.Runs)-1]))
}

// Availability is the availability of the active site's services over some
// minutes.
type Availability struct {
	Minutes    int64 // minutes counted
	Up         int64
	Down       int64
	Unobserved int64   // counted as down in Ratio
	Ratio      float64 // Up / Minutes; 0 when Minutes == 0
	Known      bool    // false when Minutes == 0 (nothing to compute from)
}

// Availability is the availability over [from, to) (both truncated to their
// minutes), counting only minutes inside the record's span: before the first
// record drplane was not installed yet. If include is non-nil, only minutes
// whose start t has include(t) == true are counted; it is called once per
// such minute.
func (m Minutes) Availability(from, to time.Time, include func(time.Time) bool) Availability {
	var a Availability
	lo, hi := minuteOf(from), minuteOf(to)
	for _, r := range m.Runs {
		start := minuteOf(r.Start)
		if start >= hi {
			break
		}
		s, e := max(start, lo), min(start+r.Minutes, hi)
		if s >= e {
			continue
		}
		n := e - s
		if include != nil {
			n = 0
			for i := s; i < e; i++ {
				if include(minuteTime(i)) {
					n++
				}
			}
		}
		a.Minutes += n
		switch r.State {
		case MinuteUp:
			a.Up += n
		case MinuteUnobserved:
			a.Unobserved += n
		default:
			// Down, or a state this version does not know: not up.
			a.Down += n
		}
	}
	if a.Minutes > 0 {
		a.Ratio = float64(a.Up) / float64(a.Minutes)
		a.Known = true
	}
	return a
}
