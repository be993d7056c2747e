package plan

import (
	"fmt"
	"strings"
)

// restart stops the active site's services, or service and every
// service that depends on it (directly or not), in reverse dependency
// order, then starts them in dependency order, each health-gated, and
// checks them. A service outside the selection keeps running, and the
// starts wait for nothing of it. A start is done on a running service as
// on a stopped one: the stop comes first, so every selected service runs
// a fresh process afterwards.
func (b *builder) restart(service string) {
	A := b.from
	order, err := A.startOrder()
	if err != nil {
		b.probs.add("%v", err)
		return
	}
	selected, err := restartSelection(A, order, service)
	if err != nil {
		b.probs.add("%v", err)
		return
	}
	stops := b.stopAll(order, func(s *siteService) bool { return selected[s.name] })
	up := map[string][]string{}
	for _, name := range order {
		if selected[name] {
			b.startAll(name, stops, up)
		}
	}
	b.checkAll(up)
}

// restartSelection is the services a restart of service restarts: all
// of order when service is empty, otherwise service and every service
// of the site that depends on it, directly or through others.
func restartSelection(v *siteView, order []string, service string) (map[string]bool, error) {
	selected := map[string]bool{}
	if service == "" {
		for _, n := range order {
			selected[n] = true
		}
		return selected, nil
	}
	if v.svc[service] == nil {
		return nil, fmt.Errorf("no host at the active site %q declares service %q%s; declared: %s",
			v.name, service, didYouMean(service, v.order), strings.Join(v.order, ", "))
	}
	var visit func(n string)
	visit = func(n string) {
		if selected[n] {
			return
		}
		selected[n] = true
		for _, d := range v.dependents(n) {
			visit(d)
		}
	}
	visit(service)
	return selected, nil
}
