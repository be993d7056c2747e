package controlplane

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	"github.com/drplane/drplane/internal/wirecheck"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// defaultDrillWithin is how recent the last successful drill of the
// failover plan must be for readiness: a quarter, the plans' programme.
const defaultDrillWithin = 92 * 24 * time.Hour

// Readiness check names.
const (
	readySite        = "site"
	readyAgents      = "agents"
	readyPlan        = "plan"
	readyReplication = "replication"
	readySyncs       = "syncs"
	readyBackups     = "backups"
	readyDrill       = "drill"
)

// readiness judges, on the leader, whether a failover to site would
// succeed now within the objectives: its agents answer and its services
// are in place, the plan derives, the data it would lose is bounded and
// within the guard and the RPO objective, its sync blocks and the backups
// are sound, and the failover plan was drilled within drillWithin.
func (s *Server) readiness(site string, drillWithin time.Duration) *pb.Readiness {
	if drillWithin <= 0 {
		drillWithin = defaultDrillWithin
	}
	out := &pb.Readiness{Site: site}
	add := func(name string, ok bool, format string, args ...any) {
		out.Checks = append(out.Checks, &pb.ReadinessCheck{Name: name, Ok: ok, Detail: fmt.Sprintf(format, args...)})
	}
	v := s.fsm.view()
	siteOK := slices.ContainsFunc(v.Sites, func(st structs.Site) bool { return st.Name == site && st.Kind == structs.SiteKindData })
	switch {
	case !siteOK:
		add(readySite, false, "%s is not a data site of the cluster", wirecheck.Quote(site))
	case site == v.ActiveSite:
		add(readySite, false, "%s is the active site: a failover goes to another data site", site)
	default:
		add(readySite, true, "%s is a data site; %s is active", site, v.ActiveSite)
	}
	if !siteOK || site == v.ActiveSite {
		return out
	}
	s.readyAgents(v, site, add)
	p, err := s.derivePlan(v, &pb.StartExecutionRequest{Kind: string(plan.KindFailover), To: site}, "ready")
	if err != nil {
		add(readyPlan, false, "the failover plan does not derive: %v", err)
	} else {
		add(readyPlan, true, "plan %s derives: %d steps", p.Name, len(p.Steps))
	}
	exp := s.rpoExposure(site, nil)
	guard := s.config.Failover.MaxDataLoss
	switch {
	case !exp.known:
		add(readyReplication, false, "what a failover now would lose cannot be bounded: %s", exp.detail)
	case exp.seconds > guard.Seconds():
		add(readyReplication, false, "a failover now would lose up to %.1fs, over the guard max_data_loss %s: %s", exp.seconds, guard, exp.detail)
	case p != nil && p.Objectives.HasRPO() && exp.seconds > p.Objectives.RPO.Seconds():
		add(readyReplication, false, "a failover now would lose up to %.1fs, over the plan's RPO objective %s: %s", exp.seconds, p.Objectives.RPO, exp.detail)
	default:
		add(readyReplication, true, "a failover now would lose up to %.1fs (guard %s): %s", exp.seconds, guard, exp.detail)
	}
	s.readySyncs(v, site, add)
	s.readyBackups(v, add)
	last, drilled := s.fsm.lastSiteDrill(site)
	switch {
	case !drilled:
		add(readyDrill, false, "no site drill ever succeeded at %s: run drplane drill --to %s", site, site)
	case time.Since(last.FinishedAt) > drillWithin:
		add(readyDrill, false, "the last successful site drill at %s, %s, ended %s ago, more than %s", site, last.ID,
			time.Since(last.FinishedAt).Round(time.Hour), drillWithin)
	default:
		add(readyDrill, true, "drill %s succeeded %s ago", last.ID, time.Since(last.FinishedAt).Round(time.Second))
	}
	out.Ready = !slices.ContainsFunc(out.Checks, func(c *pb.ReadinessCheck) bool { return !c.GetOk() })
	return out
}

