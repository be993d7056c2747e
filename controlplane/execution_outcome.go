package controlplane

import (
	"fmt"
	"strings"

	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
)

// outcomeNote says what an execution that did not succeed left behind
// (DESIGN.md section 6: production is never left stopped in silence):
// what its rollback started again at the original site and what it could
// not, or, once the target was activated, what is not up there and the
// one command that finishes the job. Empty when neither applies.
func outcomeNote(ex *structs.Execution) string {
	if activated(ex) || ex.Plan.Finishes != "" {
		return notServing(ex)
	}
	var back, down []string
	for i, st := range ex.Plan.Steps {
		if !st.Rollback {
			continue
		}
		what := st.Target + " on " + st.Host
		switch es := ex.Steps[i]; es.State {
		case structs.StepSucceeded:
			back = append(back, what)
		case structs.StepFailed, structs.StepCancelled:
			down = append(down, fmt.Sprintf("%s (%s)", what, es.Message))
		}
	}
	switch {
	case len(back) == 0 && len(down) == 0:
		return ""
	case len(down) == 0:
		return fmt.Sprintf("rolled back: %s was not activated and serves as before; started again: %s", ex.From, strings.Join(back, ", "))
	}
	note := fmt.Sprintf("rollback incomplete: %s was not activated, but these are still down there: %s", ex.From, strings.Join(down, "; "))
	if len(back) > 0 {
		note += "; started again: " + strings.Join(back, ", ")
	}
	return note + "; start them on their hosts once they answer (`drplane status` shows what is down), or run the " + ex.Kind + " again"
}

// notServing lists what an execution that activated its target did not
// bring up there, and the command that does.
func notServing(ex *structs.Execution) string {
	var down []string
	for i, st := range ex.Plan.Steps {
		if st.Rollback || st.Always || st.Site != ex.To {
			continue
		}
		switch st.Phase {
		case plan.PhasePromote, plan.PhaseStart, plan.PhaseVerify:
		default:
			continue
		}
		es := ex.Steps[i]
		what := st.Target + " on " + st.Host
		switch es.State {
		case structs.StepSucceeded:
		case structs.StepPending:
			if st.Phase != plan.PhaseVerify {
				down = append(down, what+" ("+st.Action+" never ran)")
			}
		default:
			down = append(down, fmt.Sprintf("%s (%s %s: %s)", what, st.Action, es.State, es.Message))
		}
	}
	if len(down) == 0 {
		return ""
	}
	kind := plan.KindFailover
	if ex.Kind != string(plan.KindFailover) {
		kind = plan.KindSwitchover // a failback's rest is a switchover's
	}
	return fmt.Sprintf("%s is active but not serving fully: %s; finish with `drplane %s --to %s`",
		ex.To, strings.Join(down, "; "), kind, ex.To)
}
