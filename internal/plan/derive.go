package plan

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DeriveOptions say where a plan goes and what it is measured against.
type DeriveOptions struct {
	// From is the active site; empty means Topology.ActiveSite.
	From string
	// To is the target site. A failover or a switchover needs it: a data
	// site other than From. A failback defaults to the other data site
	// (the original one), a drill to the non-active data site; both need
	// it when there are several candidates.
	To string
	// DrillID is passed to a drill's steps as Args["drill"], so the agents
	// start and tear down isolated copies; a drill needs it.
	DrillID string
	// Objectives and MaxDataLoss are the defaults (the top-level
	// objectives block and the server's failover.max_data_loss); a
	// definition's own override them field by field.
	Objectives  Objectives
	MaxDataLoss time.Duration
}

// Derive builds the plan of kind from the services, dependencies, syncs
// and sites the agents of topo declared, with def's operator steps when
// def is not nil (def.Kind must be kind). The plan is validated with
// Validate before it is returned. Problems with def's steps come as an
// *Error whose diagnostics carry def's file positions.
//
// The default plans, with A the active site (From) and T the target (To):
//
//   - failover: fence every agent at A (best effort), guard (RPO) at T,
//     activate T, wait for A's leases to lapse, then bring T up: promote
//     every promotable service on every T host that declares it, start the
//     other services in dependency order, check every service.
//   - switchover: stop A's application services in reverse dependency
//     order (drain), rsync every sync block of the T hosts from A (sync),
//     stop A's promotable services and wait until each T standby replayed
//     past the final position (demote), activate T, bring T up, and turn
//     A's promotable services into standbys of T's (reprotect).
//   - failback: from the active site back to the other one: first turn
//     that site's promotable services into standbys of the active site's
//     (reprotect), then the switchover.
//   - drill: start isolated copies at T in dependency order, check them,
//     tear them down in reverse order, always; production is untouched.
//
// Services that only one site declares are absent from the other site's
// steps; Plan.Warnings lists those the active site runs and T lacks.
func Derive(kind Kind, topo Topology, def *Definition, opts DeriveOptions) (*Plan, error) {
	if !slices.Contains(Kinds, kind) {
		return nil, fmt.Errorf("unknown plan kind %q%s; expected one of %s", kind, didYouMean(string(kind), kindNames()), strings.Join(kindNames(), ", "))
	}
	if def != nil && def.Kind != "" && def.Kind != kind {
		return nil, fmt.Errorf("plan %q is a %s plan, not a %s plan", def.Name, def.Kind, kind)
	}
	from, to, err := sites(kind, topo, opts)
	if err != nil {
		return nil, err
	}
	if kind == KindDrill && opts.DrillID == "" {
		return nil, fmt.Errorf("a drill needs a drill id, passed to the agents so that they start isolated copies")
	}
	b, err := newBuilder(kind, topo, from, to)
	if err != nil {
		return nil, err
	}
	p := &Plan{Name: string(kind), Kind: kind, From: from, To: to, Objectives: opts.Objectives, MaxDataLoss: opts.MaxDataLoss}
	if def != nil {
		p.Name = def.Name
		if def.RTO != nil {
			p.Objectives.RTO = *def.RTO
		}
		if def.RPO != nil {
			p.Objectives.RPO = *def.RPO
		}
		if def.MaxDataLoss != nil {
			p.MaxDataLoss = *def.MaxDataLoss
		}
	}
	switch kind {
	case KindFailover:
		b.failover(p.MaxDataLoss)
	case KindSwitchover:
		b.switchover(nil)
	case KindFailback:
		b.failback()
	case KindDrill:
		b.drill(opts.DrillID)
	}
	if err := b.probs.err(); err != nil {
		return nil, err
	}
	if def != nil {
		b.extend(def)
		if err := b.probs.err(); err != nil {
			return nil, err
		}
	}
	p.Steps = b.ordered()
	p.Warnings = b.warnings
	if err := Validate(p, topo); err != nil {
		return nil, fmt.Errorf("derived %s plan is invalid: %w", p.Name, err)
	}
	return p, nil
}

