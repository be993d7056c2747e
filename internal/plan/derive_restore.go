package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// restore restores opts.Service, a data service of the active site, from
// its backup block, in place, and the state of the services it stops
// (their snapshot blocks) to the snapshots of the same time:
//
//   - drain: stop every service of the site that depends on it, directly
//     or not, in reverse dependency order;
//   - restore-point: while the data service still runs, take a backup of
//     it (what it held when its writers stopped) and a snapshot of every
//     snapshot block of the site's hosts, so that the restore can be
//     undone;
//   - restore: stop its standbys at the other data sites and the service
//     itself, then restore it to the target and bring it up as primary,
//     and restore the snapshot blocks that hold the state of a stopped
//     service to the newest snapshot taken at or before the target (for
//     the newest state, the paths stay as the services left them);
//   - start: start the dependents in dependency order, each health-gated;
//   - verify: check what was brought up;
//   - reprotect: rejoin each standby to the restored primary (pg_rewind,
//     or a new clone when its history went past the restore point).
func (b *builder) restore(opts DeriveOptions) {
	A := b.from
	name := opts.Service
	s, err := b.restoreTarget(name)
	if err != nil {
		b.probs.add("%v", err)
		return
	}
	order, err := A.startOrder()
	if err != nil {
		b.probs.add("%v", err)
		return
	}
	selected, err := restartSelection(A, order, name)
	if err != nil {
		b.probs.add("%v", err)
		return
	}
	stops := b.stopAll(order, func(d *siteService) bool { return selected[d.name] && d.name != name })
	point := b.restorePoint(s, stops)
	down := b.stopForRestore(s, point)
	state := b.restoreState(opts, order, selected, down)
	var args map[string]string // nil for the newest state: a plan's JSON round-trips
	switch {
	case !opts.RestoreToTime.IsZero():
		args = map[string]string{ArgRestoreToTime: opts.RestoreToTime.UTC().Format(time.RFC3339Nano)}
	case opts.RestoreLabel != "":
		args = map[string]string{ArgRestoreLabel: opts.RestoreLabel}
	}
	up := map[string][]string{}
	primary := s.hosts[0]
	st := agentStep("restore:"+name+"@"+primary.agent.HostID, PhaseRestore, ActionRestoreBackup, primary.agent, primary.svc.Backup)
	st.DependsOn, st.Args = append(down, state[name]...), args
	st.Description = fmt.Sprintf("restore %s on %s from backup block %s to %s, start it and wait until it recovered and runs as primary",
		name, primary.agent.HostID, primary.svc.Backup, restoreTargetText(opts))
	restored := b.add(st)
	up[name] = []string{restored}
	for _, n := range order {
		if selected[n] && n != name {
			b.startAll(n, append([]string{restored}, state[n]...), up)
		}
	}
	b.checkAll(up)
	for _, sb := range b.standbysOf(name) {
		d := agentStep("demote:"+name+"@"+sb.agent.HostID, PhaseReprotect, ActionDemote, sb.agent, name)
		d.DependsOn = []string{restored}
		d.Args = upstreamArgs(primary)
		d.OnFailure = OnFailureContinue
		d.Description = fmt.Sprintf("rejoin %s on %s as a standby of the restored %s on %s (pg_rewind, or a new clone)",
			name, sb.agent.HostID, name, primary.agent.HostID)
		b.add(d)
	}
}

// restoreTarget is the active site's data service name, which one host
// runs and backs up.
func (b *builder) restoreTarget(name string) (*siteService, error) {
	A := b.from
	var data []string
	for _, n := range A.order {
		if A.svc[n].promotable {
			data = append(data, n)
		}
	}
	s := A.svc[name]
	switch {
	case name == "":
		return nil, fmt.Errorf("a restore needs the data service to restore: one of %s", strings.Join(data, ", "))
	case s == nil:
		return nil, fmt.Errorf("no host at the active site %q declares service %q%s; data services: %s",
			A.name, name, didYouMean(name, data), strings.Join(data, ", "))
	case !s.promotable:
		return nil, fmt.Errorf("service %q is not a data service (a postgres service); data services: %s", name, strings.Join(data, ", "))
	case len(s.hosts) != 1:
		return nil, fmt.Errorf("service %q runs on %d hosts of site %q; a restore restores one primary", name, len(s.hosts), A.name)
	case s.hosts[0].svc.Backup == "":
		return nil, fmt.Errorf("%s declares no backup block of service %q; add backup \"<name>\" { service = %q ... } to its agent's config",
			s.hosts[0].agent.HostID, name, name)
	}
	return s, nil
}

