package controlplane

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drplane/drplane/internal/structs"
)

// applyInitSites seeds the sites and epoch 1, once. The first leader
// proposes it from its configuration; later leaders' proposals are
// rejected, so the cluster keeps what it first agreed on.
func (f *FSM) applyInitSites(req *structs.InitSitesRequest, index uint64) string {
	if f.state.Initialized {
		return "sites are already initialized"
	}
	site, ok := findSite(req.Sites, req.ActiveSite)
	if !ok || site.Kind != structs.SiteKindData {
		return fmt.Sprintf("active site %q is not a declared data site", req.ActiveSite)
	}
	f.state.Initialized = true
	f.state.Sites = slices.Clone(req.Sites)
	f.state.ActiveSite = req.ActiveSite
	f.state.Epoch = 1
	f.auditLocked(index, &req.WriteRequest, "init-sites",
		fmt.Sprintf("sites %s; active site %s; epoch 1", siteNames(req.Sites), req.ActiveSite))
	return ""
}

// applySetActiveSite is the compare-and-set at the heart of fencing: the
// active site changes, and the epoch moves on, only from the epoch the
// caller saw (invariant 1).
func (f *FSM) applySetActiveSite(req *structs.SetActiveSiteRequest, index uint64) string {
	if !f.state.Initialized {
		return "sites are not initialized yet"
	}
	if req.ExpectedEpoch != f.state.Epoch {
		return fmt.Sprintf("epoch is %d, not %d", f.state.Epoch, req.ExpectedEpoch)
	}
	site, ok := findSite(f.state.Sites, req.Site)
	if !ok {
		return fmt.Sprintf("site %q is not declared (sites: %s)", req.Site, siteNames(f.state.Sites))
	}
	if site.Kind != structs.SiteKindData {
		return fmt.Sprintf("site %q is a %s site; only data sites can be active", req.Site, site.Kind)
	}
	from := f.state.ActiveSite
	f.state.ActiveSite = req.Site
	f.state.Epoch++
	f.auditLocked(index, &req.WriteRequest, "set-active-site",
		fmt.Sprintf("active site %s -> %s; epoch %d -> %d; reason: %s", from, req.Site, req.ExpectedEpoch, f.state.Epoch, req.Reason))
	return ""
}

func findSite(sites []structs.Site, name string) (structs.Site, bool) {
	for _, s := range sites {
		if s.Name == name {
			return s, true
		}
	}
	return structs.Site{}, false
}

func siteNames(sites []structs.Site) string {
	names := make([]string, len(sites))
	for i, s := range sites {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}