// sites resolves From and To.
func sites(kind Kind, topo Topology, opts DeriveOptions) (string, string, error) {
	data := dataSites(topo)
	from := opts.From
	if from == "" {
		from = topo.ActiveSite
	}
	if from == "" {
		return "", "", fmt.Errorf("no active site: the topology names none")
	}
	if !slices.Contains(data, from) {
		return "", "", fmt.Errorf("site %q is not a data site (data sites: %s)", from, strings.Join(data, ", "))
	}
	var others []string
	for _, s := range data {
		if s != from {
			others = append(others, s)
		}
	}
	to := opts.To
	if to == "" {
		switch {
		case kind == KindFailover || kind == KindSwitchover:
			return "", "", fmt.Errorf("a %s needs a target site: expected one of %s", kind, strings.Join(others, ", "))
		case len(others) != 1:
			return "", "", fmt.Errorf("a %s needs a target site when there is not exactly one data site besides %q: expected one of %s",
				kind, from, strings.Join(others, ", "))
		}
		to = others[0]
	}
	switch {
	case to == from:
		return "", "", fmt.Errorf("target site %q is already the active site; expected another data site (%s)", to, strings.Join(others, ", "))
	case !slices.Contains(data, to):
		return "", "", fmt.Errorf("target site %q is not a data site%s; expected one of %s", to, didYouMean(to, others), strings.Join(others, ", "))
	}
	return from, to, nil
}

// dataSites are the topology's data sites, or, when it lists none, the
// active site and the sites of its agents.
func dataSites(topo Topology) []string {
	if len(topo.DataSites) > 0 {
		return topo.DataSites
	}
	var out []string
	if topo.ActiveSite != "" {
		out = append(out, topo.ActiveSite)
	}
	for _, a := range topo.Agents {
		if !slices.Contains(out, a.Site) {
			out = append(out, a.Site)
		}
	}
	return out
}

// siteView is what one site's agents declared, with services paired
// across hosts by name.
type siteView struct {
	name   string
	agents []*Agent
	// order lists the service names in the order they were first
	// declared; svc holds each.
	order []string
	svc   map[string]*siteService
}

// siteService is a service as the hosts of one site declare it.
type siteService struct {
	name string
	// promotable when any host declares it so.
	promotable bool
	// deps are the union of the hosts' depends_on.
	deps  []string
	hosts []hostService
}

type hostService struct {
	agent *Agent
	svc   Service
}

func newSiteView(topo *Topology, site string) *siteView {
	v := &siteView{name: site, svc: map[string]*siteService{}}
	for i := range topo.Agents {
		a := &topo.Agents[i]
		if a.Site != site {
			continue
		}
		v.agents = append(v.agents, a)
		for _, s := range a.Services {
			ss := v.svc[s.Name]
			if ss == nil {
				ss = &siteService{name: s.Name}
				v.svc[s.Name] = ss
				v.order = append(v.order, s.Name)
			}
			ss.promotable = ss.promotable || s.Promotable
			for _, d := range s.DependsOn {
				if !slices.Contains(ss.deps, d) {
					ss.deps = append(ss.deps, d)
				}
			}
			ss.hosts = append(ss.hosts, hostService{agent: a, svc: s})
		}
	}
	return v
}

// startOrder lists the services in dependency order (a service after
// those it depends on), ties in declaration order. A dependency no host of
// the site declares is left out of the order; a cycle is an error.
func (v *siteView) startOrder() ([]string, error) {
	deps := func(n string) []string {
		if s := v.svc[n]; s != nil {
			return s.deps
		}
		return nil
	}
	if c := findCycle(v.order, deps); c != nil {
		return nil, fmt.Errorf("services at site %q depend on each other in a cycle: %s", v.name, strings.Join(c, " -> "))
	}
	var out []string
	done := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		if done[n] || v.svc[n] == nil {
			return
		}
		done[n] = true
		for _, d := range v.svc[n].deps {
			visit(d)
		}
		out = append(out, n)
	}
	for _, n := range v.order {
		visit(n)
	}
	return out, nil
}

// dependents are the services of the site that depend on name.
func (v *siteView) dependents(name string) []string {
	var out []string
	for _, n := range v.order {
		if slices.Contains(v.svc[n].deps, name) {
			out = append(out, n)
		}
	}
	return out
}

// builder accumulates the steps of one derivation.
type builder struct {
	kind     Kind
	topo     Topology
	from, to *siteView
	steps    []Step
	// occ is the index in kindPhases[kind] of each step's phase
	// occurrence; -1 for operator steps.
	occ []int
	// rank orders steps for display among those the dependencies allow.
	rank     []float64
	index    map[string]int
	warnings []string
	probs    problems
}

