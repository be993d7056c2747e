package driver

import (
	"context"
	"sync"
)

// Fake is an in-memory service for tests of the agent and the control
// plane, as raft's in-memory transport is for raft: it records calls and
// can hold a start until released.
type Fake struct {
	mu       sync.Mutex
	role     Role
	starts   int
	stops    int
	promotes int
	demotes  int
	// StartAs is the role Start leaves the service in.
	StartAs Role
	// Block, when set before Start, makes Start wait until it is closed.
	Block chan struct{}
}

// NewFake returns a fake service currently in role.
func NewFake(role Role) *Fake {
	return &Fake{role: role, StartAs: RolePrimary}
}

// Status reports the current role.
func (f *Fake) Status(context.Context) (Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Status{Role: f.role}, nil
}

// Start counts the call, waits for Block if set, and takes StartAs.
func (f *Fake) Start(ctx context.Context, p Progress) error {
	f.mu.Lock()
	f.starts++
	block := f.Block
	f.mu.Unlock()
	p("starting")
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.role = f.StartAs
	return nil
}

// Stop counts the call and stops.
func (f *Fake) Stop(context.Context, Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
	f.role = RoleStopped
	return nil
}

// Promote makes the fake primary.
func (f *Fake) Promote(context.Context, Progress) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.promotes++
	f.role = RolePrimary
	return "0/3000060", nil
}

// Demote makes the fake a standby.
func (f *Fake) Demote(context.Context, Upstream, Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.demotes++
	f.role = RoleStandby
	return nil
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
