package controlplane

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
)

// verdict is the detector's latest judgement of the active site, kept in
// the leader's memory for `drplane status`.
type verdict struct {
	At   time.Time
	Site string
	// Lost is true when the site is declared lost; WouldFail says whether
	// an automatic failover fires (or fired) for it, and Reason why or
	// why not.
	Lost      bool
	WouldFire bool
	Reason    string
	// Trigger is when the site went silent (its first missed probe).
	Trigger time.Time
	// LostHosts, when set, are the active site's hosts whose loss the
	// verdict is about: the hosts of a primary data service, silent while
	// the rest of the site answers, or answering with it down and not
	// restarted in place. Empty for the loss of a whole site.
	LostHosts []string
	// Down, when set, are primary services down on hosts that answer,
	// not brought back in place: what the verdict is about. DownSince is
	// the earliest instant one of them was last seen running (the send
	// time of the last probe that found it primary), which the outage is
	// counted from.
	Down      []downPrimary
	DownSince time.Time
}

// detector holds the verdict and keeps one detection at a time.
type detector struct {
	mu      sync.Mutex
	running bool
	last    verdict
}

func (d *detector) begin() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running {
		return false
	}
	d.running = true
	return true
}

// abort ends a detection that never ran, keeping the last verdict.
func (d *detector) abort() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running = false
}

func (d *detector) end(v verdict) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running, d.last = false, v
}

