package driver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/structs"
)

// Fake is an in-memory service for tests of the agent and the control
// plane, as raft's in-memory transport is for raft: it records calls, can
// hold a start until released, and can fail an operation on demand.
type Fake struct {
	mu       sync.Mutex
	role     Role
	starts   int
	stops    int
	promotes int
	demotes  int
	drills   map[string]bool
	// replication, when set, replaces what a running fake reports.
	replication *Replication
	// StartAs is the role Start leaves the service in.
	StartAs Role
	// Block, when set before Start, makes Start wait until it is closed.
	Block chan struct{}
	// StopBlock, when set before Stop, makes Stop wait until it is
	// closed or ctx ends; it then stops.
	StopBlock chan struct{}
	// PromoteHold, when set before Promote, makes Promote wait after the
	// fake became primary until it is closed or ctx ends: a promote whose
	// effect happened but whose answer is lost when the agent stops.
	PromoteHold chan struct{}
	// upstream is whom the fake follows after Demote.
	upstream Upstream
	// syncNames is the synchronous_standby_names the fake primary runs
	// with, set by SetSyncStandbys and Promote; syncSets counts the
	// SetSyncStandbys calls that succeeded.
	syncNames string
	syncSets  int
	// standbys are what a fake primary reports streaming from it.
	standbys []StandbyReplication
	// failures, when set for an operation ("start", "stop", "promote",
	// "catchup", "set-sync"), makes it fail with that error instead.
	failures map[string]error
}

// FailWith makes op ("start", "stop", "promote", "catchup" or
// "set-sync") fail with err from now on; a nil err makes it work again.
func (f *Fake) FailWith(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures == nil {
		f.failures = map[string]error{}
	}
	f.failures[op] = err
}

// failure is the error op fails with, if any.
func (f *Fake) failure(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failures[op]
}

// NewFake returns a fake service currently in role.
func NewFake(role Role) *Fake {
	return &Fake{role: role, StartAs: RolePrimary}
}

// FakePosition is the replication position every fake data service
// reports: fake standbys are always caught up with fake primaries.
const FakePosition = "0/3000060"

// Status reports the current role; a running fake reports FakePosition,
// and a primary its synchronous standby setting and its standbys.
func (f *Fake) Status(context.Context) (Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{Role: f.role}
	if f.role == RolePrimary || f.role == RoleStandby {
		st.Replication = &Replication{Position: FakePosition, ReceivePosition: FakePosition}
		if f.role == RoleStandby {
			st.Replication.LastReceivedAt = time.Now()
		}
		if f.replication != nil {
			r := *f.replication
			st.Replication = &r
		}
	}
	if f.role == RolePrimary {
		st.Replication.SynchronousStandbyNames = f.syncNames
		st.Replication.Standbys = slices.Clone(f.standbys)
	}
	return st, nil
}

// SetStandbys makes a fake primary report standbys streaming from it.
func (f *Fake) SetStandbys(standbys []StandbyReplication) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.standbys = slices.Clone(standbys)
}

// SetSyncStandbys records the setting on a fake primary and returns
// FakePosition.
func (f *Fake) SetSyncStandbys(_ context.Context, names []string, p Progress) (string, error) {
	if err := f.failure("set-sync"); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.role != RolePrimary {
		return "", fmt.Errorf("fake is %s, not primary", f.role)
	}
	f.syncNames = structs.SyncStandbyNames(names)
	f.syncSets++
	p("synchronous_standby_names = '%s' at %s", f.syncNames, FakePosition)
	return FakePosition, nil
}

// SyncStandbyNames returns the fake's setting and how many
// SetSyncStandbys calls succeeded.
func (f *Fake) SyncStandbyNames() (setting string, sets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncNames, f.syncSets
}

// SetReplication makes the fake report r, for example a lagging standby.
func (f *Fake) SetReplication(r Replication) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replication = &r
}

// ClearReplication undoes SetReplication: the fake reports a caught-up
// replication again, a standby receiving at each status.
func (f *Fake) ClearReplication() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replication = nil
}

