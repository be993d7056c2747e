package hostagent

import (
	"context"
	"fmt"

	"github.com/drplane/drplane/hostagent/driver"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// A step the agent stopped during (SIGKILL, a crash, a shutdown) has an
// unknown outcome: a promote may have made the database writable just
// before the agent died, with the leader seeing only a broken stream.
// The leader re-sends such a step with the same (execution id, step id)
// once the agent is back (invariant 3). What the agent then does depends
// on the action:
//
//   - promote: in place when the service is primary; otherwise promoted
//     again (Promote leaves a primary alone, so a second call does what
//     one does).
//   - start: in place when the service runs (primary or standby) and
//     passes its health check; otherwise started again (Start adopts a
//     running service).
//   - stop: in place when the service is stopped; otherwise stopped again.
//     Either way the final position is output, as the step does.
//   - fence of a service: in place when it is stopped (it is marked fenced
//     again, as the step does); a fence of every primary-role service is
//     in place when none runs as primary. Otherwise fenced again.
//   - demote: in place when the driver can tell that the service streams
//     from the given upstream (driver.FollowChecker); otherwise demoted
//     again (Demote leaves a standby of that upstream alone).
//   - check: run again; it changes nothing.
//   - set-sync-standbys: run again; setting what is in effect changes
//     nothing, and the run outputs the primary's position as the first
//     would have.
//   - hook, snapshot, restore, rsync and every drill step: never run
//     again and not checkable here; the re-sent step gets "interrupted"
//     and the plan decides (a hook may not be idempotent, a second
//     snapshot or restore is a second effect).
//
// The re-sent step passed the epoch check like any other, so running it
// again carries the same authority as the first send.

// resumption is how a re-sent interrupted step finds out what happened.
type resumption struct {
	// check reports whether the step's effect is in place; nil when it
	// cannot be told, and the step is run again.
	check func(ctx context.Context) (effect, error)
	// rerun is the step itself, idempotent, run when the effect is absent.
	rerun stepFunc
}

// effect is what a check found on the service.
type effect struct {
	inPlace bool
	// found says what the check saw, e.g. "postgres is primary at 0/3000060".
	found   string
	outputs map[string]string
}

// resumption returns how req, prepared as fn, is resumed after an
// interruption, or nil when it must not be (see above).
func (a *Agent) resumption(req *pb.ExecuteRequest, fn stepFunc) *resumption {
	if _, drill := req.GetArgs()["drill"]; drill {
		return nil
	}
	svc := a.services[req.GetTarget()]
	switch req.GetAction() {
	case pb.StepAction_STEP_ACTION_PROMOTE:
		return &resumption{check: a.roleCheck(svc, driver.RolePrimary), rerun: fn}
	case pb.StepAction_STEP_ACTION_START:
		return &resumption{check: a.runningCheck(svc), rerun: fn}
	case pb.StepAction_STEP_ACTION_STOP:
		return &resumption{check: a.stoppedCheck(svc), rerun: fn}
	case pb.StepAction_STEP_ACTION_FENCE:
		return &resumption{check: a.fencedCheck(req), rerun: fn}
	case pb.StepAction_STEP_ACTION_DEMOTE:
		return &resumption{check: a.followsCheck(req, svc), rerun: fn}
	case pb.StepAction_STEP_ACTION_CHECK, pb.StepAction_STEP_ACTION_SET_SYNC_STANDBYS:
		return &resumption{rerun: fn}
	}
	return nil
}

// runResumed finds out whether an interrupted step's effect is in place,
// records success without running it when it is, and runs it again
// otherwise.
func (a *Agent) runResumed(req *pb.ExecuteRequest, r *resumption, run *stepRun) {
	ctx, cancel := a.stepContext(req)
	defer cancel()
	a.logger.Info("resuming interrupted step", "execution_id", req.GetExecutionId(), "step_id", req.GetStepId(), "action", actionName(req), "target", req.GetTarget())
	p := progressOf(run)
	p("the agent stopped while %s ran; checking whether its effect is in place", stepName(req))
	if r.check != nil {
		startedAt := nowUTC()
		e, err := r.check(ctx)
		switch {
		case err == nil && e.inPlace:
			a.endStep(req, run, &stepResult{OK: true, Verified: true, Outputs: e.outputs, StartedAt: startedAt, EndedAt: nowUTC(),
				Message: fmt.Sprintf("%s: the step's effect is in place: %s (checked after the agent stopped while it ran)", stepName(req), e.found)})
			return
		case err != nil:
			p("cannot tell: %v; running the step again", err)
		default:
			p("the effect is not in place (%s); running the step again", e.found)
		}
	}
	a.endStep(req, run, a.perform(ctx, req, r.rerun, run))
}

// roleCheck is in place when svc reports role.
func (a *Agent) roleCheck(svc *service, role driver.Role) func(context.Context) (effect, error) {
	return func(ctx context.Context) (effect, error) {
		st, err := svc.status(ctx)
		if err != nil {
			return effect{}, err
		}
		e := effect{inPlace: st.Role == role, found: fmt.Sprintf("%s is %s", svc.cfg.Name, st.Role)}
		if r := st.Replication; r != nil && r.Position != "" {
			e.found += " at " + r.Position
			e.outputs = map[string]string{"position": r.Position}
		}
		return e, nil
	}
}

// runningCheck is in place when svc runs and passes its health check.
func (a *Agent) runningCheck(svc *service) func(context.Context) (effect, error) {
	return func(ctx context.Context) (effect, error) {
		st, err := svc.status(ctx)
		if err != nil {
			return effect{}, err
		}
		running := st.Role == driver.RolePrimary || st.Role == driver.RoleStandby
		e := effect{inPlace: running, found: fmt.Sprintf("%s is %s", svc.cfg.Name, st.Role)}
		if !running || svc.monitor == nil {
			return e, nil
		}
		if err := newHealthCheck(svc.cfg.Health).Check(ctx); err != nil {
			return effect{found: e.found + " but fails its health check: " + err.Error()}, nil
		}
		e.found += " and healthy"
		return e, nil
	}
}

// stoppedCheck is in place when svc is stopped; it outputs the final
// position as the stop step does.
func (a *Agent) stoppedCheck(svc *service) func(context.Context) (effect, error) {
	return func(ctx context.Context) (effect, error) {
		st, err := svc.status(ctx)
		if err != nil {
			return effect{}, err
		}
		e := effect{found: fmt.Sprintf("%s is %s", svc.cfg.Name, st.Role)}
		if st.Role != driver.RoleStopped && st.Role != driver.RoleFenced {
			return e, nil
		}
		out, err := a.finalPosition(ctx, svc, func(string, ...any) {})
		if err != nil {
			return effect{}, err
		}
		e.inPlace, e.outputs = true, out
		return e, nil
	}
}

// fencedCheck is in place when the fenced service is stopped, or, for a
// fence of every primary-role service, when none runs as primary.
func (a *Agent) fencedCheck(req *pb.ExecuteRequest) func(context.Context) (effect, error) {
	f := planFence(req.GetExecutionId(), req.GetEpoch())
	return func(ctx context.Context) (effect, error) {
		var primaries []string
		for _, name := range a.order {
			svc := a.services[name]
			if req.GetTarget() != "" && name != req.GetTarget() {
				continue
			}
			st, err := svc.status(ctx)
			if err != nil {
				return effect{}, err
			}
			stopped := st.Role == driver.RoleStopped || st.Role == driver.RoleFenced
			if req.GetTarget() != "" {
				if stopped {
					// The fence step marks what it stopped; the agent
					// that did so is gone, and with it the mark.
					svc.setFence(f)
				}
				return effect{inPlace: stopped, found: fmt.Sprintf("%s is %s", name, st.Role)}, nil
			}
			if st.Role == driver.RolePrimary {
				primaries = append(primaries, name)
			}
		}
		if len(primaries) > 0 {
			return effect{found: fmt.Sprintf("primary-role services still run: %v", primaries)}, nil
		}
		return effect{inPlace: true, found: "no service runs as primary"}, nil
	}
}

// followsCheck is in place when svc's driver says it streams from the
// step's upstream; nil when the driver cannot tell.
func (a *Agent) followsCheck(req *pb.ExecuteRequest, svc *service) func(context.Context) (effect, error) {
	fc, ok := svc.driver.(driver.FollowChecker)
	if !ok {
		return nil
	}
	up, err := upstreamArgs(req.GetArgs())
	if err != nil {
		return nil
	}
	return func(ctx context.Context) (effect, error) {
		follows, err := fc.Follows(ctx, up)
		if err != nil {
			return effect{}, err
		}
		if !follows {
			return effect{found: fmt.Sprintf("%s does not stream from %s:%d", svc.cfg.Name, up.Host, up.Port)}, nil
		}
		// As the demote step does once it succeeded.
		svc.observe(driver.Status{Role: driver.RoleStandby}, nil)
		svc.unfence()
		return effect{inPlace: true, found: fmt.Sprintf("%s is a standby streaming from %s:%d", svc.cfg.Name, up.Host, up.Port)}, nil
	}
}
