package health

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drplane/drplane/internal/testutil"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// fakeCheck fails until healthy is set, counting its runs.
type fakeCheck struct {
	healthy atomic.Bool
	runs    atomic.Int64
}

func (c *fakeCheck) Check(context.Context) error {
	c.runs.Add(1)
	if c.healthy.Load() {
		return nil
	}
	return errors.New("service down")
}

func (c *fakeCheck) String() string { return "fake" }

// blockingCheck blocks until its context ends.
type blockingCheck struct{}

func (blockingCheck) Check(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
func (blockingCheck) String() string                  { return "blocking" }

// runMonitor runs m until the test ends.
func runMonitor(t *testing.T, m *Monitor) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { m.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func TestMonitor_Run(t *testing.T) {
	t.Parallel()
	c := &fakeCheck{}
	m := NewMonitor(c, 10*time.Millisecond, time.Second, hclog.NewNullLogger())
	require.Equal(t, Result{}, m.Latest(), "nothing before the first check")
	runMonitor(t, m)

	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		r := m.Latest()
		return r.ConsecutiveFailures >= 3, fmt.Errorf("latest %+v", r)
	})
	r := m.Latest()
	require.False(t, r.Healthy)
	require.Equal(t, "service down", r.Err)
	require.False(t, r.CheckedAt.IsZero())

	c.healthy.Store(true)
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		r := m.Latest()
		return r.Healthy, fmt.Errorf("latest %+v", r)
	})
	r = m.Latest()
	require.Empty(t, r.Err)
	require.Zero(t, r.ConsecutiveFailures)
}

func TestMonitor_RunTimeout(t *testing.T) {
	t.Parallel()
	m := NewMonitor(blockingCheck{}, 10*time.Millisecond, 20*time.Millisecond, hclog.NewNullLogger())
	runMonitor(t, m)
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		r := m.Latest()
		return r.ConsecutiveFailures >= 2, fmt.Errorf("latest %+v", r)
	})
	require.Contains(t, m.Latest().Err, "deadline exceeded")
}

func TestMonitor_WaitHealthy(t *testing.T) {
	t.Parallel()
	c := &fakeCheck{}
	m := NewMonitor(c, 10*time.Millisecond, time.Second, hclog.NewNullLogger())
	errc := make(chan error, 1)
	go func() { errc <- m.WaitHealthy(context.Background()) }()
	testutil.WaitForResult(t, 10*time.Second, func() (bool, error) {
		return c.runs.Load() >= 3, fmt.Errorf("%d runs", c.runs.Load())
	})
	select {
	case err := <-errc:
		t.Fatalf("WaitHealthy returned %v while unhealthy", err)
	default:
	}
	c.healthy.Store(true)
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("WaitHealthy did not return once healthy")
	}
	require.True(t, m.Latest().Healthy, "WaitHealthy's checks update Latest")
}

func TestMonitor_WaitHealthyContextEnds(t *testing.T) {
	t.Parallel()
	c := &fakeCheck{}
	m := NewMonitor(c, 10*time.Millisecond, time.Second, hclog.NewNullLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := m.WaitHealthy(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "wait for fake to pass")
	require.ErrorContains(t, err, "last error: service down")
}

// WaitHealthy checks again rather than trusting a result from before the
// service restarted.
func TestMonitor_WaitHealthyIgnoresStaleResult(t *testing.T) {
	t.Parallel()
	c := &fakeCheck{}
	c.healthy.Store(true)
	m := NewMonitor(c, time.Hour, time.Second, hclog.NewNullLogger())
	require.NoError(t, m.WaitHealthy(context.Background()))
	require.True(t, m.Latest().Healthy)

	c.healthy.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, m.WaitHealthy(ctx), context.DeadlineExceeded)
	require.False(t, m.Latest().Healthy)
}
