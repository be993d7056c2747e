package health

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// defaultInterval is a Monitor's interval when none is given.
const defaultInterval = time.Second

// Result is the outcome of a Monitor's latest check.
type Result struct {
	// Healthy is true when the latest check passed; false before the
	// first check.
	Healthy bool
	// Err is the latest check's error, empty when it passed.
	Err string
	// CheckedAt is when the latest check finished; zero before the first.
	CheckedAt time.Time
	// ConsecutiveFailures counts the failed checks since the last pass.
	ConsecutiveFailures int
}

// Monitor runs one Check on an interval and keeps the latest result.
type Monitor struct {
	check    Check
	interval time.Duration
	timeout  time.Duration
	logger   hclog.Logger

	mu     sync.Mutex
	latest Result
}

// NewMonitor returns a monitor of check that runs every interval (1s when
// zero), each run bounded by timeout (the interval when zero). Nothing
// runs until Run or WaitHealthy.
func NewMonitor(check Check, interval, timeout time.Duration, logger hclog.Logger) *Monitor {
	if interval <= 0 {
		interval = defaultInterval
	}
	if timeout <= 0 {
		timeout = interval
	}
	return &Monitor{check: check, interval: interval, timeout: timeout, logger: logger.Named("health")}
}

// Run checks at once, then every interval, until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.checkOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Latest returns the latest check's result.
func (m *Monitor) Latest() Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest
}

// WaitHealthy checks at once, then every interval, until a check passes
// or ctx ends. It runs its own checks rather than trusting Latest, which
// may predate a restart of the service; their results become Latest too.
func (m *Monitor) WaitHealthy(ctx context.Context) error {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	var last error
	for {
		switch err := m.checkOnce(ctx); {
		case err == nil:
			return nil
		case ctx.Err() == nil:
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				return fmt.Errorf("wait for %s to pass: %w", m.check, ctx.Err())
			}
			return fmt.Errorf("wait for %s to pass: %w (last error: %v)", m.check, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// checkOnce runs the check and records its result, unless ctx ended
// while it ran: that failure says nothing about the service.
func (m *Monitor) checkOnce(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, m.timeout)
	err := m.check.Check(cctx)
	cancel()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	m.record(err)
	return err
}

// record stores a result and logs changes between healthy and unhealthy.
func (m *Monitor) record(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.latest
	m.latest = Result{Healthy: err == nil, CheckedAt: time.Now()}
	if err == nil {
		if !prev.Healthy && !prev.CheckedAt.IsZero() {
			m.logger.Info("health check passes again", "check", m.check.String(), "failures", prev.ConsecutiveFailures)
		}
		return
	}
	m.latest.Err = err.Error()
	m.latest.ConsecutiveFailures = prev.ConsecutiveFailures + 1
	if prev.Healthy || prev.CheckedAt.IsZero() {
		m.logger.Warn("health check failed", "check", m.check.String(), "error", err)
	}
}
