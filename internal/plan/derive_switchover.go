package plan

import (
	"fmt"
	"slices"
	"strings"
)

// switchover: drain, sync, demote with catch-up, activate, bring up,
// reprotect. Steps that would depend on nothing depend on roots instead.
func (b *builder) switchover(roots []string) {
	A, T := b.from, b.to
	first := len(b.steps)
	drain := b.drain()
	syncs := b.syncs(drain)
	b.stopPrimaries(append(slices.Clone(drain), syncs...))
	for i := first; i < len(b.steps); i++ {
		if len(b.steps[i].DependsOn) == 0 {
			b.steps[i].DependsOn = slices.Clone(roots)
		}
	}
	actDeps := b.sinks(first)
	if len(actDeps) == 0 {
		actDeps = slices.Clone(roots)
	}
	act := b.add(Step{ID: "activate:" + T.name, Phase: PhaseActivate, Action: ActionActivate, Target: T.name, DependsOn: actDeps,
		Description: fmt.Sprintf("make %s the active site and bump the epoch (every primary at %s stopped)", T.name, A.name)})
	promotes := b.bringUp([]string{act})
	b.reprotect(promotes)
	b.warnMissing()
}

// stopPrimaries stops every promotable service of the active site after
// pre (the drain and the syncs), each followed by the target's standbys
// catching up with the position it stopped at.
func (b *builder) stopPrimaries(pre []string) {
	A, T := b.from, b.to
	for _, name := range A.order {
		s := A.svc[name]
		if !s.promotable {
			continue
		}
		var standbys []hostService
		if t := T.svc[name]; t != nil {
			standbys = t.hosts
		}
		for _, h := range s.hosts {
			st := agentStep("stop:"+name+"@"+h.agent.HostID, PhaseDemote, ActionStop, h.agent, name)
			st.DependsOn = slices.Clone(pre)
			st.Description = fmt.Sprintf("stop %s on %s; its final position is what the standbys must reach", name, h.agent.HostID)
			stop := b.add(st)
			b.catchUps(s, h, stop, standbys)
		}
	}
}

// catchUps makes every standby wait until it replayed past the final
// position of s on h, which step stop records. With several primaries of
// s, the step ids name the primary too.
func (b *builder) catchUps(s *siteService, h hostService, stop string, standbys []hostService) {
	for _, sb := range standbys {
		id := "catchup:" + s.name + "@" + sb.agent.HostID
		if len(s.hosts) > 1 {
			id += "~" + h.agent.HostID
		}
		c := agentStep(id, PhaseDemote, ActionCheck, sb.agent, s.name)
		c.DependsOn = []string{stop}
		c.ArgsFrom = map[string]string{"after_position": stop + ".position"}
		c.Description = fmt.Sprintf("wait until %s on %s replayed past the final position of %s", s.name, sb.agent.HostID, h.agent.HostID)
		b.add(c)
	}
}

// reprotect rejoins the old active site's promotable services as
// standbys of the first target host of each, once promotes says it was
// promoted. It may fail without failing the switchover: the target
// already serves.
func (b *builder) reprotect(promotes map[string]map[string]string) {
	A, T := b.from, b.to
	for _, name := range A.order {
		s, t := A.svc[name], T.svc[name]
		if !s.promotable || t == nil || len(t.hosts) == 0 {
			continue
		}
		up := t.hosts[0]
		for _, h := range s.hosts {
			st := agentStep("demote:"+name+"@"+h.agent.HostID, PhaseReprotect, ActionDemote, h.agent, name)
			st.DependsOn = []string{promotes[name][up.agent.HostID]}
			st.Args = upstreamArgs(up)
			st.OnFailure = OnFailureContinue
			st.Description = fmt.Sprintf("rejoin %s on %s as a standby of %s", name, h.agent.HostID, up.agent.HostID)
			b.add(st)
		}
	}
}

// drain stops the active site's application services in reverse
// dependency order and returns the stop steps.
func (b *builder) drain() []string {
	order, err := b.from.startOrder()
	if err != nil {
		b.probs.add("%v", err)
		return nil
	}
	return b.stopAll(order, func(s *siteService) bool { return !s.promotable })
}

// stopAll stops, in phase drain, the active site's services of order that
// include selects, in reverse order: each after the stops of the services
// that depend on it. It returns the stop steps.
func (b *builder) stopAll(order []string, include func(*siteService) bool) []string {
	A := b.from
	stops := map[string][]string{}
	var all []string
	for _, name := range slices.Backward(order) {
		s := A.svc[name]
		if !include(s) {
			continue
		}
		var deps []string
		for _, d := range A.dependents(name) {
			deps = append(deps, stops[d]...)
		}
		for _, h := range s.hosts {
			st := agentStep("stop:"+name+"@"+h.agent.HostID, PhaseDrain, ActionStop, h.agent, name)
			st.DependsOn = deps
			st.Description = fmt.Sprintf("stop %s on %s", name, h.agent.HostID)
			id := b.add(st)
			stops[name] = append(stops[name], id)
			all = append(all, id)
		}
	}
	return all
}

// syncs adds the final rsync of every sync block a target host declares,
// from the active site's host that declares the same block.
func (b *builder) syncs(after []string) []string {
	var out []string
	for _, a := range b.to.agents {
		for _, block := range a.Syncs {
			src, err := b.syncSource(b.from, block)
			if err != nil {
				b.probs.add("rsync of sync block %q to %s: %v", block, a.HostID, err)
				continue
			}
			st := agentStep("rsync:"+block+"@"+a.HostID, PhaseSync, ActionRsync, a, block)
			st.DependsOn = slices.Clone(after)
			st.Args = map[string]string{"source": src.Address}
			st.Description = fmt.Sprintf("final rsync of %s from %s to %s", block, src.HostID, a.HostID)
			out = append(out, b.add(st))
		}
	}
	return out
}

// syncSource is the one host of site v that declares sync block.
func (b *builder) syncSource(v *siteView, block string) (*Agent, error) {
	var found []*Agent
	for _, a := range v.agents {
		if slices.Contains(a.Syncs, block) {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no host at site %q declares sync %q; expected one to pull from", v.name, block)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, a := range found {
		names[i] = a.HostID
	}
	return nil, fmt.Errorf("several hosts at site %q declare sync %q (%s); expected exactly one to pull from", v.name, block, strings.Join(names, ", "))
}