// restorePoint takes, after the stops, a backup of s and a snapshot of
// every snapshot block the active site's hosts declare.
func (b *builder) restorePoint(s *siteService, after []string) []string {
	h := s.hosts[0]
	st := agentStep("backup:"+s.name+"@"+h.agent.HostID, PhaseRestorePoint, ActionBackup, h.agent, h.svc.Backup)
	st.DependsOn, st.Args = slices.Clone(after), map[string]string{"kind": "incr"}
	st.Description = fmt.Sprintf("restoration point: a backup of %s on %s before it is restored", s.name, h.agent.HostID)
	out := []string{b.add(st)}
	for _, a := range b.from.agents {
		for _, block := range a.Snapshots {
			sn := agentStep("snapshot:"+block+"@"+a.HostID, PhaseRestorePoint, ActionSnapshot, a, block)
			sn.DependsOn = slices.Clone(after)
			sn.Description = fmt.Sprintf("restoration point: a snapshot of %s on %s", block, a.HostID)
			out = append(out, b.add(sn))
		}
	}
	return out
}

// stopForRestore stops s's standbys at the other data sites and then s,
// after the restoration point; it returns the stops.
func (b *builder) stopForRestore(s *siteService, after []string) []string {
	var out []string
	for _, sb := range b.standbysOf(s.name) {
		st := agentStep("stop:"+s.name+"@"+sb.agent.HostID, PhaseRestore, ActionStop, sb.agent, s.name)
		st.DependsOn = slices.Clone(after)
		st.Description = fmt.Sprintf("stop the standby %s on %s: it follows a history the restore abandons", s.name, sb.agent.HostID)
		out = append(out, b.add(st))
	}
	h := s.hosts[0]
	st := agentStep("stop:"+s.name+"@"+h.agent.HostID, PhaseRestore, ActionStop, h.agent, s.name)
	st.DependsOn = slices.Clone(after)
	st.Description = fmt.Sprintf("stop %s on %s for the restore", s.name, h.agent.HostID)
	return append(out, b.add(st))
}

// restoreState restores, after the stops, every snapshot block that holds
// the state of a selected service on the active site to the newest
// snapshot taken at or before the restore's target; it returns each
// service's restores. A restore to the newest state restores none.
func (b *builder) restoreState(opts DeriveOptions, order []string, selected map[string]bool, after []string) map[string][]string {
	var args map[string]string
	at := restoreTargetText(opts)
	switch {
	case !opts.RestoreToTime.IsZero():
		args = map[string]string{ArgSnapshotAt: opts.RestoreToTime.UTC().Format(time.RFC3339Nano)}
	case opts.RestoreLabel != "":
		args = map[string]string{ArgSnapshotAtBackup: opts.RestoreLabel}
		at = "the end of backup " + opts.RestoreLabel
	default:
		return nil
	}
	out := map[string][]string{}
	for _, n := range order {
		if !selected[n] {
			continue
		}
		for _, h := range b.from.svc[n].hosts {
			for _, block := range h.svc.StateSnapshots {
				st := agentStep("restore-snapshot:"+block+"@"+h.agent.HostID, PhaseRestore, ActionRestoreSnapshot, h.agent, block)
				st.DependsOn, st.Args = slices.Clone(after), maps.Clone(args)
				st.Description = fmt.Sprintf("restore snapshot block %s (the state of %s) on %s to its newest snapshot taken at or before %s",
					block, n, h.agent.HostID, at)
				out[n] = append(out[n], b.add(st))
			}
		}
	}
	return out
}

// standbysOf are the hosts of the other data sites that declare the data
// service name.
func (b *builder) standbysOf(name string) []hostService {
	var out []hostService
	for _, site := range dataSites(b.topo) {
		if site == b.from.name {
			continue
		}
		if s := newSiteView(&b.topo, site).svc[name]; s != nil {
			out = append(out, s.hosts...)
		}
	}
	return out
}

// restoreTargetText describes a restore's target for step descriptions.
func restoreTargetText(opts DeriveOptions) string {
	switch {
	case !opts.RestoreToTime.IsZero():
		return opts.RestoreToTime.UTC().Format(time.RFC3339)
	case opts.RestoreLabel != "":
		return "backup " + opts.RestoreLabel
	}
	return "the newest state the repository holds"
}

// restoreDrill verifies, at the target site, the newest backup of each
// data service there that has a backup block: restored into a scratch
// copy on the first host that declares it, started on a side port,
// queried and removed. Production is untouched; the step's duration is
// what a restore of that backup takes there.
func (b *builder) restoreDrill() {
	T := b.to
	for _, name := range T.order {
		s := T.svc[name]
		if !s.promotable {
			continue
		}
		for _, h := range s.hosts {
			if h.svc.Backup == "" {
				continue
			}
			st := agentStep("verify-backup:"+name+"@"+h.agent.HostID, PhaseVerify, ActionVerifyBackup, h.agent, h.svc.Backup)
			st.HealthGate = true
			st.Description = fmt.Sprintf("restore the newest backup of %s (block %s) into a scratch copy on %s, start it on a side port, query it and remove it",
				name, h.svc.Backup, h.agent.HostID)
			b.add(st)
			break
		}
	}
	if len(b.steps) == 0 {
		b.probs.add("nothing to drill: no host at site %s declares a backup block of a data service", T.name)
	}
}
