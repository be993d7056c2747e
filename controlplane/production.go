package controlplane

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// productionProblems lists what is down at the active site by this
// leader's latest probes (DESIGN.md section 6: production is never left
// stopped in silence): every declared service of an active-site agent must
// run and be healthy, as a primary or, for a data service, a standby of
// the site's primary, and every data service needs a primary there. A host
// not probed yet in this term is not judged; one whose probe failed is.
func (s *Server) productionProblems(v stateView) []*pb.ProductionProblem {
	var out []*pb.ProductionProblem
	hasPrimary, dataServices := map[string]bool{}, map[string]bool{}
	for _, a := range hostsAt(v.Agents, v.ActiveSite) {
		for _, svc := range a.Services {
			dataServices[svc.Name] = dataServices[svc.Name] || svc.Promotable
		}
		r, ok := s.probes.get(a.HostID)
		if !ok {
			// Unknown yet: nothing is claimed, a primary there included.
			for _, svc := range a.Services {
				hasPrimary[svc.Name] = true
			}
			continue
		}
		if r.err != nil {
			out = append(out, &pb.ProductionProblem{HostId: a.HostID, Problem: "does not answer the leader's probes: " + r.err.Error()})
			continue
		}
		reported := map[string]*pb.ServiceStatus{}
		for _, st := range r.resp.GetServices() {
			reported[st.GetName()] = st
		}
		for _, svc := range a.Services {
			st := reported[svc.Name]
			if st.GetRole() == pb.ServiceRole_SERVICE_ROLE_PRIMARY {
				hasPrimary[svc.Name] = true
			}
			if problem := serviceProblem(svc, st); problem != "" {
				out = append(out, &pb.ProductionProblem{HostId: a.HostID, Service: svc.Name, Problem: problem})
			}
		}
	}
	for name, data := range dataServices {
		if data && !hasPrimary[name] {
			out = append(out, &pb.ProductionProblem{Service: name, Problem: "no primary at site " + v.ActiveSite})
		}
	}
	slices.SortFunc(out, func(a, b *pb.ProductionProblem) int {
		return strings.Compare(a.GetHostId()+"/"+a.GetService(), b.GetHostId()+"/"+b.GetService())
	})
	return out
}

// serviceProblem says what is wrong with one declared service of an
// active-site host as its agent reported it (st nil: not reported); empty
// when it runs as it should.
func serviceProblem(svc structs.Service, st *pb.ServiceStatus) string {
	role := st.GetRole()
	switch {
	case st == nil:
		return "not reported by its agent"
	case role == pb.ServiceRole_SERVICE_ROLE_STANDBY && !svc.Promotable,
		role != pb.ServiceRole_SERVICE_ROLE_PRIMARY && role != pb.ServiceRole_SERVICE_ROLE_STANDBY:
		return withDetail(structs.RoleName(role), st.GetMessage())
	case !st.GetHealthy():
		return withDetail(structs.RoleName(role)+", unhealthy", st.GetMessage())
	}
	return ""
}

func withDetail(what, detail string) string {
	if detail == "" {
		return what
	}
	return fmt.Sprintf("%s: %s", what, detail)
}
