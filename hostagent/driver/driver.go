// Package driver defines how a host agent manages one service: start,
// stop, role and, for replicated data services, promote and demote. Each
// implementation (process, systemd, postgres) lives in its own file; the
// agent talks to them only through these interfaces.
package driver

import (
	"context"
	"time"
)

// Role is what a service is on this host right now.
type Role string

const (
	// RolePrimary is a service that serves: a writable database, or a
	// running application process.
	RolePrimary Role = "primary"
	// RoleStandby is a replica following a primary elsewhere.
	RoleStandby Role = "standby"
	// RoleStopped is a service that is not running.
	RoleStopped Role = "stopped"
	// RoleFenced is a service the agent stopped or demoted because the
	// host lost its lease; the agent sets it, drivers never report it.
	RoleFenced Role = "fenced"
)

// Status is a driver's view of its service.
type Status struct {
	Role Role
	// Message explains the role or a problem, for operators.
	Message string
	// Replication is set by data services.
	Replication *Replication
}

// Replication is a data service's replication position and lag.
type Replication struct {
	// Position is the primary's current WAL LSN, or a standby's replay LSN.
	Position string
	// ReceivePosition is a standby's last received LSN.
	ReceivePosition string
	// LastReplayAt is the commit time of the last replayed transaction.
	LastReplayAt time.Time
	// Lag is now minus LastReplayAt on a standby with replay pending.
	Lag time.Duration
	// LagBytes is received minus replayed WAL on a standby.
	LagBytes uint64
}

// Progress receives human-readable progress lines while a step runs; the
// agent streams them to the leader.
type Progress func(format string, args ...any)

// Driver manages one service. Every method is safe to call whatever the
// service's state: Start on a running service and Stop on a stopped one
// succeed without doing anything, which is what makes re-sent steps safe.
type Driver interface {
	// Status reports the service's role without changing anything.
	Status(ctx context.Context) (Status, error)
	// Start starts the service, or adopts it when it already runs.
	Start(ctx context.Context, p Progress) error
	// Stop stops the service gracefully, then forcibly after its stop
	// timeout.
	Stop(ctx context.Context, p Progress) error
}

// Promoter is implemented by drivers of replicated data services.
type Promoter interface {
	// Promote makes a standby the primary and returns the position at
	// which it became writable (e.g. the PostgreSQL LSN).
	Promote(ctx context.Context, p Progress) (position string, err error)
	// Demote turns this service into a standby of the primary at
	// upstream, rewinding or re-cloning its data as needed.
	Demote(ctx context.Context, upstream Upstream, p Progress) error
}

// Upstream is the primary a demoted service follows. It arrives as step
// arguments: data, never a command line.
type Upstream struct {
	Host string
	Port int
}
