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
	// Service, for a restart, is the service to restart with what
	// depends on it; empty restarts every service of the active site.
	// For a restore it is the data service restored; required.
	Service string
	// RestoreToTime and RestoreLabel are a restore's target: a point in
	// time or a backup label; neither restores the newest state the
	// repository holds (after the restoration point, what the service
	// had when its dependents stopped).
	RestoreToTime time.Time
	RestoreLabel  string
	// DrillOf, for a drill, is KindRestore for a restore drill: the
	// newest backup of every data service of the target site restored
	// into a scratch copy there, started, queried and removed, instead of
	// drill copies of the services.
	DrillOf Kind
	// FinishOf names a failover or switchover that activated To, the
	// active site now, but stopped before To served; the plan derived is
	// the rest of it: wait for From's leases, bring To up, and for a
	// switchover reprotect From. From must name the site that execution
	// started from. Operator steps are not part of it.
	FinishOf string
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
//   - both of these end with Rollback steps: should the execution stop
//     before T is activated, they start again what it stopped at A.
//   - drill: start isolated copies at T in dependency order, check them,
//     tear them down in reverse order, always; production is untouched.
//   - restart: at A itself (To is From), stop the services (or
//     DeriveOptions.Service and what depends on it) in reverse
//     dependency order, start them in dependency order, each
//     health-gated, and check them.
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
	if opts.FinishOf != "" {
		return deriveFinish(kind, topo, opts)
	}
	from, to, err := sites(kind, topo, opts)
	if err != nil {
		return nil, err
	}
	if opts.DrillOf != "" && (kind != KindDrill || opts.DrillOf != KindRestore) {
		return nil, fmt.Errorf("only a drill of a restore plan is derived, not a %s of a %s", kind, opts.DrillOf)
	}
	if kind == KindDrill && opts.DrillID == "" {
		return nil, fmt.Errorf("a drill needs a drill id, passed to the agents so that they start isolated copies")
	}
	b, err := newBuilder(kind, topo, from, to)
	if err != nil {
		return nil, err
	}
	p := newPlan(kind, from, to, def, opts)
	switch {
	case kind == KindRestart:
		b.restart(opts.Service)
	case kind == KindRestore:
		b.restore(opts)
	case opts.DrillOf == KindRestore:
		b.restoreDrill()
		// It exercises the restore scenario.
		p.Name = string(KindRestore)
	default:
		b.deriveKind(kind, p.MaxDataLoss, opts.DrillID)
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
	if kind == KindSwitchover || kind == KindFailback {
		b.rollback()
		if err := b.probs.err(); err != nil {
			return nil, err
		}
	}
	return b.finish(p)
}

// finish puts the builder's steps in order into p, with its warnings,
// and validates the plan against the topology it was derived from.
func (b *builder) finish(p *Plan) (*Plan, error) {
	p.Steps = b.ordered()
	p.Warnings = b.warnings
	if err := Validate(p, b.topo); err != nil {
		return nil, fmt.Errorf("derived %s plan is invalid: %w", p.Name, err)
	}
	return p, nil
}

// newPlan is the plan's heading: its name, sites and objectives, def's
// overriding the defaults in opts field by field.
func newPlan(kind Kind, from, to string, def *Definition, opts DeriveOptions) *Plan {
	p := &Plan{Name: string(kind), Kind: kind, From: from, To: to, Objectives: opts.Objectives, MaxDataLoss: opts.MaxDataLoss}
	if def == nil {
		return p
	}
	p.Name = def.Name
	p.Objectives = def.ObjectivesOver(p.Objectives)
	if def.MaxDataLoss != nil {
		p.MaxDataLoss = *def.MaxDataLoss
	}
	return p
}

// deriveKind adds the default steps of kind; each kind has its own file.
func (b *builder) deriveKind(kind Kind, maxDataLoss time.Duration, drillID string) {
	switch kind {
	case KindFailover:
		b.failover(maxDataLoss)
	case KindSwitchover:
		b.switchover(nil)
	case KindFailback:
		b.failback()
	case KindDrill:
		b.drill(drillID)
	}
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

// bringUp promotes, starts and checks the target's services after gate;
// it returns the promote step of each promotable service by host.
func (b *builder) bringUp(gate []string) map[string]map[string]string {
	up := map[string][]string{} // service -> its promote or start steps
	promotes := b.promoteAll(gate, up)
	order, err := b.to.startOrder()
	if err != nil {
		b.probs.add("%v", err)
		return promotes
	}
	for _, name := range order {
		if !b.to.svc[name].promotable {
			b.startAll(name, gate, up)
		}
	}
	b.checkAll(up)
	return promotes
}

// promoteAll promotes every promotable service on every target host that
// declares it, after gate, recording the steps in up; it returns them by
// service and host.
func (b *builder) promoteAll(gate []string, up map[string][]string) map[string]map[string]string {
	T := b.to
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
	return promotes
}

// startAll starts service name on every target host that declares it,
// after gate and the steps in up of the services it depends on, and
// records the starts in up.
func (b *builder) startAll(name string, gate []string, up map[string][]string) {
	T := b.to
	deps := slices.Clone(gate)
	for _, d := range T.svc[name].deps {
		if T.svc[d] == nil {
			b.probs.add("service %q at site %q depends on %q, which no host at %q declares", name, T.name, d, T.name)
			continue
		}
		deps = append(deps, up[d]...)
	}
	for _, h := range T.svc[name].hosts {
		st := agentStep("start:"+name+"@"+h.agent.HostID, PhaseStart, ActionStart, h.agent, name)
		st.DependsOn, st.HealthGate = slices.Clone(deps), true
		st.Description = fmt.Sprintf("start %s on %s and wait until it is healthy", name, h.agent.HostID)
		up[name] = append(up[name], b.add(st))
	}
}

// checkAll checks every service brought up in up (every service of the
// target, but for a restart of one service and its dependents), on every
// target host, once every promote and start in up has ended.
func (b *builder) checkAll(up map[string][]string) {
	T := b.to
	var all []string
	for _, name := range T.order {
		all = append(all, up[name]...)
	}
	for _, name := range T.order {
		if len(up[name]) == 0 {
			continue
		}
		for _, h := range T.svc[name].hosts {
			st := agentStep("check:"+name+"@"+h.agent.HostID, PhaseVerify, ActionCheck, h.agent, name)
			st.DependsOn, st.HealthGate = slices.Clone(all), true
			st.Description = fmt.Sprintf("verify %s on %s", name, h.agent.HostID)
			b.add(st)
		}
	}
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
