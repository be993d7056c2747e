package plan

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// extend inserts def's operator steps into the default plan; StepDef
// documents where they go.
func (b *builder) extend(def *Definition) {
	seq := kindPhases[b.kind]
	n := len(b.steps)
	groups := make([][]int, len(seq))
	for i := 0; i < n; i++ {
		if b.occ[i] >= 0 {
			groups[b.occ[i]] = append(groups[b.occ[i]], i)
		}
	}
	ids := map[string][]string{}
	owner := map[string]*StepDef{} // step id -> the operator step it comes from
	for i := range def.Steps {
		sd := &def.Steps[i]
		bnd, ok := boundary(seq, sd)
		if !ok {
			key, phase := placement(sd)
			b.probs.at(sd.rangeOf(key), "plan %q: step %q: unknown phase %q for a %s plan; expected one of %s",
				def.Name, sd.Name, phase, b.kind, quoted(phaseNames(b.kind)))
			continue
		}
		prev, next := -1, -1
		for g := bnd - 1; g >= 0 && prev < 0; g-- {
			if len(groups[g]) > 0 {
				prev = g
			}
		}
		for g := bnd; g < len(groups) && next < 0; g++ {
			if len(groups[g]) > 0 {
				next = g
			}
		}
		var anchor []string
		if prev >= 0 {
			anchor = b.groupSinks(groups[prev])
		}
		// Rank: just before the following phase, in definition order.
		rank := float64(n + 1)
		if next >= 0 {
			rank = b.rank[groups[next][0]] - 0.5
		}
		rank += float64(i) / float64(4*(len(def.Steps)+1))
		for _, st := range b.expand(def, sd) {
			st.DependsOn = anchor
			id := b.addAt(-1, st)
			b.rank[len(b.rank)-1] = rank
			ids[sd.Name] = append(ids[sd.Name], id)
			owner[id] = sd
		}
		if next >= 0 {
			for _, j := range b.groupSources(groups[next]) {
				b.steps[j].DependsOn = append(slices.Clone(b.steps[j].DependsOn), ids[sd.Name]...)
			}
		}
	}
	for _, sd := range def.Steps {
		for _, dep := range sd.DependsOn {
			if !slices.ContainsFunc(def.Steps, func(o StepDef) bool { return o.Name == dep }) {
				b.probs.at(sd.rangeOf("depends_on"), "plan %q: step %q depends on %q, which is not a step of this plan", def.Name, sd.Name, dep)
			}
			for _, id := range ids[sd.Name] {
				j := b.index[id]
				b.steps[j].DependsOn = append(b.steps[j].DependsOn, ids[dep]...)
			}
		}
	}
	b.extensionCycle(def, owner)
}

// extensionCycle reports a cycle that operator steps' placement and
// depends_on make through the default steps, at the first operator step
// in it.
func (b *builder) extensionCycle(def *Definition, owner map[string]*StepDef) {
	all := make([]string, len(b.steps))
	for i, s := range b.steps {
		all[i] = s.ID
	}
	cycle := findCycle(all, func(id string) []string { return b.steps[b.index[id]].DependsOn })
	if cycle == nil {
		return
	}
	for i, id := range cycle[:len(cycle)-1] {
		if sd := owner[id]; sd != nil {
			cycle = append(append(slices.Clone(cycle[i:len(cycle)-1]), cycle[:i]...), id)
			_, phase := placement(sd)
			where := "before"
			if sd.After != "" {
				where = "after"
			}
			b.probs.at(sd.rangeOf("depends_on"), "plan %q: step %q, placed %s %s, makes a cycle with its depends_on: %s; place it later or depend on earlier steps",
				def.Name, sd.Name, where, phase, strings.Join(cycle, " -> "))
			return
		}
	}
	b.probs.add("plan %q: steps depend on each other in a cycle: %s", def.Name, strings.Join(cycle, " -> "))
}

// placement is the key ("before" or "after") and the phase sd names.
func placement(sd *StepDef) (string, string) {
	if sd.Before != "" {
		return "before", sd.Before
	}
	return "after", sd.After
}

// boundary is the index in seq of the first phase after sd: before P is
// the first occurrence of P, after P the one after P's last occurrence.
func boundary(seq []string, sd *StepDef) (int, bool) {
	if sd.Before != "" {
		i := slices.Index(seq, sd.Before)
		return i, i >= 0
	}
	for i := len(seq) - 1; i >= 0; i-- {
		if seq[i] == sd.After {
			return i + 1, true
		}
	}
	return 0, false
}

// groupSinks are the steps of a phase that no other step of it depends on.
func (b *builder) groupSinks(group []int) []string {
	inGroup := map[string]bool{}
	for _, i := range group {
		inGroup[b.steps[i].ID] = true
	}
	used := map[string]bool{}
	for _, i := range group {
		for _, d := range b.steps[i].DependsOn {
			if inGroup[d] {
				used[d] = true
			}
		}
	}
	var out []string
	for _, i := range group {
		if !used[b.steps[i].ID] {
			out = append(out, b.steps[i].ID)
		}
	}
	return out
}

