package plan

import (
	"fmt"
	"slices"
	"strings"
)

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
	if kind == KindRestart || kind == KindRestore {
		// In place: the active site is also the target.
		if opts.To != "" && opts.To != from {
			return "", "", fmt.Errorf("a %s runs at the active site %q; it takes no other target site (got %q)", kind, from, opts.To)
		}
		return from, from, nil
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
