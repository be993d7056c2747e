// Package driver defines how a host agent manages one service: start,
// stop, role and, for replicated data services, promote and demote. Each
// implementation (process, systemd, postgres) lives in its own file; the
// agent talks to them only through these interfaces.
package driver

import (
	"context"
	"errors"
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
	// LastReceivedAt is when a streaming standby last heard from its
	// primary (WAL or keepalive). With nothing left to replay, everything
	// the primary had sent by then is safe here: what a failover would
	// lose is at most what was written after it.
	LastReceivedAt time.Time
	// SynchronousStandbyNames is, on a primary, the setting in effect
	// for new sessions, as structs.SyncStandbyNames formats what drplane
	// sets ("" when commits wait for no standby).
	SynchronousStandbyNames string
	// Standbys are, on a primary, the standbys streaming from it.
	Standbys []StandbyReplication
	// ApplicationName is, on a standby, the name it streams as: the one
	// its primary lists it under in Standbys.
	ApplicationName string
}

// StandbyReplication is one standby as its primary sees it. State and
// SyncState are spelt as PostgreSQL's pg_stat_replication spells them
// ("streaming", "sync"); structs maps them to the wire's enums.
type StandbyReplication struct {
	ApplicationName string
	// ClientAddr is the standby's address; empty over a unix socket.
	ClientAddr string
	State      string
	SyncState  string
	// FlushPosition is the newest WAL position the standby flushed: a
	// commit that waited for it is there. Empty until it reported one.
	FlushPosition  string
	ReplayPosition string
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
	Promote(ctx context.Context, opts PromoteOptions, p Progress) (position string, err error)
	// Demote turns this service into a standby of the primary at
	// upstream, rewinding or re-cloning its data as needed.
	Demote(ctx context.Context, upstream Upstream, p Progress) error
}

// PromoteOptions are how a promote step wants the new primary to run.
type PromoteOptions struct {
	// SyncStandbys are the standbys the new primary waits for before it
	// acknowledges a commit, as structs.ParseSyncStandbys returns them:
	// none when empty, any one for [structs.SyncAnyStandby]. They are in
	// effect before it takes its first write, so a setting it inherited
	// from its old primary never holds it up.
	SyncStandbys []string
}

// SyncStandbySetter is implemented by drivers of data services whose
// primary can wait for standbys before acknowledging a commit.
type SyncStandbySetter interface {
	// SetSyncStandbys sets which standbys the primary waits for (names as
	// structs.ParseSyncStandbys returns them) and returns, once the
	// setting is in effect for new sessions, the primary's current WAL
	// position. Setting what is in effect changes nothing.
	SetSyncStandbys(ctx context.Context, names []string, p Progress) (position string, err error)
}

// FollowChecker is implemented by drivers of replicated data services
// that can tell whom a standby follows: a demote step re-sent after the
// agent stopped while it ran is found done without demoting again.
type FollowChecker interface {
	// Follows reports whether the service runs as a standby streaming
	// from upstream.
	Follows(ctx context.Context, upstream Upstream) (bool, error)
}

// Upstream is the primary a demoted service follows. It arrives as step
// arguments: data, never a command line.
type Upstream struct {
	Host string
	Port int
}

// ErrNoFinalPosition is wrapped by FinalPosition when the service has no
// final position to report: it runs, it was a standby, or it was not
// stopped cleanly (so what its standbys received is unknown).
var ErrNoFinalPosition = errors.New("no final position")

// FinalPositioner is implemented by drivers of replicated data services
// that can say where a cleanly stopped primary's history ends. A
// switchover waits until the standby replayed past that position before
// promoting it: zero data loss. It is separate from Driver.Stop so that
// stopping stays the same for every driver.
type FinalPositioner interface {
	// FinalPosition returns the position of the shutdown record the last
	// clean stop of the primary wrote (PostgreSQL: the shutdown
	// checkpoint's LSN), or an error wrapping ErrNoFinalPosition.
	FinalPosition(ctx context.Context) (string, error)
}

// ReplayWaiter is implemented by drivers of replicated data services
// whose standbys report how far they replayed.
type ReplayWaiter interface {
	// WaitReplayed waits until this standby replayed strictly past the
	// position after, reporting progress, and returns its replay
	// position. It gives up when ctx ends.
	WaitReplayed(ctx context.Context, after string, p Progress) (position string, err error)
}

// Drill is one isolated copy of a service, started for a non-disruptive
// DR test. The copy has its own data and directory, holds no production
// role, and never replaces the service itself.
type Drill struct {
	// ID names the drill; the agent validated it ([A-Za-z0-9-]{1,64}).
	ID string
	// Dir is the copy's own directory, <agent data_dir>/drill/<id>/<service>:
	// its data, pid file and log live there, so a restarted agent can
	// still find and stop it. StopDrill removes it.
	Dir string
	// Port is where a database copy listens instead of the service's port.
	Port int
	// Command replaces a process service's command; empty keeps it.
	Command []string
	// Env is merged over a process service's environment.
	Env map[string]string
}

// Driller is implemented by drivers that can run a drill copy of their
// service beside the service itself.
type Driller interface {
	// StartDrill starts the copy, or adopts it when it already runs, and
	// returns once it serves.
	StartDrill(ctx context.Context, d Drill, p Progress) error
	// CheckDrill checks once that the copy runs and serves.
	CheckDrill(ctx context.Context, d Drill, p Progress) error
	// StopDrill stops the copy and removes d.Dir. It reports false, and
	// succeeds, when there is no copy (already cleaned up).
	StopDrill(ctx context.Context, d Drill, p Progress) (existed bool, err error)
}
