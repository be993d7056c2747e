package plan

import (
	"fmt"
	"slices"
	"strings"
)

// drill starts isolated copies at the target, checks them and tears them
// down, always.
func (b *builder) drill(id string) {
	T := b.to
	args := func() map[string]string { return map[string]string{"drill": id} }
	started := map[string][]string{}
	startOf := map[string]string{} // host/service -> start step
	order, err := T.startOrder()
	if err != nil {
		b.probs.add("%v", err)
		return
	}
	// Only services with a drill block get a copy; the others stay out
	// of the drill (a copy without one would run as production does).
	hosts := func(name string) []hostService {
		var out []hostService
		for _, h := range T.svc[name].hosts {
			if h.svc.Drillable {
				out = append(out, h)
			}
		}
		return out
	}
	var skipped []string
	for _, name := range order {
		if len(hosts(name)) == 0 {
			skipped = append(skipped, name)
		}
	}
	if len(skipped) > 0 {
		b.warnings = append(b.warnings, fmt.Sprintf("no drill block at site %s for %s: the drill leaves them out", T.name, strings.Join(skipped, ", ")))
	}
	// Promotable services first, then the others in dependency order.
	for _, promotable := range []bool{true, false} {
		for _, name := range order {
			s := T.svc[name]
			if s.promotable != promotable {
				continue
			}
			var deps []string
			if !promotable {
				for _, d := range s.deps {
					if T.svc[d] == nil {
						b.probs.add("service %q at site %q depends on %q, which no host at %q declares", name, T.name, d, T.name)
						continue
					}
					if len(hosts(d)) == 0 {
						continue
					}
					deps = append(deps, started[d]...)
				}
			}
			for _, h := range hosts(name) {
				st := agentStep("start:"+name+"@"+h.agent.HostID, PhaseStart, ActionStart, h.agent, name)
				st.Args, st.DependsOn, st.HealthGate = args(), slices.Clone(deps), true
				st.Description = fmt.Sprintf("start an isolated drill copy of %s on %s", name, h.agent.HostID)
				sid := b.add(st)
				started[name] = append(started[name], sid)
				startOf[h.agent.HostID+"/"+name] = sid
			}
		}
	}
	if len(startOf) == 0 {
		b.probs.add("nothing to drill at site %s: no service there declares a drill block", T.name)
		return
	}
	var all, checks []string
	for _, name := range T.order {
		all = append(all, started[name]...)
	}
	for _, name := range T.order {
		for _, h := range hosts(name) {
			st := agentStep("check:"+name+"@"+h.agent.HostID, PhaseVerify, ActionCheck, h.agent, name)
			st.Args, st.DependsOn, st.HealthGate = args(), slices.Clone(all), true
			st.Description = fmt.Sprintf("verify the drill copy of %s on %s", name, h.agent.HostID)
			checks = append(checks, b.add(st))
		}
	}
	stops := map[string][]string{}
	for _, name := range slices.Backward(order) {
		var deps []string
		for _, d := range T.dependents(name) {
			deps = append(deps, stops[d]...)
		}
		if len(deps) == 0 {
			deps = slices.Clone(checks)
		}
		for _, h := range hosts(name) {
			st := agentStep("stop:"+name+"@"+h.agent.HostID, PhaseTeardown, ActionStop, h.agent, name)
			st.Args, st.OnFailure, st.Always = args(), OnFailureContinue, true
			// Its own start too: after an abort, the stop must wait for
			// the start to end, not merely for the checks to be skipped.
			st.DependsOn = append([]string{startOf[h.agent.HostID+"/"+name]}, deps...)
			st.Description = fmt.Sprintf("tear down the drill copy of %s on %s (runs even after an abort)", name, h.agent.HostID)
			stops[name] = append(stops[name], b.add(st))
		}
	}
	b.warnMissing()
}
