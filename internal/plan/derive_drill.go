package plan

import (
	"fmt"
	"slices"
	"strings"
)

// drill starts isolated copies at the target, checks them and tears them
// down, always.
func (b *builder) drill(id string) {
	d := &drillCopies{id: id, site: b.to, started: map[string][]string{}, startOf: map[string]string{}}
	order, err := d.site.startOrder()
	if err != nil {
		b.probs.add("%v", err)
		return
	}
	b.warnUndrillable(d, order)
	// Promotable services first, then the others in dependency order.
	for _, promotable := range []bool{true, false} {
		b.drillStarts(d, order, promotable)
	}
	if len(d.startOf) == 0 {
		b.probs.add("nothing to drill at site %s: no service there declares a drill block", d.site.name)
		return
	}
	checks := b.drillChecks(d)
	b.drillTeardown(d, order, checks)
	b.warnMissing()
}

// drillCopies is what the parts of one drill derivation share: the drill
// id every step passes to its agent, and the start steps of the copies
// added so far, which the checks and the teardown depend on.
type drillCopies struct {
	id   string
	site *siteView
	// started lists each service's start steps; startOf is the start
	// step of each host/service copy.
	started map[string][]string
	startOf map[string]string
}

// args are a drill step's arguments: a fresh map per step, so that no two
// steps share one.
func (d *drillCopies) args() map[string]string { return map[string]string{"drill": d.id} }

// hosts are the hosts of service name that declare a drill block. Only
// those get a copy: a copy without one would run as production does.
func (d *drillCopies) hosts(name string) []hostService {
	var out []hostService
	for _, h := range d.site.svc[name].hosts {
		if h.svc.Drillable {
			out = append(out, h)
		}
	}
	return out
}

// warnUndrillable warns about the services of order that no host of the
// site declares a drill block for: the drill leaves them out.
func (b *builder) warnUndrillable(d *drillCopies, order []string) {
	var skipped []string
	for _, name := range order {
		if len(d.hosts(name)) == 0 {
			skipped = append(skipped, name)
		}
	}
	if len(skipped) > 0 {
		b.warnings = append(b.warnings, fmt.Sprintf("no drill block at site %s for %s: the drill leaves them out", d.site.name, strings.Join(skipped, ", ")))
	}
}

// drillStarts adds, in order, the start of every copy of the services
// that are promotable or not as promotable says. A promotable service's
// copy waits for nothing; another waits for the copies of its
// dependencies.
func (b *builder) drillStarts(d *drillCopies, order []string, promotable bool) {
	for _, name := range order {
		if d.site.svc[name].promotable != promotable {
			continue
		}
		var deps []string
		if !promotable {
			deps = b.drillDeps(d, name)
		}
		for _, h := range d.hosts(name) {
			b.drillStart(d, name, h, deps)
		}
	}
}

// drillDeps are the start steps that the copy of service name waits for:
// those of its dependencies that have a copy. A dependency that no host
// of the site declares is a problem; one without a drill block is left
// out, as its copy is.
func (b *builder) drillDeps(d *drillCopies, name string) []string {
	T := d.site
	var deps []string
	for _, dep := range T.svc[name].deps {
		if T.svc[dep] == nil {
			b.probs.add("service %q at site %q depends on %q, which no host at %q declares", name, T.name, dep, T.name)
			continue
		}
		if len(d.hosts(dep)) == 0 {
			continue
		}
		deps = append(deps, d.started[dep]...)
	}
	return deps
}

// drillStart adds the start of the copy of service name on h after deps
// and records it in d.
func (b *builder) drillStart(d *drillCopies, name string, h hostService, deps []string) {
	st := agentStep("start:"+name+"@"+h.agent.HostID, PhaseStart, ActionStart, h.agent, name)
	st.Args, st.DependsOn, st.HealthGate = d.args(), slices.Clone(deps), true
	st.Description = fmt.Sprintf("start an isolated drill copy of %s on %s", name, h.agent.HostID)
	sid := b.add(st)
	d.started[name] = append(d.started[name], sid)
	d.startOf[h.agent.HostID+"/"+name] = sid
}

// drillChecks adds a check of every copy once all of them started, and
// returns the check steps.
func (b *builder) drillChecks(d *drillCopies) []string {
	T := d.site
	var all, checks []string
	for _, name := range T.order {
		all = append(all, d.started[name]...)
	}
	for _, name := range T.order {
		for _, h := range d.hosts(name) {
			st := agentStep("check:"+name+"@"+h.agent.HostID, PhaseVerify, ActionCheck, h.agent, name)
			st.Args, st.DependsOn, st.HealthGate = d.args(), slices.Clone(all), true
			st.Description = fmt.Sprintf("verify the drill copy of %s on %s", name, h.agent.HostID)
			checks = append(checks, b.add(st))
		}
	}
	return checks
}

// drillTeardown stops the copies in reverse dependency order: a copy
// after those of its dependents, a copy without dependents after the
// checks.
func (b *builder) drillTeardown(d *drillCopies, order, checks []string) {
	stops := map[string][]string{}
	for _, name := range slices.Backward(order) {
		var deps []string
		for _, dep := range d.site.dependents(name) {
			deps = append(deps, stops[dep]...)
		}
		if len(deps) == 0 {
			deps = slices.Clone(checks)
		}
		for _, h := range d.hosts(name) {
			stops[name] = append(stops[name], b.drillStop(d, name, h, deps))
		}
	}
}

// drillStop adds the teardown of the copy of service name on h after deps
// and returns its id. It runs even after an abort (Always), and waits for
// the copy's own start too: after an abort, the stop must wait for the
// start to end, not merely for the checks to be skipped.
func (b *builder) drillStop(d *drillCopies, name string, h hostService, deps []string) string {
	st := agentStep("stop:"+name+"@"+h.agent.HostID, PhaseTeardown, ActionStop, h.agent, name)
	st.Args, st.OnFailure, st.Always = d.args(), OnFailureContinue, true
	st.DependsOn = append([]string{d.startOf[h.agent.HostID+"/"+name]}, deps...)
	st.Description = fmt.Sprintf("tear down the drill copy of %s on %s (runs even after an abort)", name, h.agent.HostID)
	return b.add(st)
}
