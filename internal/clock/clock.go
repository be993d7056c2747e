// Package clock is the source of time for the lease arithmetic of the
// leader and the agent (DESIGN.md sections 4 and 5): the real clock in
// production, a virtual one in tests, so that a rule such as "the lease
// lapses lease_ttl after the renewal arrived" is checked to the nanosecond
// without a test waiting for it.
package clock

import "time"

// Clock is what the lease code needs of package time: the current instant
// and timers. Every instant it returns carries a monotonic reading when
// the clock is real, so a lease measured on it is not moved by a change
// of the wall clock.
type Clock interface {
	// Now returns the current instant.
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of time.Timer the lease code uses. As with time.Timer
// since Go 1.23, Stop and Reset leave no stale value in the channel.
type Timer interface {
	// C delivers the instant the timer fired.
	C() <-chan time.Time
	// Stop disarms the timer; it reports whether the timer was armed.
	Stop() bool
	// Reset arms the timer to fire d from now; it reports whether the
	// timer was armed.
	Reset(d time.Duration) bool
}

// Real returns the clock of package time.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// OrReal returns c, or the real clock when c is nil: the default of the
// Deps fields that inject a clock.
func OrReal(c Clock) Clock {
	if c == nil {
		return Real()
	}
	return c
}