func (d *detector) verdict() verdict {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// detect judges the active site after a probe round, in a term goroutine
// of its own so that asking other vantage points never delays lease
// renewals.
func (s *Server) detect(ctx context.Context, rs *restarter) {
	if !s.detector.begin() {
		return
	}
	started := s.goLeader(func() {
		v := s.judgeActiveSite(ctx, s.clock.Now(), rs)
		if v.Lost && v.WouldFire {
			if id, err := s.startAutomaticFailover(ctx, v); err != nil {
				v.WouldFire, v.Reason = false, "automatic failover refused: "+err.Error()
				s.logger.Error("automatic failover not started", "site", v.Site, "error", err)
			} else {
				v.Reason = "automatic failover " + id + " started"
			}
		}
		s.detector.end(v)
	})
	if !started {
		s.detector.abort()
	}
}

// judgeActiveSite decides whether the active site is lost (DESIGN.md
// section 5): none of its agents answered for failover_timeout, none of
// its servers answers this leader, and every other vantage point agrees;
// then whether an automatic failover fires for it.
func (s *Server) judgeActiveSite(ctx context.Context, now time.Time, rs *restarter) verdict {
	st := s.fsm.view()
	v := verdict{At: now, Site: st.ActiveSite}
	since := s.leaderSinceTime()
	if v.Reason = s.tooSoonToJudge(since, now); v.Reason != "" {
		return v
	}
	agents := hostsAt(st.Agents, st.ActiveSite)
	if len(agents) == 0 {
		v.Reason = "no agent registered at the active site"
		return v
	}
	f := s.config.Failover
	upReason := func(answering []string) string {
		return fmt.Sprintf("site %s is up: %s answered within failover_timeout", st.ActiveSite, strings.Join(answering, ", "))
	}
	var answering []string
	answering, v.Trigger = s.answeringAgents(agents, since, now, f.FailoverTimeout)
	if len(answering) > 0 {
		// Silent for all but the last probe_timeout of failover_timeout:
		// look at the site's servers and ask the other vantage points
		// now, since against a partitioned site that takes up to
		// probe_timeout, and let their answer wait for
		// failover_timeout instead of the other way round.
		if recent, _ := s.answeringAgents(agents, since, now, f.FailoverTimeout-f.ProbeTimeout); len(recent) > 0 || f.ProbeTimeout >= f.FailoverTimeout {
			v.Reason = upReason(answering)
			return s.judgePrimaryHosts(ctx, st, v, agents, answering, since, now, rs)
		}
		if v.Reason = s.siteStillReached(ctx, st); v.Reason != "" {
			return v
		}
		if err := s.waitSilent(ctx, agents, since); err != nil {
			v.Reason = "judgement cut short: " + err.Error()
			return v
		}
		now = s.clock.Now()
		v.At = now
		if answering, v.Trigger = s.answeringAgents(agents, since, now, f.FailoverTimeout); len(answering) > 0 {
			v.Reason = upReason(answering)
			return v
		}
	} else if v.Reason = s.siteStillReached(ctx, st); v.Reason != "" {
		return v
	}
	v.Lost = true
	v.Reason = fmt.Sprintf("site %s lost: no agent answered for %s, no server answers, every vantage point agrees", st.ActiveSite, s.config.Failover.FailoverTimeout)
	v.WouldFire, v.Reason = s.judgeAutomaticFailover(st, now, v.Reason)
	return v
}

// judgePrimaryHosts judges, on a site that answers, whether a primary
// data service lost its host (DESIGN.md section 5 applied to one host):
// the host that last reported it primary has been silent for
// failover_timeout, no host of the site that answers reports it primary,
// and every other vantage point agrees the host is gone. Its agent cannot
// restart the service in place, so the site fails over as if lost; the
// silent host's lease lapses on its own, and the plan fences the others.
// Failing that, it judges whether a primary went down on a host that
// answers and was not brought back in place in time (judgeDownPrimaries).
// v comes back unchanged when no such host is lost.
func (s *Server) judgePrimaryHosts(ctx context.Context, st stateView, v verdict, agents []structs.Agent, answering []string, since, now time.Time, rs *restarter) verdict {
	lost, services, trigger, down := s.lostPrimaryHosts(agents, answering, since, rs)
	if len(lost) == 0 {
		return s.judgeDownPrimaries(st, v, agents, answering, now, rs)
	}
	if disagree := s.askVantagePoints(ctx, st, lost); disagree != "" {
		v.Reason = fmt.Sprintf("%s; the primary %s of %s silent here, but %s", v.Reason, plural(lost, "host", "hosts"), strings.Join(services, ", "), disagree)
		return v
	}
	v.Lost, v.LostHosts, v.Trigger = true, lost, trigger
	// A host whose last answer no longer showed its primary running lost
	// the service before it went silent: the outage counts from the last
	// probe that found it running.
	for _, d := range down {
		v.Down = append(v.Down, d)
		if v.DownSince.IsZero() || d.lastPrimary.Before(v.DownSince) {
			v.DownSince = d.lastPrimary
		}
	}
	v.Reason = fmt.Sprintf("primary %s %s of %s at site %s lost: no answer for %s, no other host there runs it as primary, every vantage point agrees",
		plural(lost, "host", "hosts"), strings.Join(lost, ", "), strings.Join(services, ", "), st.ActiveSite, s.config.Failover.FailoverTimeout)
	v.WouldFire, v.Reason = s.judgeAutomaticFailover(st, now, v.Reason)
	return v
}

// lostPrimaryHosts returns the silent hosts (not in answering) that ran a
// data service as primary, which no answering host reports primary, those
// services, and when the last of the hosts went silent. A host ran one
// when its last answer reported it primary, or when it was the last this
// term found running it as primary: a database that crashed (or could no
// longer be read) just before its host went silent is lost with the host.
// down are those of the second kind, whose outage began before the
// silence.
func (s *Server) lostPrimaryHosts(agents []structs.Agent, answering []string, since time.Time, rs *restarter) (lost, services []string, trigger time.Time, down []downPrimary) {
	live := s.livePrimaries(agents, answering)
	add := func(a structs.Agent, r probeResult, service string) bool {
		if !a.Promotable(service) || live[service] {
			return false
		}
		if !slices.Contains(lost, a.HostID) {
			lost = append(lost, a.HostID)
			if miss := wentSilent(r, since); miss.After(trigger) {
				trigger = miss
			}
		}
		if !slices.Contains(services, service) {
			services = append(services, service)
		}
		return true
	}
	for _, a := range agents {
		if slices.Contains(answering, a.HostID) {
			continue
		}
		r, _ := s.probes.get(a.HostID)
		for _, svc := range r.lastResp.GetServices() {
			if svc.GetRole() == pb.ServiceRole_SERVICE_ROLE_PRIMARY {
				add(a, r, svc.GetName())
			}
		}
		for _, d := range rs.primariesLastOn(a.HostID) {
			if serviceStatusOf(r.lastResp, d.service).GetRole() == pb.ServiceRole_SERVICE_ROLE_PRIMARY {
				continue
			}
			if add(a, r, d.service) {
				d.hostSilent = true
				down = append(down, d)
			}
		}
	}
	return lost, services, trigger, down
}

// livePrimaries are the data services an answering host runs as primary.
func (s *Server) livePrimaries(agents []structs.Agent, answering []string) map[string]bool {
	live := map[string]bool{}
	for _, a := range agents {
		if !slices.Contains(answering, a.HostID) {
			continue
		}
		r, _ := s.probes.get(a.HostID)
		for _, svc := range r.lastResp.GetServices() {
			if svc.GetRole() == pb.ServiceRole_SERVICE_ROLE_PRIMARY {
				live[svc.GetName()] = true
			}
		}
	}
	return live
}

// judgeDownPrimaries judges, on a site that answers, whether a primary
// data service went down on a host whose agent answers and was not
// brought back in place (watchPrimaries): down for primary_start_timeout,
// or two restarts in place in a row failed, and no answering host runs it
// as primary. The site then fails over as if the host were lost. Its
// agent answers, so its word is the evidence; no other vantage point is
// asked. v comes back unchanged otherwise.
func (s *Server) judgeDownPrimaries(st stateView, v verdict, agents []structs.Agent, answering []string, now time.Time, rs *restarter) verdict {
	live := s.livePrimaries(agents, answering)
	var hosts, services, details []string
	var down []downPrimary
	var downSince, trigger time.Time
	for _, d := range rs.overdue(now, s.config.Failover) {
		if live[d.service] || !slices.Contains(answering, d.host) {
			continue
		}
		if !slices.Contains(hosts, d.host) {
			hosts = append(hosts, d.host)
		}
		services, down = append(services, d.service), append(down, d)
		details = append(details, fmt.Sprintf("%s on %s, last found primary by the probe sent at %s, %s",
			d.service, d.host, d.lastPrimary.UTC().Format("15:04:05.000"), s.notBack(d)))
		// The outage of the first service to go down is the longest.
		if downSince.IsZero() || d.lastPrimary.Before(downSince) {
			downSince = d.lastPrimary
		}
		if trigger.IsZero() || d.since.Before(trigger) {
			trigger = d.since
		}
	}
	if len(services) == 0 {
		return v
	}
	v.Lost, v.LostHosts, v.Trigger, v.Down, v.DownSince = true, hosts, trigger, down, downSince
	v.Reason = fmt.Sprintf("primary %s %s down at site %s while %s %s: %s",
		plural(services, "service", "services"), strings.Join(services, ", "), st.ActiveSite, strings.Join(hosts, ", "), plural(hosts, "answers", "answer"), strings.Join(details, "; "))
	v.WouldFire, v.Reason = s.judgeAutomaticFailover(st, now, v.Reason)
	return v
}

// notBack says why a down primary d is given up on.
func (s *Server) notBack(d downPrimary) string {
	if d.hostSilent {
		return "then its host went silent"
	}
	if d.restartFailed != "" {
		return "restart in place failed: " + d.restartFailed
	}
	return fmt.Sprintf("not back in place within primary_start_timeout %s", s.config.Failover.PrimaryStartTimeout)
}

func plural(items []string, one, many string) string {
	if len(items) == 1 {
		return one
	}
	return many
}

// tooSoonToJudge says why this server judges nothing yet, or "". A new
// leader judges nothing on its predecessor's silence: every host gets a
// full failover_timeout of this leader's probes.
func (s *Server) tooSoonToJudge(since, now time.Time) string {
	switch {
	case since.IsZero():
		return "not leading"
	case now.Before(since.Add(s.config.Failover.FailoverTimeout)):
		return "new leader: observing for failover_timeout before judging"
	}
	return ""
}

// answeringAgents returns the agents that answered this leader within
// window before now, and, of the others, when the last of them went
// silent (its first missed probe): the trigger of an automatic failover.
// A silence counts from this leader's election at the earliest.
func (s *Server) answeringAgents(agents []structs.Agent, since, now time.Time, window time.Duration) (answering []string, trigger time.Time) {
	for _, a := range agents {
		last := s.lastAnswer(a.HostID, since)
		if now.Sub(last) < window {
			answering = append(answering, a.HostID)
			continue
		}
		r, _ := s.probes.get(a.HostID)
		if miss := wentSilent(r, since); miss.After(trigger) {
			trigger = miss
		}
	}
	return answering, trigger
}

// lastAnswer is when hostID last answered this leader, whose term began
// at since (since at the earliest).
func (s *Server) lastAnswer(hostID string, since time.Time) time.Time {
	r, _ := s.probes.get(hostID)
	if r.lastAnsweredAt.Before(since) {
		return since
	}
	return r.lastAnsweredAt
}

// waitSilent waits until none of agents has answered for
// failover_timeout, as far as their last answers so far go.
func (s *Server) waitSilent(ctx context.Context, agents []structs.Agent, since time.Time) error {
	var until time.Time
	for _, a := range agents {
		if u := s.lastAnswer(a.HostID, since).Add(s.config.Failover.FailoverTimeout); u.After(until) {
			until = u
		}
	}
	d := until.Sub(s.clock.Now())
	if d <= 0 {
		return nil
	}
	t := s.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

// wentSilent is when a host stopped answering this leader, whose term
// began at since: its first missed probe, or failing that its last answer
// (this term's start at the earliest).
func wentSilent(r probeResult, since time.Time) time.Time {
	if !r.firstMissAt.IsZero() {
		return r.firstMissAt
	}
	if r.lastAnsweredAt.Before(since) {
		return since
	}
	return r.lastAnsweredAt
}

// siteStillReached says why the active site, whose agents are all silent,
// is not lost, or "": this leader is one of its servers, one of its
// servers answers, or another vantage point still reaches it or none
// answers. This server's own look at the site and the other vantage
// points' run at once: against a partitioned site each waits out a probe
// timeout, and in turn they would add up.
func (s *Server) siteStillReached(ctx context.Context, st stateView) string {
	if s.config.Site == st.ActiveSite {
		// This leader is a server of the active site, and it runs.
		return fmt.Sprintf("agents of %s are silent but this leader (%s) is a server of that site: not a site loss", st.ActiveSite, s.config.NodeID)
	}
	disagreeCh := make(chan string, 1)
	go func() { disagreeCh <- s.askVantagePoints(ctx, st, nil) }()
	cctx, cancel := context.WithTimeout(ctx, s.config.Failover.ProbeTimeout)
	servers, _ := s.observeSite(cctx, st, st.ActiveSite)
	cancel()
	disagree := <-disagreeCh
	switch {
	case len(servers) > 0:
		return fmt.Sprintf("agents of %s are silent but its servers %s answer: not a site loss", st.ActiveSite, strings.Join(servers, ", "))
	case disagree != "":
		return "agents and servers of " + st.ActiveSite + " are silent here, but " + disagree
	}
	return ""
}

// judgeAutomaticFailover decides whether a lost active site is failed over
// automatically now, and adds why or why not to reason.
func (s *Server) judgeAutomaticFailover(st stateView, now time.Time, reason string) (bool, string) {
	f := s.config.Failover
	target, err := failoverTarget(st)
	switch {
	case !f.Automatic:
		return false, reason + "; automatic failover is off (failover { automatic = true })"
	case err != nil:
		return false, reason + "; " + err.Error()
	case s.fsm.runningExecutionIDs() != nil:
		return false, reason + "; an execution is running"
	}
	if why := s.fsm.automation().Blocked(now, f.Cooldown); why != "" {
		return false, reason + "; " + why
	}
	return true, reason + "; failing over to " + target
}

// observeSite lists the servers and agents of site that answer this
// server within ctx.
func (s *Server) observeSite(ctx context.Context, st stateView, site string) (servers, agents []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, srv := range st.Servers {
		if srv.Site != site || srv.ID == s.config.NodeID {
			continue
		}
		wg.Add(1)
		go func(srv structs.Server) {
			defer wg.Done()
			conn, err := s.conns.get(srv.Address)
			if err == nil {
				_, err = pb.NewPeerClient(conn).NodeInfo(ctx, &pb.NodeInfoRequest{})
			}
			if err == nil {
				mu.Lock()
				servers = append(servers, srv.ID)
				mu.Unlock()
			}
		}(srv)
	}
	for _, a := range st.Agents {
		if a.Site != site {
			continue
		}
		wg.Add(1)
		go func(a structs.Agent) {
			defer wg.Done()
			conn, err := s.agentConns.get(a.Address)
			if err == nil {
				_, err = pb.NewHostAgentClient(conn).Probe(ctx, &pb.ProbeRequest{ObserveOnly: true})
			}
			if err == nil {
				mu.Lock()
				agents = append(agents, a.HostID)
				mu.Unlock()
			}
		}(a)
	}
	wg.Wait()
	slices.Sort(servers)
	slices.Sort(agents)
	return servers, agents
}

// askVantagePoints asks every server outside the active site (but this
// one) whether it reaches the active site, or with hosts, those hosts of
// it. It returns "" when all that answer agree they are gone and at least
// one answered, else why not.
func (s *Server) askVantagePoints(ctx context.Context, st stateView, hosts []string) string {
	f := s.config.Failover
	var asked, answered []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	var seeing []string
	for _, srv := range st.Servers {
		if srv.Site == st.ActiveSite || srv.ID == s.config.NodeID {
			continue
		}
		asked = append(asked, srv.ID)
		wg.Add(1)
		go func(srv structs.Server) {
			defer wg.Done()
			conn, err := s.conns.get(srv.Address)
			if err != nil {
				return
			}
			// The vantage point runs its own checks under probe_timeout.
			cctx, cancel := context.WithTimeout(ctx, 2*f.ProbeTimeout+time.Second)
			defer cancel()
			resp, err := pb.NewPeerClient(conn).ObserveSite(cctx, &pb.ObserveSiteRequest{Site: st.ActiveSite, TimeoutMs: uint64(f.ProbeTimeout.Milliseconds())})
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			answered = append(answered, srv.ID)
			var reached []string
			if hosts == nil {
				reached = append(slices.Clone(resp.GetReachableServers()), resp.GetReachableAgents()...)
			} else {
				for _, h := range resp.GetReachableAgents() {
					if slices.Contains(hosts, h) {
						reached = append(reached, h)
					}
				}
			}
			if len(reached) > 0 {
				seeing = append(seeing, fmt.Sprintf("%s reaches %s", srv.ID, strings.Join(reached, ", ")))
			}
		}(srv)
	}
	wg.Wait()
	switch {
	case len(seeing) > 0:
		slices.Sort(seeing)
		return strings.Join(seeing, "; ")
	case len(asked) > 0 && len(answered) == 0:
		return "no other vantage point answered (" + strings.Join(asked, ", ") + ")"
	}
	return ""
}

// failoverTarget is the data site an automatic failover goes to: the one
// data site that is not active.
func failoverTarget(st stateView) (string, error) {
	var others []string
	for _, site := range st.Sites {
		if site.Kind == structs.SiteKindData && site.Name != st.ActiveSite {
			others = append(others, site.Name)
		}
	}
	if len(others) != 1 {
		return "", fmt.Errorf("automatic failover needs exactly one other data site, found %d (%s)", len(others), strings.Join(others, ", "))
	}
	return others[0], nil
}

// startAutomaticFailover starts the failover plan with trigger automatic,
// measured from the site's first missed probe.
func (s *Server) startAutomaticFailover(ctx context.Context, v verdict) (string, error) {
	st := s.fsm.view()
	target, err := failoverTarget(st)
	if err != nil {
		return "", err
	}
	actor := "server:" + s.config.NodeID + " (automatic)"
	ex, err := s.newExecution(&pb.StartExecutionRequest{Kind: string(plan.KindFailover), To: target}, actor, v.Trigger)
	if err != nil {
		return "", err
	}
	ex.Trigger = structs.TriggerAutomatic
	switch {
	case !v.DownSince.IsZero():
		// Its host answers: the outage began after the last probe that
		// found the service running.
		var down []string
		for _, d := range v.Down {
			down = append(down, fmt.Sprintf("%s on %s (%s)", d.service, d.host, s.notBack(d)))
		}
		ex.OutageSince = v.DownSince
		ex.RTODetail = fmt.Sprintf("from %s, when the leader's probe last found running the primary %s", v.DownSince.UTC().Format("15:04:05.000"), strings.Join(down, ", "))
		ex.RPODetail = "primary down on " + strings.Join(v.LostHosts, ", ") + " of site " + v.Site + "; " + ex.RPODetail
	case v.LostHosts != nil:
		s.countOutage(ex, st, v.Site, v.LostHosts)
		ex.RPODetail = "primary " + plural(v.LostHosts, "host", "hosts") + " " + strings.Join(v.LostHosts, ", ") + " of site " + v.Site + " lost; " + ex.RPODetail
	default:
		ex.RPODetail = "site " + v.Site + " lost; " + ex.RPODetail
	}
	_, err = s.raftApply(structs.StartExecutionRequestType, &structs.StartExecutionRequest{
		WriteRequest: structs.WriteRequest{RequestID: uuid.NewString(), Actor: actor},
		Execution:    *ex, Cooldown: s.config.Failover.Cooldown,
	})
	if err != nil {
		return "", err
	}
	s.logger.Warn("site lost: automatic failover started", "site", v.Site, "target", target, "execution_id", ex.ID, "trigger", v.Trigger)
	s.startExecutor(ctx, ex.ID)
	return ex.ID, nil
}
