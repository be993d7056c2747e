package plan

import (
	"fmt"
	"time"
)

// failover: fence, guard, activate, lease-wait, then bring the target up.
func (b *builder) failover(maxDataLoss time.Duration) {
	A, T := b.from, b.to
	var fences []string
	for _, a := range A.agents {
		s := agentStep("fence@"+a.HostID, PhaseFence, ActionFence, a, "")
		s.OnFailure = OnFailureContinue
		s.Description = fmt.Sprintf("fence every primary-role service on %s (best effort: the site may be down)", a.HostID)
		fences = append(fences, b.add(s))
	}
	guard := b.add(Step{ID: "guard", Phase: PhaseGuard, Action: ActionGuard, Args: map[string]string{"site": T.name}, DependsOn: fences,
		Description: fmt.Sprintf("refuse when the replication lag at %s exceeds max_data_loss %s (unless data loss is allowed)", T.name, fmtDuration(maxDataLoss))})
	act := b.add(Step{ID: "activate:" + T.name, Phase: PhaseActivate, Action: ActionActivate, Target: T.name, DependsOn: []string{guard},
		Description: fmt.Sprintf("make %s the active site and bump the epoch", T.name)})
	lw := b.add(Step{ID: "lease-wait:" + A.name, Phase: PhaseActivate, Action: ActionLeaseWait, Args: map[string]string{"site": A.name},
		DependsOn: []string{act}, Description: fmt.Sprintf("wait until every lease of %s's agents has lapsed", A.name)})
	b.bringUp([]string{lw})
	b.warnMissing()
}
