// Package health runs a service's health check: an HTTP request, a TCP
// connect, a command or a SQL query. A Monitor runs one check on an
// interval for the agent's status reports and gates a start step on the
// service passing it.
package health

import (
	"context"
	"time"
)

// defaultTimeout bounds a check built with a zero or negative timeout.
const defaultTimeout = 5 * time.Second

// Check is one way to tell whether a service serves. Implementations are
// safe for concurrent use.
type Check interface {
	// Check returns nil when healthy; the error says what failed.
	Check(ctx context.Context) error
	// String describes the check for operators, e.g.
	// "http GET http://127.0.0.1:8004/health".
	String() string
}

// withTimeout bounds ctx by timeout, or by defaultTimeout when timeout is
// not positive.
func withTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return context.WithTimeout(ctx, timeout)
}