// readyAgents checks that every agent of site answers, fences nothing,
// and runs its data services as healthy standbys and nothing unknown.
func (s *Server) readyAgents(v stateView, site string, add func(string, bool, string, ...any)) {
	var problems []string
	n := 0
	for _, a := range v.Agents {
		if a.Site != site {
			continue
		}
		n++
		r, ok := s.probes.get(a.HostID)
		switch {
		case !ok:
			problems = append(problems, a.HostID+" not probed yet")
			continue
		case r.err != nil:
			problems = append(problems, fmt.Sprintf("%s does not answer: %v", a.HostID, r.err))
			continue
		case r.resp.GetFenced():
			problems = append(problems, fmt.Sprintf("%s fenced a service: %s", a.HostID, r.resp.GetFenceReason()))
		}
		promotable := map[string]bool{}
		for _, svc := range a.Services {
			promotable[svc.Name] = svc.Promotable
		}
		for _, svc := range r.resp.GetServices() {
			role := structs.RoleName(svc.GetRole())
			switch {
			case promotable[svc.GetName()] && (role != structs.RoleStandby || !svc.GetHealthy()):
				problems = append(problems, fmt.Sprintf("%s %s is %s, not a healthy standby", a.HostID, svc.GetName(), role))
			case role == structs.RoleUnknown || role == structs.RoleFenced:
				problems = append(problems, fmt.Sprintf("%s %s is %s: %s", a.HostID, svc.GetName(), role, svc.GetMessage()))
			}
		}
	}
	switch {
	case n == 0:
		add(readyAgents, false, "no agent is registered at %s", site)
	case len(problems) > 0:
		add(readyAgents, false, "%s", strings.Join(problems, "; "))
	default:
		add(readyAgents, true, "%d agents answer; data services are healthy standbys", n)
	}
}

// readySyncs checks that every sync block of site has synced and that its
// last rsync succeeded.
func (s *Server) readySyncs(v stateView, site string, add func(string, bool, string, ...any)) {
	var problems []string
	n := 0
	for _, a := range v.Agents {
		r, ok := s.probes.get(a.HostID)
		if a.Site != site || !ok || r.lastResp == nil {
			continue
		}
		for _, sy := range r.lastResp.GetSyncs() {
			n++
			switch {
			case sy.GetLastError() != "":
				problems = append(problems, fmt.Sprintf("%s %s: the last rsync failed: %s", a.HostID, sy.GetName(), sy.GetLastError()))
			case sy.GetLastSuccessAt() == nil:
				problems = append(problems, fmt.Sprintf("%s %s has never synced", a.HostID, sy.GetName()))
			}
		}
	}
	switch {
	case len(problems) > 0:
		add(readySyncs, false, "%s", strings.Join(problems, "; "))
	case n == 0:
		add(readySyncs, true, "no sync blocks at %s", site)
	default:
		add(readySyncs, true, "%d sync blocks synced", n)
	}
}

// readyBackups checks the backup blocks where they archive: no warning
// (a stale backup, a failed or overdue verification) and the last
// verification passed.
func (s *Server) readyBackups(v stateView, add func(string, bool, string, ...any)) {
	var problems, fine []string
	declared := 0
	for _, a := range v.Agents {
		r, ok := s.probes.get(a.HostID)
		if !ok || r.lastResp == nil {
			continue
		}
		for _, b := range r.lastResp.GetBackups() {
			declared++
			if !b.GetArchiving() {
				continue
			}
			name := a.HostID + " " + b.GetName()
			switch lv := b.GetLastVerification(); {
			case len(b.GetWarnings()) > 0:
				problems = append(problems, name+": "+strings.Join(b.GetWarnings(), "; "))
			case lv != nil && !lv.GetOk():
				problems = append(problems, fmt.Sprintf("%s: the verification of %s failed: %s", name, lv.GetLabel(), lv.GetReason()))
			case lv == nil:
				problems = append(problems, name+": never verified (drplane backup verify)")
			default:
				fine = append(fine, fmt.Sprintf("%s: verified %s", name, lv.GetLabel()))
			}
		}
	}
	switch {
	case len(problems) > 0:
		add(readyBackups, false, "%s", strings.Join(problems, "; "))
	case declared == 0:
		add(readyBackups, true, "no backup blocks declared")
	case len(fine) == 0:
		add(readyBackups, false, "%d backup blocks declared, but no host archives", declared)
	default:
		add(readyBackups, true, "%s", strings.Join(fine, "; "))
	}
}

// CheckReadiness says whether a failover to a site would succeed now.
func (e *operatorEndpoint) CheckReadiness(ctx context.Context, req *pb.CheckReadinessRequest) (*pb.CheckReadinessResponse, error) {
	return withLeader(ctx, e.srv, req, via(pb.NewOperatorClient, pb.OperatorClient.CheckReadiness), func(ctx context.Context, req *pb.CheckReadinessRequest) (*pb.CheckReadinessResponse, error) {
		if err := e.srv.verifyLeader(ctx); err != nil {
			return nil, err
		}
		within := time.Duration(req.GetDrillWithinSeconds() * float64(time.Second))
		return &pb.CheckReadinessResponse{Meta: e.srv.meta(false), Readiness: e.srv.readiness(req.GetTo(), within)}, nil
	})
}
