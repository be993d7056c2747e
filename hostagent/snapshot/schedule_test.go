package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testutil"
	"github.com/stretchr/testify/require"
)

// fakeClock is a Clock whose time moves and whose ticker fires only when
// the test says so. The ticker channel is unbuffered: a send returns once
// the scheduler has taken the tick, which is after it finished the one
// before.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	every time.Duration
	tick  chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, tick: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTicker(d time.Duration) Ticker {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.every = d
	return fakeTicker{c.tick}
}

// advance moves time on by one interval and fires the ticker.
func (c *fakeClock) advance() {
	c.mu.Lock()
	c.now = c.now.Add(c.every)
	now := c.now
	c.mu.Unlock()
	c.tick <- now
}

type fakeTicker struct{ c chan time.Time }

func (t fakeTicker) C() <-chan time.Time { return t.c }
func (fakeTicker) Stop()                 {}

// flakyEngine fails the Creates whose turn is in fail.
type flakyEngine struct {
	*Fake
	calls atomic.Int32
	fail  map[int32]bool
}

func (e *flakyEngine) Create(ctx context.Context, name string, paths []string, reason string) (Meta, error) {
	if e.fail[e.calls.Add(1)] {
		return Meta{}, errors.New("injected failure")
	}
	return e.Fake.Create(ctx, name, paths, reason)
}

// runSchedule starts RunSchedule and returns a function that stops it and
// waits for it to return.
func runSchedule(m *Manager, s Schedule) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.RunSchedule(ctx, s)
	}()
	return func() {
		cancel()
		<-done
	}
}

func TestManager_RunSchedule_CreatesAndPrunes(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	// The third Create fails: it is logged and the next tick carries on.
	engine := &flakyEngine{Fake: NewFake(), fail: map[int32]bool{3: true}}
	engine.Now = clock.Now
	m := NewManager(engine, testLogger(t), WithClock(clock))
	stop := runSchedule(m, Schedule{Name: "state", Paths: []string{"/var/lib/state"}, Every: time.Hour, KeepLast: 2})

	// With no snapshot yet, one is taken at once; then one per tick.
	for range 5 {
		clock.advance()
	}
	// The send of the last tick returns before its run finishes.
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		n := len(engine.Deleted())
		return n == 3, fmt.Errorf("%d snapshots deleted, want 3", n)
	})
	stop()

	list, err := engine.List(context.Background(), "state")
	require.NoError(t, err)
	// Creates at 0h, 1h, (2h failed), 3h, 4h, 5h; the newest two kept.
	require.Equal(t, []string{"state-000005", "state-000004"}, metaIDs(list))
	require.Equal(t, []string{"state-000001", "state-000002", "state-000003"}, engine.Deleted())
	for _, meta := range list {
		require.Equal(t, ReasonScheduled, meta.Reason)
	}
	require.Equal(t, clock.Now(), list[0].CreatedAt)
}

func TestManager_RunSchedule_NotDueWaitsForTick(t *testing.T) {
	start := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	clock := newFakeClock(start)
	engine := NewFake()
	engine.Now = clock.Now
	engine.Add(Meta{ID: "state-recent", Name: "state", CreatedAt: start.Add(-10 * time.Minute)})
	m := NewManager(engine, testLogger(t), WithClock(clock))
	stop := runSchedule(m, Schedule{Name: "state", Paths: []string{"/var/lib/state"}, Every: time.Hour})

	clock.advance()
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		list, err := engine.List(context.Background(), "state")
		return err == nil && len(list) == 2, fmt.Errorf("%d snapshots, want 2 (error %v)", len(list), err)
	})
	stop()
	list, err := engine.List(context.Background(), "state")
	require.NoError(t, err)
	// One from the tick only; no retention policy, so nothing deleted.
	require.Equal(t, []string{"state-000001", "state-recent"}, metaIDs(list))
	require.Empty(t, engine.Deleted())
}

func TestManager_RunSchedule_NoInterval(t *testing.T) {
	m := NewManager(NewFake(), testLogger(t), WithClock(newFakeClock(time.Now())))
	// Returns at once instead of spinning.
	m.RunSchedule(context.Background(), Schedule{Name: "state", Paths: []string{"/x"}})
}
