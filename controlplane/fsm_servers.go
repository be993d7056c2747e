package controlplane

import (
	"fmt"

	"github.com/drplane/drplane/internal/structs"
)

// applyUpsertServer records a server's site and addresses. Raft's own
// configuration decides membership; this record lets followers find the
// leader's gRPC address and lets status show sites.
func (f *FSM) applyUpsertServer(req *structs.UpsertServerRequest, index uint64) string {
	s := req.Server
	if s.ID == "" {
		return "server id is empty"
	}
	if _, ok := findSite(f.state.Sites, s.Site); f.state.Initialized && !ok {
		return fmt.Sprintf("server %s: site %q is not declared (sites: %s)", s.ID, s.Site, siteNames(f.state.Sites))
	}
	if prev, ok := f.state.Servers[s.ID]; ok && prev == s {
		return ""
	}
	f.state.Servers[s.ID] = s
	f.auditLocked(index, &req.WriteRequest, "upsert-server",
		fmt.Sprintf("server %s at site %s, grpc %s, raft %s", s.ID, s.Site, s.Address, s.RaftAddress))
	return ""
}

// applyRemoveServer drops a server's record after Raft removed it.
func (f *FSM) applyRemoveServer(req *structs.RemoveServerRequest, index uint64) string {
	if _, ok := f.state.Servers[req.ID]; !ok {
		return fmt.Sprintf("server %q is not known", req.ID)
	}
	delete(f.state.Servers, req.ID)
	f.auditLocked(index, &req.WriteRequest, "remove-server", fmt.Sprintf("server %s removed", req.ID))
	return ""
}
