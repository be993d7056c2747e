package clock

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Fake is a virtual clock for tests: its time moves only when the test
// calls Advance, and its timers fire then, in the order of their
// deadlines, each at its own instant. A test that must know a goroutine
// has finished reacting to a timer and waits on the next one calls
// BlockUntil, which returns once that many timers are armed: code under
// test that re-arms one timer per pass (rather than a ticker) makes this
// exact.
//
// A timer armed by a goroutine that no longer waits on it (a select that
// took another case without stopping it) stays armed; code under virtual
// time stops the timers it abandons.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	armed  map[*fakeTimer]struct{}
	change chan struct{} // closed and replaced whenever armed changes
}

// NewFake returns a virtual clock reading start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, armed: map[*fakeTimer]struct{}{}, change: make(chan struct{})}
}

// Now returns the virtual time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer firing when the virtual time reaches now+d; at
// once when d <= 0.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.armLocked(d)
	return t
}

// Advance moves the virtual time d forward, firing every timer whose
// deadline it passes or reaches; the clock reads each timer's deadline
// while it fires.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	for {
		t := f.nextLocked()
		if t == nil || t.when.After(end) {
			break
		}
		f.now = t.when
		t.fireLocked()
	}
	f.now = end
}

// Next returns the deadline of the earliest armed timer, and false when
// none is armed.
func (f *Fake) Next() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.nextLocked(); t != nil {
		return t.when, true
	}
	return time.Time{}, false
}

// Armed returns how many timers are armed.
func (f *Fake) Armed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.armed)
}

// BlockUntil waits until at least n timers are armed: the goroutines
// under test have reacted to what fired and wait again. It fails when ctx
// ends first.
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		armed, change := len(f.armed), f.change
		f.mu.Unlock()
		if armed >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d timers armed, waiting for %d: %w", armed, n, ctx.Err())
		case <-change:
		}
	}
}

// nextLocked returns the armed timer due first; among equal deadlines, the
// one armed first.
func (f *Fake) nextLocked() *fakeTimer {
	var next *fakeTimer
	for t := range f.armed {
		if next == nil || t.when.Before(next.when) || (t.when.Equal(next.when) && t.seq < next.seq) {
			next = t
		}
	}
	return next
}

func (f *Fake) changedLocked() {
	close(f.change)
	f.change = make(chan struct{})
}

// fakeTimer is a Fake's timer. Its channel holds one value, as a real
// timer's; Stop and Reset drain it.
type fakeTimer struct {
	f    *Fake
	c    chan time.Time
	when time.Time
	seq  uint64
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.disarmLocked()
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.disarmLocked()
	t.armLocked(d)
	return was
}

// armLocked arms the timer d after the clock's time, firing at once when
// d <= 0.
func (t *fakeTimer) armLocked(d time.Duration) {
	f := t.f
	f.seq++
	t.when, t.seq = f.now.Add(d), f.seq
	if d <= 0 {
		t.fireLocked()
		return
	}
	f.armed[t] = struct{}{}
	f.changedLocked()
}

// disarmLocked disarms the timer and drops a value not yet received.
func (t *fakeTimer) disarmLocked() bool {
	select {
	case <-t.c:
	default:
	}
	_, was := t.f.armed[t]
	if was {
		delete(t.f.armed, t)
		t.f.changedLocked()
	}
	return was
}

// fireLocked disarms the timer and delivers its deadline.
func (t *fakeTimer) fireLocked() {
	if _, ok := t.f.armed[t]; ok {
		delete(t.f.armed, t)
		t.f.changedLocked()
	}
	select {
	case t.c <- t.when:
	default:
	}
}
