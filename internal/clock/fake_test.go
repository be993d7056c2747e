package clock

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var epoch = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// fired returns what t delivered, if anything, without waiting.
func fired(t Timer) (time.Time, bool) {
	select {
	case at := <-t.C():
		return at, true
	default:
		return time.Time{}, false
	}
}

func TestFake_TimerFiresAtItsDeadline(t *testing.T) {
	c := NewFake(epoch)
	tm := c.NewTimer(time.Second)
	c.Advance(time.Second - time.Nanosecond)
	_, ok := fired(tm)
	require.False(t, ok, "fired 1ns early")
	c.Advance(time.Nanosecond)
	at, ok := fired(tm)
	require.True(t, ok)
	require.Equal(t, epoch.Add(time.Second), at)
	require.Zero(t, c.Armed())
}

func TestFake_AdvanceFiresInOrder_AtEachDeadline(t *testing.T) {
	c := NewFake(epoch)
	late, early := c.NewTimer(3*time.Second), c.NewTimer(time.Second)
	c.Advance(time.Hour)
	at, ok := fired(early)
	require.True(t, ok)
	require.Equal(t, epoch.Add(time.Second), at)
	at, ok = fired(late)
	require.True(t, ok)
	require.Equal(t, epoch.Add(3*time.Second), at)
	require.Equal(t, epoch.Add(time.Hour), c.Now())
}

func TestFake_StopAndReset(t *testing.T) {
	c := NewFake(epoch)
	tm := c.NewTimer(time.Second)
	require.True(t, tm.Stop())
	require.False(t, tm.Stop())
	c.Advance(2 * time.Second)
	_, ok := fired(tm)
	require.False(t, ok, "a stopped timer fired")

	require.False(t, tm.Reset(time.Second))
	c.Advance(time.Second)
	// Reset drops a value not yet received, as a Go 1.23 timer does.
	require.False(t, tm.Reset(time.Second))
	_, ok = fired(tm)
	require.False(t, ok, "a stale value survived Reset")
	next, ok := c.Next()
	require.True(t, ok)
	require.Equal(t, epoch.Add(4*time.Second), next)

	require.False(t, c.NewTimer(0).Stop(), "a timer of zero fires at once")
}

func TestFake_BlockUntil(t *testing.T) {
	c := NewFake(epoch)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	passes := make(chan time.Time)
	go func() {
		tm := c.NewTimer(time.Second)
		for range 3 {
			at := <-tm.C()
			passes <- at
			tm.Reset(time.Second)
		}
		tm.Stop()
		close(passes)
	}()
	for i := range 3 {
		require.NoError(t, c.BlockUntil(ctx, 1))
		c.Advance(time.Second)
		require.Equal(t, epoch.Add(time.Duration(i+1)*time.Second), <-passes)
	}
	_, open := <-passes
	require.False(t, open)

	short, cancelShort := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancelShort()
	require.Error(t, c.BlockUntil(short, 1), "nothing is armed any more")
}
