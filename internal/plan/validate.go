package plan

import (
	"slices"
	"strings"
	"time"
)

// Validate checks that p can be executed on topo: step ids are unique;
// every dependency exists and there is no cycle; every agent step names a
// registered host (at Site, when set) that declares its Target (a service
// for start, stop, promote, demote, check and a fence with a target; a
// sync block for rsync; a snapshot block for snapshot; a hook for hook);
// control steps name no host; every ArgsFrom reference names an ancestor
// step; timeouts are positive, retries not negative and on_failure valid.
// All problems come at once in an *Error, without positions.
func Validate(p *Plan, topo Topology) error {
	var pr problems
	agents := map[string]*Agent{}
	for i := range topo.Agents {
		agents[topo.Agents[i].HostID] = &topo.Agents[i]
	}
	index := map[string]int{}
	for i, s := range p.Steps {
		switch _, dup := index[s.ID]; {
		case s.ID == "":
			pr.add("step %d (%s) has no id", i, s.Action)
		case dup:
			pr.add("step id %q is used twice; ids must be unique", s.ID)
		default:
			index[s.ID] = i
		}
	}
	for _, s := range p.Steps {
		validateStep(&pr, s, index, agents, topo)
	}
	ids := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		ids[i] = s.ID
	}
	deps := func(id string) []string {
		if i, ok := index[id]; ok {
			return p.Steps[i].DependsOn
		}
		return nil
	}
	if cycle := findCycle(ids, deps); cycle != nil {
		pr.add("steps depend on each other in a cycle: %s", strings.Join(cycle, " -> "))
	} else {
		validateArgsFrom(&pr, p, deps)
	}
	return pr.err()
}

func validateStep(pr *problems, s Step, index map[string]int, agents map[string]*Agent, topo Topology) {
	for _, dep := range s.DependsOn {
		if _, ok := index[dep]; !ok {
			pr.add("step %q depends on %q, which is not a step of the plan", s.ID, dep)
		}
	}
	switch {
	case slices.Contains(AgentActions, s.Action):
		validateAgentStep(pr, s, agents)
	case slices.Contains(ControlActions, s.Action):
		validateControlStep(pr, s, topo)
	default:
		pr.add("step %q: unknown action %q%s; expected one of %s", s.ID, s.Action,
			didYouMean(s.Action, append(slices.Clone(AgentActions), ControlActions...)),
			strings.Join(append(slices.Clone(AgentActions), ControlActions...), ", "))
	}
	if s.Timeout <= 0 {
		pr.add("step %q: timeout %s must be positive", s.ID, s.Timeout)
	}
	if s.Retries < 0 {
		pr.add("step %q: retries %d is negative", s.ID, s.Retries)
	}
	if s.OnFailure != OnFailureAbort && s.OnFailure != OnFailureContinue {
		pr.add("step %q: on_failure %q is not %q or %q", s.ID, s.OnFailure, OnFailureAbort, OnFailureContinue)
	}
}

func validateAgentStep(pr *problems, s Step, agents map[string]*Agent) {
	if s.Host == "" {
		pr.add("step %q: %s is an agent action and needs a host", s.ID, s.Action)
		return
	}
	a := agents[s.Host]
	switch {
	case a == nil:
		pr.add("step %q: host %q is not a registered agent", s.ID, s.Host)
		return
	case s.Site != "" && s.Site != a.Site:
		pr.add("step %q: host %q is in site %q, not %q", s.ID, s.Host, a.Site, s.Site)
	}
	switch {
	case s.Target == "" && s.Action != ActionFence:
		pr.add("step %q: %s needs a target, the %s on host %q", s.ID, s.Action, targetKind(s.Action), s.Host)
	case !declares(a, s.Action, s.Target):
		pr.add("step %q: host %q declares no %s %q", s.ID, s.Host, targetKind(s.Action), s.Target)
	}
}

