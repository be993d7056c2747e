package hostagent

import (
	"fmt"

	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// fence is why and in which epoch the agent fenced a service. The leader
// decides a restart in place on cause and epoch, which travel as fields of
// the probe response; reason is only shown to operators.
type fence struct {
	cause  pb.FenceCause
	epoch  uint64
	reason string
}

// leaseLapsedFence is the fence of a service whose lease, granted by a
// leader in epoch, lapsed without a renewal; extra, when set, says who
// fenced it (the lease guard).
func leaseLapsedFence(epoch uint64, extra string) fence {
	reason := fmt.Sprintf("lease expired in epoch %d: no renewal from a leader within lease_ttl", epoch)
	if extra != "" {
		reason += " (" + extra + ")"
	}
	return fence{cause: pb.FenceCause_FENCE_CAUSE_LEASE_LAPSED, epoch: epoch, reason: reason}
}

// planFence is the fence of a fence step of an execution.
func planFence(executionID string, epoch uint64) fence {
	return fence{cause: pb.FenceCause_FENCE_CAUSE_PLAN_STEP, epoch: epoch,
		reason: "fenced by the leader (execution " + executionID + ")"}
}

// lapseFence is the fence the agent's own fencer applies once the lease
// is no longer valid. The cause separates a lease a leader granted and
// did not renew (restartable in place) from a boot window no leader ever
// renewed (invariant 5; restartable in place too) and from a lease a
// leader revoked because it named another site active (invariant 1;
// never restarted in place).
func (a *Agent) lapseFence() fence {
	epoch := a.epoch.current()
	active, _ := a.siteState()
	_, _, _, granted := a.lease.snapshot(a.clock.Now())
	switch {
	case active != "" && active != a.config.Site:
		return fence{cause: pb.FenceCause_FENCE_CAUSE_OTHER_SITE_ACTIVE, epoch: epoch,
			reason: fmt.Sprintf("lease expired in epoch %d: a leader named site %s active", epoch, active)}
	case !granted:
		return fence{cause: pb.FenceCause_FENCE_CAUSE_BOOT_WINDOW, epoch: epoch,
			reason: fmt.Sprintf("lease expired in epoch %d: no renewal from a leader within the boot window", epoch)}
	}
	return leaseLapsedFence(epoch, "")
}
