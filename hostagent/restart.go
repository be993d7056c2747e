package hostagent

import (
	"context"
	"fmt"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/structs"
)

// restartInPlaceStep is a start step with Args[structs.ArgRestartInPlace]: the
// leader renewed this host's lease again in the epoch in which the lease
// lapsed, with this site still active, and no execution runs, so the
// service, a primary of this very epoch and site, may run again as it
// was. Unlike a plan's start it grants no lease (see vouch): the service
// runs only under the lease the leader's probes renew, which the leader
// accounts for before any failover (invariant 4).
func (a *Agent) restartInPlaceStep(svc *service, epoch uint64) stepFunc {
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		if err := a.restartableInPlace(svc, epoch); err != nil {
			return nil, err
		}
		a.logger.Warn("restarting fenced service in place", "service", svc.cfg.Name, "epoch", epoch)
		svc.unfence()
		p("restarting %s in place: fenced when its lease lapsed in epoch %d, renewed since in the same epoch", svc.cfg.Name, epoch)
		if err := svc.driver.Start(ctx, p); err != nil {
			return nil, err
		}
		if svc.monitor == nil {
			return nil, nil
		}
		p("waiting for %s to pass its health check", svc.cfg.Name)
		return nil, svc.monitor.WaitHealthy(ctx)
	}
}

// restartableInPlace checks, on the agent's own state, what the leader
// judged from a probe: svc was fenced because the lease lapsed in epoch,
// the agent has seen no newer epoch, a leader of epoch named this site
// active, and the lease it renewed runs now. A service fenced because
// another site became active carries another reason or an older epoch,
// and is never restarted.
func (a *Agent) restartableInPlace(svc *service, epoch uint64) error {
	fenced, f := svc.isFenced()
	if !fenced {
		return fmt.Errorf("service %s is not fenced", svc.cfg.Name)
	}
	if !structs.RestartableInPlace(f.cause) || f.epoch != epoch {
		return fmt.Errorf("service %s was fenced (%s), not by its lease lapsing in epoch %d", svc.cfg.Name, f.reason, epoch)
	}
	if cur := a.epoch.current(); cur != epoch {
		return fmt.Errorf("this agent has seen epoch %d, not %d", cur, epoch)
	}
	a.mu.Lock()
	active := a.activeSite
	a.mu.Unlock()
	if active != a.config.Site {
		return fmt.Errorf("site %s is not active (the leader last named %q)", a.config.Site, active)
	}
	valid, _, leaseEpoch, granted := a.lease.snapshot(a.clock.Now())
	if !valid || !granted || leaseEpoch != epoch {
		return fmt.Errorf("no lease of epoch %d runs (valid %t, granted %t, epoch %d)", epoch, valid, granted, leaseEpoch)
	}
	return nil
}
