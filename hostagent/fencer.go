package hostagent

import (
	"context"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
)

// fencerInterval is how often the agent checks its lease. It bounds how
// long a primary outlives its lease, so it is small against lease_ttl.
const fencerInterval = 50 * time.Millisecond

// lapsedRecheck is how often services are checked again while the lease
// stays lapsed (every host outside the active site, all the time): a
// primary appearing there without a leader's instruction is someone
// working around drplane, and a second is soon enough, where reading every
// service's status 20 times a second would load every standby host.
const lapsedRecheck = time.Second

// runFencer fences every primary-role service once the lease lapses
// (invariant 4). At boot the lease is the boot window, so an adopted
// primary nobody vouches for is fenced too (invariant 5). It checks every
// fencerInterval on the agent's clock, re-arming one timer after each
// pass, so a test in virtual time knows when a pass is over.
func (a *Agent) runFencer(ctx context.Context) {
	t := a.clock.NewTimer(fencerInterval)
	defer t.Stop()
	var lastPass time.Time
	wasValid := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		now := a.clock.Now()
		// What a guard fenced while this agent could not act (frozen, or
		// before it started) is marked fenced first, before a restart
		// policy or a renewed lease could bring it back as primary.
		a.applyGuardFences(ctx)
		if a.guard != nil {
			a.guard.update(now, a.lease.deadline(), a.epoch.current(), a.guardTargets())
		}
		valid := a.lease.valid(now)
		lapsedNow := wasValid && !valid
		wasValid = valid
		if !valid && (lapsedNow || now.Sub(lastPass) >= lapsedRecheck) {
			lastPass = now
			a.fenceAll(ctx, a.lapseFence())
		}
		t.Reset(fencerInterval)
	}
}

// fenceAll stops every service that runs in the primary role.
func (a *Agent) fenceAll(ctx context.Context, f fence) (fenced []string) {
	for _, name := range a.order {
		svc := a.services[name]
		st, err := svc.driver.Status(ctx)
		svc.observe(st, err)
		switch {
		case err != nil:
			// A service whose role cannot be read may be a primary: stop
			// it rather than risk two writers. A fenced one is already
			// stopped, and one last seen as a standby stays one: stopping
			// a DR standby on a failed read would cost the protection.
			if fenced, _ := svc.isFenced(); fenced || svc.knownNotPrimary() {
				continue
			}
			a.logger.Warn("fencing service whose status cannot be read", "service", name, "reason", f.reason, "error", err)
		case st.Role != driver.RolePrimary:
			continue
		default:
			a.logger.Warn("fencing service", "service", name, "reason", f.reason)
		}
		if err := a.fenceService(ctx, svc, f, nil); err != nil {
			a.logger.Error("failed to fence service", "service", name, "error", err)
			continue
		}
		fenced = append(fenced, name)
	}
	return fenced
}

// fenceService stops one service and marks it fenced. Stopping a
// PostgreSQL primary is its fence: a stopped primary accepts no writes,
// and it is rejoined as a standby before it runs again.
func (a *Agent) fenceService(ctx context.Context, svc *service, f fence, p driver.Progress) error {
	svc.setFence(f)
	if p == nil {
		p = func(string, ...any) {}
	}
	return svc.driver.Stop(ctx, p)
}