func validateControlStep(pr *problems, s Step, topo Topology) {
	if s.Host != "" {
		pr.add("step %q: %s runs in the leader and takes no host (got %q)", s.ID, s.Action, s.Host)
	}
	switch s.Action {
	case ActionActivate:
		if s.Target == "" || (len(topo.DataSites) > 0 && !slices.Contains(topo.DataSites, s.Target)) {
			pr.add("step %q: activate needs target = a data site (%s), got %q", s.ID, strings.Join(topo.DataSites, ", "), s.Target)
		}
	case ActionWait:
		if d, err := time.ParseDuration(s.Args["duration"]); err != nil || d <= 0 {
			pr.add("step %q: wait needs args duration = a positive duration, got %q", s.ID, s.Args["duration"])
		}
	case ActionNotify:
		if s.Args["message"] == "" {
			pr.add("step %q: notify needs args message", s.ID)
		}
	}
}

// validateArgsFrom checks that every ArgsFrom reference, "STEP_ID.KEY",
// names an ancestor of its step. The step id is everything before the
// last dot: output keys have none.
func validateArgsFrom(pr *problems, p *Plan, deps func(string) []string) {
	for _, s := range p.Steps {
		if len(s.ArgsFrom) == 0 {
			continue
		}
		anc := ancestors(s.ID, deps)
		for _, name := range sortedKeys(s.ArgsFrom) {
			ref := s.ArgsFrom[name]
			dot := strings.LastIndexByte(ref, '.')
			if dot <= 0 || dot == len(ref)-1 {
				pr.add("step %q: args_from %s = %q is not STEP_ID.OUTPUT_KEY", s.ID, name, ref)
				continue
			}
			if id := ref[:dot]; !anc[id] {
				pr.add("step %q: args_from %s = %q: step %q is not one it depends on, directly or not", s.ID, name, ref, id)
			}
		}
	}
}

// declares reports whether a declares what action acts on.
func declares(a *Agent, action, target string) bool {
	switch action {
	case ActionRsync:
		return slices.Contains(a.Syncs, target)
	case ActionSnapshot, ActionRestoreSnapshot:
		return slices.Contains(a.Snapshots, target)
	case ActionHook:
		return slices.Contains(a.Hooks, target)
	case ActionBackup, ActionRestoreBackup, ActionVerifyBackup:
		return slices.ContainsFunc(a.Services, func(s Service) bool { return s.Backup != "" && s.Backup == target })
	case ActionFence:
		if target == "" {
			return true
		}
	}
	return slices.ContainsFunc(a.Services, func(s Service) bool { return s.Name == target })
}

// declared lists what a declares of the kind action acts on.
func declared(a *Agent, action string) []string {
	switch action {
	case ActionRsync:
		return a.Syncs
	case ActionSnapshot, ActionRestoreSnapshot:
		return a.Snapshots
	case ActionHook:
		return a.Hooks
	case ActionBackup, ActionRestoreBackup, ActionVerifyBackup:
		var out []string
		for _, s := range a.Services {
			if s.Backup != "" {
				out = append(out, s.Backup)
			}
		}
		return out
	}
	out := make([]string, len(a.Services))
	for i, s := range a.Services {
		out[i] = s.Name
	}
	return out
}

// ancestors is every node id reaches through deps, id excluded.
func ancestors(id string, deps func(string) []string) map[string]bool {
	seen := map[string]bool{}
	stack := slices.Clone(deps(id))
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[n] {
			continue
		}
		seen[n] = true
		stack = append(stack, deps(n)...)
	}
	return seen
}

// findCycle returns a cycle through deps as its nodes, the first repeated
// at the end ("a", "b", "a"), or nil. Nodes are visited in order, so the
// answer is deterministic; dependencies on unknown nodes are ignored.
func findCycle(nodes []string, deps func(string) []string) []string {
	known := map[string]bool{}
	for _, n := range nodes {
		known[n] = true
	}
	state := map[string]int{} // 0 new, 1 on the path, 2 done
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		switch state[n] {
		case 1:
			return append(slices.Clone(path[slices.Index(path, n):]), n)
		case 2:
			return nil
		}
		state[n] = 1
		path = append(path, n)
		for _, d := range deps(n) {
			if !known[d] {
				continue
			}
			if c := visit(d); c != nil {
				return c
			}
		}
		path = path[:len(path)-1]
		state[n] = 2
		return nil
	}
	for _, n := range nodes {
		if c := visit(n); c != nil {
			return c
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