// FinalPosition is the position a cleanly stopped fake primary wrote last.
func (f *Fake) FinalPosition(context.Context) (string, error) {
	return "0/3000028", nil
}

// WaitReplayed returns at once: a fake standby has replayed everything.
func (f *Fake) WaitReplayed(_ context.Context, after string, p Progress) (string, error) {
	if err := f.failure("catchup"); err != nil {
		return "", err
	}
	p("replayed %s, past %s", FakePosition, after)
	return FakePosition, nil
}

// StartDrill records a drill copy.
func (f *Fake) StartDrill(_ context.Context, d Drill, p Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.drills == nil {
		f.drills = map[string]bool{}
	}
	f.drills[d.ID] = true
	p("drill copy %s started", d.ID)
	return nil
}

// CheckDrill succeeds while the copy exists.
func (f *Fake) CheckDrill(_ context.Context, d Drill, _ Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.drills[d.ID] {
		return fmt.Errorf("no drill copy %s", d.ID)
	}
	return nil
}

// StopDrill removes the copy.
func (f *Fake) StopDrill(_ context.Context, d Drill, _ Progress) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	existed := f.drills[d.ID]
	delete(f.drills, d.ID)
	return existed, nil
}

// Drills returns the ids of the drill copies that exist.
func (f *Fake) Drills() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.drills {
		ids = append(ids, id)
	}
	return ids
}

// Start counts the call, waits for Block if set, and takes StartAs.
func (f *Fake) Start(ctx context.Context, p Progress) error {
	if err := f.failure("start"); err != nil {
		return err
	}
	f.mu.Lock()
	f.starts++
	block := f.Block
	f.mu.Unlock()
	p("starting")
	if err := awaitRelease(ctx, block); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.role = f.StartAs
	return nil
}

// Stop waits for StopBlock if set, counts the call and stops.
func (f *Fake) Stop(ctx context.Context, _ Progress) error {
	if err := f.failure("stop"); err != nil {
		return err
	}
	f.mu.Lock()
	block := f.StopBlock
	f.mu.Unlock()
	if err := awaitRelease(ctx, block); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
	f.role = RoleStopped
	return nil
}

// Promote makes the fake primary, with the synchronous standbys of opts
// unless it was primary, then waits for PromoteHold if set.
func (f *Fake) Promote(ctx context.Context, opts PromoteOptions, p Progress) (string, error) {
	if err := f.failure("promote"); err != nil {
		return "", err
	}
	f.mu.Lock()
	f.promotes++
	if f.role != RolePrimary {
		// As Postgres, which leaves a primary's setting alone.
		f.syncNames = structs.SyncStandbyNames(opts.SyncStandbys)
	}
	f.role = RolePrimary
	hold := f.PromoteHold
	f.mu.Unlock()
	if hold != nil {
		p("writable at %s; checkpointing", FakePosition)
	}
	if err := awaitRelease(ctx, hold); err != nil {
		return "", err
	}
	return FakePosition, nil
}

// Demote makes the fake a standby of up.
func (f *Fake) Demote(_ context.Context, up Upstream, _ Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.demotes++
	f.role, f.upstream = RoleStandby, up
	return nil
}

// Follows reports whether the fake is a standby of up.
func (f *Fake) Follows(_ context.Context, up Upstream) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.role == RoleStandby && f.upstream == up, nil
}

// Transitions returns how often Promote and Demote ran.
func (f *Fake) Transitions() (promotes, demotes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.promotes, f.demotes
}

// Counts returns how often Start and Stop ran.
func (f *Fake) Counts() (starts, stops int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts, f.stops
}

// Role returns the current role.
func (f *Fake) Role() Role {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.role
}

// Crash stops the service without a call: a database that died by itself.
func (f *Fake) Crash() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.role = RoleStopped
}

// awaitRelease waits until block is closed or ctx ends; a nil block does
// not wait.
func awaitRelease(ctx context.Context, block chan struct{}) error {
	if block == nil {
		return nil
	}
	select {
	case <-block:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
