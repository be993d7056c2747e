package plan

import (
	"fmt"
	"slices"
	"strings"
)

// deriveFinish derives what is left of a failover or switchover from
// opts.From that activated opts.To and then stopped: the same bring-up as
// the plan's own, after From's leases lapsed (they did long ago unless
// the execution stopped moments before), and for a switchover the
// reprotection of From. Every step is idempotent: a promote of a primary
// or a start of a running service succeeds at once.
func deriveFinish(kind Kind, topo Topology, opts DeriveOptions) (*Plan, error) {
	if kind != KindFailover && kind != KindSwitchover {
		return nil, fmt.Errorf("only a failover or a switchover can be finished, not a %s", kind)
	}
	from, to := opts.From, opts.To
	data := dataSites(topo)
	switch {
	case to == "" || to != topo.ActiveSite:
		return nil, fmt.Errorf("a %s is finished at the active site %q, not at %q", kind, topo.ActiveSite, to)
	case from == to || !slices.Contains(data, from):
		return nil, fmt.Errorf("site %q is not the data site a %s to %q started from; expected one of %s", from, kind, to, strings.Join(data, ", "))
	}
	b, err := newBuilder(kind, topo, from, to)
	if err != nil {
		return nil, err
	}
	p := newPlan(kind, from, to, nil, opts)
	p.Name, p.Finishes = string(kind)+"-finish", opts.FinishOf
	lw := b.add(Step{ID: "lease-wait:" + from, Phase: PhaseActivate, Action: ActionLeaseWait, Args: map[string]string{"site": from},
		Description: fmt.Sprintf("wait until every lease of %s's agents has lapsed (%s is active already)", from, to)})
	promotes := b.bringUp([]string{lw})
	if kind == KindSwitchover {
		b.reprotect(promotes)
	}
	b.warnMissing()
	if err := b.probs.err(); err != nil {
		return nil, err
	}
	return b.finish(p)
}