func newBuilder(kind Kind, topo Topology, from, to string) (*builder, error) {
	seen := map[string]bool{}
	for _, a := range topo.Agents {
		if seen[a.HostID] {
			return nil, fmt.Errorf("host %q is registered twice", a.HostID)
		}
		seen[a.HostID] = true
	}
	b := &builder{kind: kind, topo: topo, index: map[string]int{}}
	b.from, b.to = newSiteView(&b.topo, from), newSiteView(&b.topo, to)
	return b, nil
}

// add appends s in the last occurrence of its phase, filling defaults.
func (b *builder) add(s Step) string {
	seq := kindPhases[b.kind]
	occ := len(seq) - 1
	for occ >= 0 && seq[occ] != s.Phase {
		occ--
	}
	return b.addAt(occ, s)
}

// addAt appends s as a step of phase occurrence occ, filling defaults.
func (b *builder) addAt(occ int, s Step) string {
	s.DependsOn = slices.Clone(s.DependsOn)
	if s.Timeout == 0 {
		s.Timeout = defaultTimeouts[s.Action]
	}
	if s.Retries == 0 && occ >= 0 { // an operator's retries = 0 stands
		s.Retries = defaultRetries(s.Action)
	}
	if s.OnFailure == "" {
		s.OnFailure = OnFailureAbort
	}
	if _, dup := b.index[s.ID]; dup {
		b.probs.add("step id %q would be used twice", s.ID)
		return s.ID
	}
	b.index[s.ID] = len(b.steps)
	b.steps = append(b.steps, s)
	b.occ = append(b.occ, occ)
	b.rank = append(b.rank, float64(len(b.steps)))
	return s.ID
}

// agentStep is a step on host a.
func agentStep(id, phase, action string, a *Agent, target string) Step {
	return Step{ID: id, Phase: phase, Action: action, Host: a.HostID, Site: a.Site, Target: target}
}

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

// bringUp promotes, starts and checks the target's services after gate;
// it returns the promote step of each promotable service by host.
func (b *builder) bringUp(gate []string) map[string]map[string]string {
	T := b.to
	up := map[string][]string{} // service -> its promote or start steps
	promotes := map[string]map[string]string{}
	for _, name := range T.order {
		s := T.svc[name]
		if !s.promotable {
			continue
		}
		promotes[name] = map[string]string{}
		for _, h := range s.hosts {
			st := agentStep("promote:"+name+"@"+h.agent.HostID, PhasePromote, ActionPromote, h.agent, name)
			st.DependsOn, st.HealthGate = slices.Clone(gate), true
			st.Description = fmt.Sprintf("promote %s on %s to primary", name, h.agent.HostID)
			id := b.add(st)
			up[name] = append(up[name], id)
			promotes[name][h.agent.HostID] = id
		}
	}
	order, err := T.startOrder()
	if err != nil {
		b.probs.add("%v", err)
		return promotes
	}
	for _, name := range order {
		s := T.svc[name]
		if s.promotable {
			continue
		}
		deps := slices.Clone(gate)
		for _, d := range s.deps {
			if T.svc[d] == nil {
				b.probs.add("service %q at site %q depends on %q, which no host at %q declares", name, T.name, d, T.name)
				continue
			}
			deps = append(deps, up[d]...)
		}
		for _, h := range s.hosts {
			st := agentStep("start:"+name+"@"+h.agent.HostID, PhaseStart, ActionStart, h.agent, name)
			st.DependsOn, st.HealthGate = slices.Clone(deps), true
			st.Description = fmt.Sprintf("start %s on %s and wait until it is healthy", name, h.agent.HostID)
			up[name] = append(up[name], b.add(st))
		}
	}
	var all []string
	for _, name := range T.order {
		all = append(all, up[name]...)
	}
	for _, name := range T.order {
		for _, h := range T.svc[name].hosts {
			st := agentStep("check:"+name+"@"+h.agent.HostID, PhaseVerify, ActionCheck, h.agent, name)
			st.DependsOn, st.HealthGate = slices.Clone(all), true
			st.Description = fmt.Sprintf("verify %s on %s", name, h.agent.HostID)
			b.add(st)
		}
	}
	return promotes
}

// switchover: drain, sync, demote with catch-up, activate, bring up,
// reprotect. Steps that would depend on nothing depend on roots instead.
func (b *builder) switchover(roots []string) {
	A, T := b.from, b.to
	first := len(b.steps)
	drain := b.drain()
	syncs := b.syncs(drain)
	pre := append(slices.Clone(drain), syncs...)
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
			for _, sb := range standbys {
				id := "catchup:" + name + "@" + sb.agent.HostID
				if len(s.hosts) > 1 {
					id += "~" + h.agent.HostID
				}
				c := agentStep(id, PhaseDemote, ActionCheck, sb.agent, name)
				c.DependsOn = []string{stop}
				c.ArgsFrom = map[string]string{"after_position": stop + ".position"}
				c.Description = fmt.Sprintf("wait until %s on %s replayed past the final position of %s", name, sb.agent.HostID, h.agent.HostID)
				b.add(c)
			}
		}
	}
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
	b.warnMissing()
}