// groupSources are the steps of a phase that depend on no other step of
// it.
func (b *builder) groupSources(group []int) []int {
	inGroup := map[string]bool{}
	for _, i := range group {
		inGroup[b.steps[i].ID] = true
	}
	var out []int
	for _, i := range group {
		if !slices.ContainsFunc(b.steps[i].DependsOn, func(d string) bool { return inGroup[d] }) {
			out = append(out, i)
		}
	}
	return out
}

// expand turns an operator step into concrete steps: one for a control
// action, one per host for an agent action.
func (b *builder) expand(def *Definition, sd *StepDef) []Step {
	what := fmt.Sprintf("plan %q: step %q", def.Name, sd.Name)
	key, phase := placement(sd)
	base := Step{Phase: phase, Action: sd.Action, Target: sd.Target, Args: cloneArgs(sd.Args), Timeout: sd.Timeout,
		Retries: sd.Retries, OnFailure: sd.OnFailure, Description: sd.Description}
	if base.Timeout == 0 {
		base.Timeout = defaultTimeouts[sd.Action]
		if d, err := time.ParseDuration(sd.Args["duration"]); err == nil && sd.Action == ActionWait {
			base.Timeout += d
		}
	}
	if base.Description == "" {
		base.Description = fmt.Sprintf("operator step %s, %s %s", sd.Name, key, phase)
	}
	if isControl(sd.Action) {
		base.ID = sd.Name
		return []Step{base}
	}
	var hosts []*Agent
	switch {
	case sd.Host != "":
		a := b.agent(sd.Host)
		if a == nil {
			names := b.hostIDs()
			b.probs.at(sd.rangeOf("host"), "%s: host %q is not a registered agent%s; expected one of %s", what, sd.Host, didYouMean(sd.Host, names), strings.Join(names, ", "))
			return nil
		}
		if !declares(a, sd.Action, sd.Target) {
			have := declared(a, sd.Action)
			b.probs.at(sd.rangeOf("target"), "%s: host %s declares no %s %q%s", what, a.HostID, targetKind(sd.Action), sd.Target, expectedOf(sd.Target, have))
			return nil
		}
		hosts = []*Agent{a}
	case sd.Site == SiteActive || sd.Site == SiteTarget:
		v := b.to
		if sd.Site == SiteActive {
			v = b.from
		}
		var have []string
		for _, a := range v.agents {
			if declares(a, sd.Action, sd.Target) {
				hosts = append(hosts, a)
			}
			for _, n := range declared(a, sd.Action) {
				if !slices.Contains(have, n) {
					have = append(have, n)
				}
			}
		}
		if len(hosts) == 0 {
			b.probs.at(sd.rangeOf("target"), "%s: no host at the %s site %s declares %s %q%s", what, sd.Site, v.name,
				targetKind(sd.Action), sd.Target, expectedOf(sd.Target, have))
			return nil
		}
	default:
		b.probs.at(sd.Range, "%s: expected site = \"active\" or \"target\", or host = a host id", what)
		return nil
	}
	var out []Step
	for _, a := range hosts {
		st := base
		st.Args = cloneArgs(base.Args)
		st.ID, st.Host, st.Site = sd.Name+"@"+a.HostID, a.HostID, a.Site
		if !b.fillArgs(what, sd, &st, a) {
			return nil
		}
		out = append(out, st)
	}
	return out
}

// fillArgs gives an operator rsync its source and an operator demote its
// upstream, from the other site, when the step does not set them.
func (b *builder) fillArgs(what string, sd *StepDef, st *Step, a *Agent) bool {
	other := b.from
	if a.Site == b.from.name {
		other = b.to
	}
	switch {
	case st.Action == ActionRsync && st.Args["source"] == "":
		src, err := b.syncSource(other, st.Target)
		if err != nil {
			b.probs.at(sd.rangeOf("target"), "%s: %v, or set args = { source = \"host:port\" }", what, err)
			return false
		}
		st.Args = setArg(st.Args, "source", src.Address)
	case st.Action == ActionDemote && st.Args["upstream_host"] == "":
		s := other.svc[st.Target]
		if s == nil || len(s.hosts) == 0 {
			b.probs.at(sd.rangeOf("target"), "%s: no host at site %s declares service %q to follow, or set args = { upstream_host = \"...\"  upstream_port = \"...\" }",
				what, other.name, st.Target)
			return false
		}
		for k, v := range upstreamArgs(s.hosts[0]) {
			st.Args = setArg(st.Args, k, v)
		}
	}
	return true
}

// expectedOf is "; did you mean ...?; expected one of: ..." for a name
// that is not among have.
func expectedOf(name string, have []string) string {
	if len(have) == 0 {
		return "; none is declared there"
	}
	return didYouMean(name, have) + "; expected one of: " + strings.Join(have, ", ")
}

func (b *builder) agent(id string) *Agent {
	for i := range b.topo.Agents {
		if b.topo.Agents[i].HostID == id {
			return &b.topo.Agents[i]
		}
	}
	return nil
}

func (b *builder) hostIDs() []string {
	out := make([]string, len(b.topo.Agents))
	for i, a := range b.topo.Agents {
		out[i] = a.HostID
	}
	return out
}

func cloneArgs(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func setArg(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}
