package controlplane

import (
	"fmt"
	"reflect"
	"time"

	"github.com/drplane/drplane/internal/structs"
)

// applyRegisterAgent records an agent, or replaces its record when it
// re-registers (after a restart or a change of its config). An agent may
// only live in a declared data site.
func (f *FSM) applyRegisterAgent(req *structs.RegisterAgentRequest, index uint64) string {
	a := req.Agent
	if a.HostID == "" {
		return "agent host id is empty"
	}
	site, ok := findSite(f.state.Sites, a.Site)
	if !ok {
		return fmt.Sprintf("agent %s: site %q is not declared (sites: %s)", a.HostID, a.Site, siteNames(f.state.Sites))
	}
	if site.Kind != structs.SiteKindData {
		return fmt.Sprintf("agent %s: site %q is a %s site; agents run in data sites", a.HostID, a.Site, site.Kind)
	}
	prev, existed := f.state.Agents[a.HostID]
	a.RegisteredAt = req.Time
	if existed && sameAgent(prev, a) {
		// A restart with an unchanged config is not worth an audit line.
		return ""
	}
	f.state.Agents[a.HostID] = a
	verb := "registered"
	if existed {
		verb = "re-registered"
	}
	f.auditLocked(index, &req.WriteRequest, "register-agent",
		fmt.Sprintf("agent %s %s at site %s, address %s, %d services", a.HostID, verb, a.Site, a.Address, len(a.Services)))
	return ""
}

// applyDeregisterAgent removes an agent. Removing an unknown agent is
// rejected so that a typo in a host id is not silently accepted.
func (f *FSM) applyDeregisterAgent(req *structs.DeregisterAgentRequest, index uint64) string {
	if _, ok := f.state.Agents[req.HostID]; !ok {
		return fmt.Sprintf("agent %q is not registered", req.HostID)
	}
	delete(f.state.Agents, req.HostID)
	f.auditLocked(index, &req.WriteRequest, "deregister-agent", fmt.Sprintf("agent %s deregistered", req.HostID))
	return ""
}

// sameAgent compares two records, ignoring the registration time.
func sameAgent(a, b structs.Agent) bool {
	a.RegisteredAt, b.RegisteredAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}