// drain stops the active site's application services in reverse
// dependency order and returns the stop steps.
func (b *builder) drain() []string {
	A := b.from
	order, err := A.startOrder()
	if err != nil {
		b.probs.add("%v", err)
		return nil
	}
	stops := map[string][]string{}
	var all []string
	for _, name := range slices.Backward(order) {
		s := A.svc[name]
		if s.promotable {
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

// upstreamArgs point a demoted service at up.
func upstreamArgs(up hostService) map[string]string {
	host := up.agent.Address
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	args := map[string]string{"upstream_host": host}
	if up.svc.Port > 0 {
		args["upstream_port"] = strconv.Itoa(up.svc.Port)
	}
	return args
}

// failback: reprotect the other site's promotable services as standbys of
// the active site's, then switch over to it.
func (b *builder) failback() {
	A, O := b.from, b.to
	var demotes []string
	for _, name := range O.order {
		s, src := O.svc[name], A.svc[name]
		if !s.promotable {
			continue
		}
		if src == nil || len(src.hosts) == 0 {
			b.warnings = append(b.warnings, fmt.Sprintf("service %q at %s has no counterpart at the active site %s to follow; it is not reprotected", name, O.name, A.name))
			continue
		}
		up := src.hosts[0]
		for _, h := range s.hosts {
			st := agentStep("demote:"+name+"@"+h.agent.HostID, PhaseReprotect, ActionDemote, h.agent, name)
			st.Args = upstreamArgs(up)
			st.Description = fmt.Sprintf("rejoin %s on %s as a standby of %s (pg_rewind or re-clone)", name, h.agent.HostID, up.agent.HostID)
			demotes = append(demotes, b.addAt(0, st))
		}
	}
	b.switchover(demotes)
}

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

// sinks are the steps added from index first on that no other such step
// depends on.
func (b *builder) sinks(first int) []string {
	used := map[string]bool{}
	for _, s := range b.steps[first:] {
		for _, d := range s.DependsOn {
			used[d] = true
		}
	}
	var out []string
	for _, s := range b.steps[first:] {
		if !used[s.ID] {
			out = append(out, s.ID)
		}
	}
	return out
}

// warnMissing warns about services the active site runs and the target
// lacks, and about a target without agents.
func (b *builder) warnMissing() {
	A, T := b.from, b.to
	if len(T.agents) == 0 {
		b.warnings = append(b.warnings, fmt.Sprintf("no agent of site %s has registered: the plan runs no service there", T.name))
	}
	for _, name := range A.order {
		if T.svc[name] != nil {
			continue
		}
		var hosts []string
		for _, h := range A.svc[name].hosts {
			hosts = append(hosts, h.agent.HostID)
		}
		b.warnings = append(b.warnings, fmt.Sprintf("service %q runs at %s (%s) but no host at %s declares it: the %s plan leaves it out",
			name, A.name, strings.Join(hosts, ", "), T.name, b.kind))
	}
}

// ordered returns the steps so that each comes after its dependencies,
// otherwise by rank (default steps in derivation order, operator steps
// at their boundary).
func (b *builder) ordered() []Step {
	n := len(b.steps)
	done := make([]bool, n)
	out := make([]Step, 0, n)
	for len(out) < n {
		best := -1
		for i := 0; i < n; i++ {
			if done[i] || !b.ready(i, done) {
				continue
			}
			if best < 0 || b.rank[i] < b.rank[best] {
				best = i
			}
		}
		if best < 0 { // a cycle: Validate reports it; keep the rest in order
			for i := 0; i < n; i++ {
				if !done[i] {
					out = append(out, b.steps[i])
					done[i] = true
				}
			}
			break
		}
		done[best] = true
		out = append(out, b.steps[best])
	}
	return out
}

// ready reports whether every dependency of step i is done.
func (b *builder) ready(i int, done []bool) bool {
	for _, d := range b.steps[i].DependsOn {
		if j, ok := b.index[d]; ok && !done[j] {
			return false
		}
	}
	return true
}

// fmtDuration prints d without zero units: 2m, 1h30m, 10s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
