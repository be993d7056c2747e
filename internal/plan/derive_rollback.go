package plan

import (
	"fmt"
	"slices"
)

// rollbackRank lists the rollback steps after every other step.
const rollbackRank = 1e6

// rollback adds, for every service a stop step of the plan stops at the
// original site (the drain, the demote, an operator's stop), a Rollback
// step that starts it again on the same host: after its stop steps ended
// in any way, and after the rollback of the services it depends on, so
// the site comes back in dependency order, each start health-gated by the
// agent. It runs after the operator's extensions so that their stops are
// undone too; no operator step can depend on it.
func (b *builder) rollback() {
	A := b.from
	stops := map[string][]string{} // "service@host" -> its stop steps
	for _, st := range b.steps {
		if st.Action == ActionStop && st.Site == A.name && A.svc[st.Target] != nil {
			key := st.Target + "@" + st.Host
			stops[key] = append(stops[key], st.ID)
		}
	}
	if len(stops) == 0 {
		return
	}
	order, err := A.startOrder()
	if err != nil {
		b.probs.add("%v", err)
		return
	}
	started := map[string][]string{} // service -> its rollback steps
	for _, name := range order {
		s := A.svc[name]
		var after []string
		for _, d := range s.deps {
			after = append(after, started[d]...)
		}
		for _, h := range s.hosts {
			key := name + "@" + h.agent.HostID
			if stops[key] == nil {
				continue
			}
			st := agentStep("rollback:"+key, PhaseRollback, ActionStart, h.agent, name)
			st.DependsOn = append(slices.Clone(stops[key]), after...)
			st.Rollback, st.OnFailure = true, OnFailureContinue
			st.Description = fmt.Sprintf("only if the %s stops before %s is activated: start %s on %s again and wait until it is healthy",
				b.kind, b.to.name, name, h.agent.HostID)
			started[name] = append(started[name], b.addAt(-1, st))
			b.rank[len(b.rank)-1] += rollbackRank // listed last
		}
	}
}
