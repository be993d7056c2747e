package hostagent

import (
	"context"
	"fmt"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/structs"
)

// restartInPlaceStep is a start step with Args[structs.ArgRestartInPlace]:
// a service of this host, at the active site, in the epoch it ran in, is
// started again as it was, because either
//   - its lease lapsed and fenced it, and the leader renewed the lease
//     again in that same epoch with this site still active, or
//   - it went down by itself (a crashed database) while this agent kept
//     answering and holding its lease;
//
// and no execution runs. Unlike a plan's start it grants no lease (see
// vouch): the service runs only under the lease the leader's probes
// renew, which the leader accounts for before any failover (invariant 4).
func (a *Agent) restartInPlaceStep(svc *service, epoch uint64) stepFunc {
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		why, err := a.restartableInPlace(ctx, svc, epoch)
		if err != nil {
			return nil, err
		}
		a.logger.Warn("restarting service in place", "service", svc.cfg.Name, "epoch", epoch, "why", why)
		svc.unfence()
		p("restarting %s in place: %s", svc.cfg.Name, why)
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
// judged from a probe, and says why the restart is due: svc was fenced
// because the lease lapsed in epoch, or it is stopped without having been
// fenced; the agent has seen no newer epoch, a leader of epoch named this
// site active, and the lease it renewed runs now. A service fenced because
// another site became active carries another reason or an older epoch,
// and is never restarted.
func (a *Agent) restartableInPlace(ctx context.Context, svc *service, epoch uint64) (string, error) {
	why := fmt.Sprintf("fenced when its lease lapsed in epoch %d, renewed since in the same epoch", epoch)
	if fenced, f := svc.isFenced(); fenced {
		if !structs.RestartableInPlace(f.cause) || f.epoch != epoch {
			return "", fmt.Errorf("service %s was fenced (%s), not by its lease lapsing in epoch %d", svc.cfg.Name, f.reason, epoch)
		}
	} else {
		st, err := svc.status(ctx)
		if err != nil {
			return "", fmt.Errorf("service %s: %w", svc.cfg.Name, err)
		}
		if st.Role != driver.RoleStopped {
			return "", fmt.Errorf("service %s is %s, neither fenced nor stopped", svc.cfg.Name, st.Role)
		}
		why = fmt.Sprintf("down (%s) while this host kept its lease of epoch %d", st.Message, epoch)
	}
	if cur := a.epoch.current(); cur != epoch {
		return "", fmt.Errorf("this agent has seen epoch %d, not %d", cur, epoch)
	}
	a.mu.Lock()
	active := a.activeSite
	a.mu.Unlock()
	if active != a.config.Site {
		return "", fmt.Errorf("site %s is not active (the leader last named %q)", a.config.Site, active)
	}
	valid, _, leaseEpoch, granted := a.lease.snapshot(a.clock.Now())
	if !valid || !granted || leaseEpoch != epoch {
		return "", fmt.Errorf("no lease of epoch %d runs (valid %t, granted %t, epoch %d)", epoch, valid, granted, leaseEpoch)
	}
	return why, nil
}
