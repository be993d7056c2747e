package plan

import "fmt"

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
