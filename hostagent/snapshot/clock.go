package snapshot

import "time"

// Clock is the scheduler's source of time. The real one wraps package time;
// tests pass a fake whose ticks they send by hand, so no test waits.
type Clock interface {
	Now() time.Time
	// NewTicker returns a ticker firing every d.
	NewTicker(d time.Duration) Ticker
}

// Ticker is the part of time.Ticker the scheduler uses.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// realClock is the Clock of package time.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }
