package plan

import (
	"fmt"
	"slices"
	"strings"
)

// restart stops the active site's services, or service and every
// service that depends on it (directly or not), in reverse dependency
// order, then starts them in dependency order, each health-gated, and
// checks them. A service outside the selection keeps running, and the
// starts wait for nothing of it. A start is done on a running service as
// on a stopped one: the stop comes first, so every selected service runs
// a fresh process afterwards.
func (b *builder) restart(service string) {
	A := b.from
	order, err := A.startOrder()
	if err != nil {
		b.probs.add("%v", err)
		return
	}
	selected, err := restartSelection(A, order, service)
	if err != nil {
		b.probs.add("%v", err)
		return
	}
	stops := map[string][]string{}
	var allStops []string
	for _, name := range slices.Backward(order) {
		if !selected[name] {
			continue
		}
		var deps []string
		for _, d := range A.dependents(name) {
			deps = append(deps, stops[d]...)
		}
		for _, h := range A.svc[name].hosts {
			st := agentStep("stop:"+name+"@"+h.agent.HostID, PhaseDrain, ActionStop, h.agent, name)
			st.DependsOn = deps
			st.Description = fmt.Sprintf("stop %s on %s", name, h.agent.HostID)
			id := b.add(st)
			stops[name] = append(stops[name], id)
			allStops = append(allStops, id)
		}
	}
	up := map[string][]string{}
	for _, name := range order {
		if !selected[name] {
			continue
		}
		deps := slices.Clone(allStops)
		for _, d := range A.svc[name].deps {
			deps = append(deps, up[d]...)
		}
		for _, h := range A.svc[name].hosts {
			st := agentStep("start:"+name+"@"+h.agent.HostID, PhaseStart, ActionStart, h.agent, name)
			st.DependsOn, st.HealthGate = deps, true
			st.Description = fmt.Sprintf("start %s on %s and wait until it is healthy", name, h.agent.HostID)
			up[name] = append(up[name], b.add(st))
		}
	}
	var all []string
	for _, name := range order {
		all = append(all, up[name]...)
	}
	for _, name := range order {
		if !selected[name] {
			continue
		}
		for _, h := range A.svc[name].hosts {
			st := agentStep("check:"+name+"@"+h.agent.HostID, PhaseVerify, ActionCheck, h.agent, name)
			st.DependsOn, st.HealthGate = slices.Clone(all), true
			st.Description = fmt.Sprintf("verify %s on %s", name, h.agent.HostID)
			b.add(st)
		}
	}
}

// restartSelection is the services a restart of service restarts: all
// of order when service is empty, otherwise service and every service
// of the site that depends on it, directly or through others.
func restartSelection(v *siteView, order []string, service string) (map[string]bool, error) {
	selected := map[string]bool{}
	if service == "" {
		for _, n := range order {
			selected[n] = true
		}
		return selected, nil
	}
	if v.svc[service] == nil {
		return nil, fmt.Errorf("no host at the active site %q declares service %q%s; declared: %s",
			v.name, service, didYouMean(service, v.order), strings.Join(v.order, ", "))
	}
	var visit func(n string)
	visit = func(n string) {
		if selected[n] {
			return
		}
		selected[n] = true
		for _, d := range v.dependents(n) {
			visit(d)
		}
	}
	visit(service)
	return selected, nil
}
