package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/drplane/drplane/internal/notify"
	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
	"github.com/google/uuid"
)

// maxParallelSteps bounds how many steps of one execution run at once.
const maxParallelSteps = 8

// stepSlack is added to a step's own timeout for the RPC that carries it,
// so the agent's timeout, not the transport's, ends a slow step.
const stepSlack = 30 * time.Second

// errStepUpdateRefused marks an update the FSM rejected: the execution
// moved on under another leader, or was cancelled.
var errStepUpdateRefused = errors.New("step update refused")

// executor runs one execution while this server leads (DESIGN.md section
// 6, invariant 6). All it knows lives in the FSM: a new leader starts a
// fresh executor for every running execution, which re-sends the steps
// that were running with the same ids; the agents' journals make that
// safe.
type executor struct {
	s  *Server
	id string

	// progress is the latest progress line of each running step, for the
	// CLI; it is an observation, so it is kept in memory only.
	progress *progressTable

	mu       sync.Mutex
	inFlight map[string]bool
	done     chan struct{} // a step goroutine ended
}

// progressTable holds the last progress line of each step, per execution.
type progressTable struct {
	mu    sync.Mutex
	lines map[string]map[string]string
}

func newProgressTable() *progressTable {
	return &progressTable{lines: map[string]map[string]string{}}
}

func (t *progressTable) set(execID, stepID, line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lines[execID] == nil {
		t.lines[execID] = map[string]string{}
	}
	t.lines[execID][stepID] = line
}

func (t *progressTable) get(execID string) map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]string{}
	for k, v := range t.lines[execID] {
		out[k] = v
	}
	return out
}

// resumeExecutions starts an executor for every running execution; a new
// leader calls it after its Barrier.
func (s *Server) resumeExecutions(ctx context.Context) {
	for _, id := range s.fsm.runningExecutionIDs() {
		s.logger.Info("resuming execution", "execution_id", id)
		s.startExecutor(ctx, id)
	}
}

func (s *Server) startExecutor(ctx context.Context, id string) {
	if !s.claimExecution(id) {
		return
	}
	e := &executor{s: s, id: id, progress: s.progress, inFlight: map[string]bool{}, done: make(chan struct{}, maxParallelSteps)}
	// A term goroutine, which waits for its steps: revokeLeadership waits
	// for it before a new term may resume the same execution.
	s.goLeader(func() { e.run(ctx) })
}

// run schedules steps until the execution ends or leadership is lost.
func (e *executor) run(ctx context.Context) {
	logger := e.s.logger.With("execution_id", e.id)
	// However it ends, no step goroutine outlives the executor.
	defer e.wait()
	for {
		watch := e.s.fsm.watch()
		ex, ok := e.s.fsm.execution(e.id)
		if !ok || ex.State != structs.ExecRunning {
			return
		}
		ready, finished := e.schedule(&ex)
		for _, i := range ready {
			e.launch(ctx, &ex, i)
		}
		if finished {
			if err := e.finish(ctx, &ex); err != nil {
				logger.Error("failed to record the end of the execution", "error", err)
			} else {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-e.done:
		case <-watch:
		case <-time.After(5 * time.Second):
			// A failed write (say, a brief loss of quorum) is retried.
		}
	}
}

// wait returns once no step goroutine of this executor runs.
func (e *executor) wait() {
	for {
		e.mu.Lock()
		n := len(e.inFlight)
		e.mu.Unlock()
		if n == 0 {
			return
		}
		<-e.done
	}
}

// schedule returns the steps to start now, and whether the execution has
// nothing left to run. A step is ready when its dependencies have all
// ended well (succeeded, or failed with on_failure = continue); after an
// abort or a cancel only Always steps still start, once their
// dependencies ended in any way, and Rollback steps, once moreover every
// other step ended and as long as the target was not activated.
func (e *executor) schedule(ex *structs.Execution) (ready []int, finished bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	stopping := ex.CancelRequested || aborted(ex)
	index := map[string]int{}
	for i, st := range ex.Plan.Steps {
		index[st.ID] = i
	}
	dead := deadSteps(ex, index, stopping)
	settled := e.forwardSettledLocked(ex)
	active := len(e.inFlight)
	for i, st := range ex.Plan.Steps {
		state := ex.Steps[i]
		if e.inFlight[st.ID] {
			continue
		}
		switch state.State {
		case structs.StepRunning, structs.StepWaiting:
			// Running in the FSM but not here: started by a previous
			// leader. Re-send it with the same attempt. A waiting
			// approval needs no goroutine unless it is being resumed.
			if state.State == structs.StepWaiting {
				continue
			}
		case structs.StepPending:
			if dead[i] || (st.Rollback && (!stopping || !settled)) || !depsMet(ex, st, index, stopping, dead) {
				continue
			}
		default:
			continue
		}
		if active >= maxParallelSteps {
			break
		}
		ready = append(ready, i)
		e.inFlight[st.ID] = true
		active++
	}
	if active > 0 || len(ready) > 0 {
		return ready, false
	}
	for i, st := range ex.Steps {
		if st.State == structs.StepWaiting || (st.State == structs.StepPending && !dead[i]) {
			return nil, false
		}
	}
	return nil, true
}

// forwardSettledLocked reports whether every step but the Rollback ones
// has ended or will never start: only then may a rollback start what the
// execution stopped, so that it never races a stop or the activation.
// The caller holds e.mu.
func (e *executor) forwardSettledLocked(ex *structs.Execution) bool {
	for i, st := range ex.Plan.Steps {
		if st.Rollback {
			continue
		}
		switch ex.Steps[i].State {
		case structs.StepRunning, structs.StepWaiting:
			return false
		}
		if e.inFlight[st.ID] {
			return false
		}
	}
	return true
}

// aborted reports whether a step failed whose on_failure is abort.
func aborted(ex *structs.Execution) bool {
	for i, st := range ex.Steps {
		if (st.State == structs.StepFailed || st.State == structs.StepCancelled) && ex.Plan.Steps[i].OnFailure != plan.OnFailureContinue {
			return true
		}
	}
	return false
}

// activated reports whether the execution's activate step succeeded: the
// target is the active site, and there is no way back any more.
func activated(ex *structs.Execution) bool {
	for i, st := range ex.Plan.Steps {
		if st.Action == plan.ActionActivate && ex.Steps[i].State == structs.StepSucceeded {
			return true
		}
	}
	return false
}

// deadSteps marks pending steps that will never run: while stopping (an
// abort or a cancel), every step but the Always and Rollback ones; the
// Rollback steps once the target was activated, when the execution ends
// without stopping, or when none of the stops they undo ever started.
// Nothing else is dead: a dependency that failed with on_failure = abort
// already means stopping.
func deadSteps(ex *structs.Execution, index map[string]int, stopping bool) map[int]bool {
	dead := map[int]bool{}
	up := activated(ex)
	for i, st := range ex.Plan.Steps {
		if ex.Steps[i].State == structs.StepPending && stopping && !st.Always && !st.Rollback {
			dead[i] = true
		}
	}
	for i, st := range ex.Plan.Steps {
		if !st.Rollback || ex.Steps[i].State != structs.StepPending {
			continue
		}
		undone := true // every stop this step undoes never started
		for _, dep := range st.DependsOn {
			if j, ok := index[dep]; ok && !ex.Plan.Steps[j].Rollback && !dead[j] {
				undone = false
			}
		}
		if up || (!stopping && forwardEnded(ex)) || (stopping && undone) {
			dead[i] = true
		}
	}
	return dead
}

// forwardEnded reports whether every step but the Rollback ones ended.
func forwardEnded(ex *structs.Execution) bool {
	for i, st := range ex.Plan.Steps {
		if !st.Rollback && !ex.Steps[i].Ended() {
			return false
		}
	}
	return true
}

// depsMet reports whether a pending step may start. Always and Rollback
// steps of a stopping execution wait for their dependencies to end in any
// way; one that will never start (dead) counts as ended.
func depsMet(ex *structs.Execution, st plan.Step, index map[string]int, stopping bool, dead map[int]bool) bool {
	for _, dep := range st.DependsOn {
		j, ok := index[dep]
		if !ok {
			return false
		}
		ds := ex.Steps[j]
		if (st.Always || st.Rollback) && stopping {
			if !ds.Ended() && !dead[j] {
				return false
			}
			continue
		}
		switch ds.State {
		case structs.StepSucceeded:
		case structs.StepFailed, structs.StepCancelled:
			if ex.Plan.Steps[j].OnFailure != plan.OnFailureContinue {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// launch runs step i in its own goroutine.
func (e *executor) launch(ctx context.Context, ex *structs.Execution, i int) {
	step, state := ex.Plan.Steps[i], ex.Steps[i]
	go func() {
		defer func() {
			e.mu.Lock()
			delete(e.inFlight, step.ID)
			e.mu.Unlock()
			e.done <- struct{}{}
		}()
		if err := e.runStep(ctx, step, state); err != nil && ctx.Err() == nil {
			e.s.logger.Warn("step not completed", "execution_id", e.id, "step", step.ID, "error", err)
		}
	}()
}

// runStep runs a step's attempts, recording each start and the end in the
// FSM. It returns without recording an end when leadership is lost: the
// next leader re-sends the same attempt.
func (e *executor) runStep(ctx context.Context, step plan.Step, state structs.ExecStep) error {
	attempt := max(state.Attempt, 1)
	resumed := state.State == structs.StepRunning
	for {
		if err := e.s.verifyLeader(ctx); err != nil {
			return fmt.Errorf("verify leadership before step %s: %w", step.ID, err)
		}
		if !resumed {
			if err := e.update(ctx, structs.ExecStep{ID: step.ID, State: structs.StepRunning, Attempt: attempt}, nil); err != nil {
				return err
			}
		}
		resumed = false
		res, activate := e.perform(ctx, step, attempt)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if res.State == structs.StepFailed && attempt <= step.Retries {
			e.s.logger.Warn("step failed; retrying", "execution_id", e.id, "step", step.ID, "attempt", attempt, "message", res.Message)
			attempt++
			continue
		}
		if res.State == "" {
			// An approval now waits for `drplane approve`.
			return nil
		}
		res.ID, res.Attempt = step.ID, attempt
		return e.update(ctx, res, activate)
	}
}

// update proposes a step transition, retrying while the write fails for
// a reason other than a refusal, as long as this server leads.
func (e *executor) update(ctx context.Context, st structs.ExecStep, activate *structs.ActivateSite) error {
	req := &structs.StepUpdateRequest{WriteRequest: structs.WriteRequest{RequestID: uuid.NewString(), Actor: e.s.config.NodeID},
		ExecutionID: e.id, Step: st, Activate: activate}
	for {
		_, err := e.s.raftApply(structs.StepUpdateRequestType, req)
		var rejected *structs.RejectedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &rejected):
			return fmt.Errorf("%w: %s", errStepUpdateRefused, rejected.Reason)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// perform runs one attempt and returns its end state. An empty state
// means the step now waits (an approval).
func (e *executor) perform(ctx context.Context, step plan.Step, attempt int) (structs.ExecStep, *structs.ActivateSite) {
	if msg, ok := e.doneBySiteFence(step); ok {
		return structs.ExecStep{State: structs.StepSucceeded, Message: msg}, nil
	}
	if step.Host != "" {
		return e.performOnAgent(ctx, step, attempt), nil
	}
	var activate *structs.ActivateSite
	var msg string
	var err error
	switch step.Action {
	case plan.ActionApproval:
		err = e.update(ctx, structs.ExecStep{ID: step.ID, State: structs.StepWaiting, Attempt: attempt,
			Message: "waiting for `drplane approve " + e.id + "`"}, nil)
		if err == nil {
			return structs.ExecStep{}, nil
		}
	case plan.ActionWait:
		msg, err = waitStep(ctx, step)
	case plan.ActionNotify:
		msg = step.Args["message"]
		e.s.logger.Info("plan notification", "execution_id", e.id, "step", step.ID, "message", msg)
		// Told through the notify blocks that subscribe to "notify".
		ex, _ := e.s.fsm.execution(e.id)
		e.s.raise(structs.Notification{ID: e.id + "/notify/" + step.ID, Event: notify.EventNotify, Site: ex.To, ExecutionID: e.id, Message: msg})
	case plan.ActionGuard:
		msg, err = e.s.rpoGuard(ctx, e.id, step)
	case plan.ActionActivate:
		v := e.s.fsm.view()
		if v.ActiveSite == step.Target {
			msg = "site " + step.Target + " is already active in epoch " + fmt.Sprint(v.Epoch)
		} else {
			activate = &structs.ActivateSite{Site: step.Target, ExpectedEpoch: v.Epoch}
			msg = fmt.Sprintf("site %s active; epoch %d -> %d", step.Target, v.Epoch, v.Epoch+1)
		}
	case plan.ActionLeaseWait:
		msg, err = e.s.waitLeases(ctx, e.id, step)
	default:
		err = fmt.Errorf("action %q is not a control-plane action", step.Action)
	}
	if err != nil {
		return structs.ExecStep{State: structs.StepFailed, Message: err.Error()}, nil
	}
	return structs.ExecStep{State: structs.StepSucceeded, Message: msg}, activate
}

func waitStep(ctx context.Context, step plan.Step) (string, error) {
	d, err := time.ParseDuration(step.Args["duration"])
	if err != nil {
		return "", fmt.Errorf("wait: duration %q: %w", step.Args["duration"], err)
	}
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(d):
		return "waited " + d.String(), nil
	}
}

// performOnAgent sends one attempt to the step's host.
func (e *executor) performOnAgent(ctx context.Context, step plan.Step, attempt int) structs.ExecStep {
	failed := func(format string, args ...any) structs.ExecStep {
		return structs.ExecStep{State: structs.StepFailed, Message: fmt.Sprintf(format, args...)}
	}
	agent, err := e.s.registeredAgent(step.Host)
	if err != nil {
		return failed("%v", err)
	}
	if step.Rollback {
		e.awaitAnswering(ctx, step.Host)
	}
	delivery, refused := e.delivery(step)
	if refused != "" {
		return failed("%s", refused)
	}
	args, err := e.args(step)
	if err != nil {
		return failed("%v", err)
	}
	stepID := step.ID
	if attempt > 1 {
		stepID = fmt.Sprintf("%s#%d", step.ID, attempt)
	}
	req := &pb.ExecuteRequest{ExecutionId: e.id, StepId: stepID, Epoch: e.s.fsm.view().Epoch,
		Action: structs.ActionToProto(step.Action), Target: step.Target, Args: args, TimeoutMs: uint64(step.Timeout.Milliseconds())}
	rctx, cancel := context.WithTimeout(ctx, step.Timeout+stepSlack)
	defer cancel()
	res, err := e.s.sendStep(rctx, agent, req, func(line string) { e.progress.set(e.id, step.ID, line) }, delivery)
	if err != nil {
		return failed("%v", err)
	}
	out := structs.ExecStep{State: structs.StepFailed, Message: res.GetMessage(), Outputs: res.GetOutputs(), Replayed: res.GetReplayed(), Verified: res.GetVerified()}
	if res.GetOk() {
		out.State = structs.StepSucceeded
	}
	return out
}

// doneBySiteFence reports whether the execution's STONITH confirmation
// does step: a fence of a host of the fenced site, or the lease-wait for
// it. A site whose STONITH hook exited 0 is powered off or cut off; its
// hosts are neither contacted nor waited for.
func (e *executor) doneBySiteFence(step plan.Step) (string, bool) {
	ex, ok := e.s.fsm.execution(e.id)
	if !ok || ex.SiteFence == nil {
		return "", false
	}
	f := ex.SiteFence
	confirmed := fmt.Sprintf("the STONITH hook of site %s confirmed its fence at %s", f.Site, f.At.Format(time.RFC3339Nano))
	if f.Output != "" {
		confirmed += " (output: " + f.Output + ")"
	}
	switch {
	case step.Action == plan.ActionFence && step.Site == f.Site:
		return "fenced by STONITH: " + confirmed, true
	case step.Action == plan.ActionLeaseWait && step.Args["site"] == f.Site:
		return "no lease to wait for: " + confirmed, true
	}
	return "", false
}

// awaitAnswering gives a host that went silent during the execution a
// fresh failover_timeout to answer the leader's probes again before a
// rollback step is sent to it: the failure being rolled back is often
// that very host's agent restarting, and without the wait its rollback
// would be given up at once. It returns when the host answers, the time
// is up, or ctx ends; the step is then sent as any other.
func (e *executor) awaitAnswering(ctx context.Context, hostID string) {
	ctx, cancel := context.WithTimeout(ctx, e.s.config.Failover.FailoverTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if r, ok := e.s.probes.get(hostID); !ok || r.err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// delivery says how a step reaches its host, and why it is not sent at
// all when it is not. A fence is sent once, and not to a host the prober
// cannot reach: it would only wait out its timeout and hold up the
// failover, while that host fences itself when its lease lapses (the
// lease-wait step waits for it). Every other step waits for its agent's
// connection and is re-sent after a transient error until its timeout,
// or until the host has been silent for failover_timeout: an agent that
// just came back (a failback right after the old primary returns) gets
// it, and a lost one does not hold up the end of a failover.
func (e *executor) delivery(step plan.Step) (stepDelivery, string) {
	if step.Action != plan.ActionFence {
		return deliverPatiently, e.s.hostGivenUp(step.Host)
	}
	if r, ok := e.s.probes.get(step.Host); ok && r.err != nil {
		return deliverOnce, fmt.Sprintf("host %s is unreachable (%v); it fences itself when its lease lapses", step.Host, r.err)
	}
	return deliverOnce, ""
}

// args are the step's arguments with those taken from earlier steps'
// outputs filled in.
func (e *executor) args(step plan.Step) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range step.Args {
		out[k] = v
	}
	if (step.Action == plan.ActionPromote || step.Action == plan.ActionRestoreBackup) && e.s.config.Replication.Strict {
		// Strict synchronous mode: the new primary acknowledges nothing
		// until some standby confirms it (invariant 8).
		out[structs.ArgSyncStandbys] = structs.SyncAnyStandby
	}
	if len(step.ArgsFrom) == 0 {
		return out, nil
	}
	ex, _ := e.s.fsm.execution(e.id)
	for name, ref := range step.ArgsFrom {
		// Step ids may hold dots (host names); the key follows the last.
		dot := strings.LastIndex(ref, ".")
		stepID, key := ref[:max(dot, 0)], ref[dot+1:]
		i := ex.Step(stepID)
		if dot < 0 || i < 0 {
			return nil, fmt.Errorf("argument %s: %q names no step of this plan", name, ref)
		}
		v, ok := ex.Steps[i].Outputs[key]
		if !ok {
			return nil, fmt.Errorf("argument %s: step %s has no output %q", name, stepID, key)
		}
		out[name] = v
	}
	return out, nil
}

// finish records the end of the execution with its measurements.
func (e *executor) finish(ctx context.Context, ex *structs.Execution) error {
	state, msg := structs.ExecSucceeded, "all steps ended"
	var skip []string
	for i, st := range ex.Steps {
		if st.State == structs.StepPending {
			skip = append(skip, st.ID)
			continue
		}
		if (st.State == structs.StepFailed || st.State == structs.StepCancelled) && ex.Plan.Steps[i].OnFailure != plan.OnFailureContinue && state == structs.ExecSucceeded {
			step := ex.Plan.Steps[i]
			state = structs.ExecFailed
			where := "the control plane"
			if step.Host != "" {
				where = step.Host
			}
			msg = fmt.Sprintf("step %s failed on %s: %s", step.ID, where, st.Message)
		}
	}
	if ex.CancelRequested && state == structs.ExecSucceeded && len(skip) > 0 {
		state, msg = structs.ExecCancelled, "cancelled by "+ex.CancelledBy
	} else if ex.CancelRequested && state == structs.ExecFailed {
		state, msg = structs.ExecCancelled, "cancelled by "+ex.CancelledBy+"; "+msg
	}
	if state != structs.ExecSucceeded {
		if note := outcomeNote(ex); note != "" {
			msg += "; " + note
		}
	}
	req := &structs.FinishExecutionRequest{WriteRequest: structs.WriteRequest{RequestID: "finish-" + ex.ID, Actor: e.s.config.NodeID},
		ExecutionID: ex.ID, State: state, Message: msg, Skip: skip}
	if start, ok := e.outageStart(ex); ok && state == structs.ExecSucceeded {
		if rto, ok := measuredRTO(ex, start); ok {
			req.RTOSeconds = &rto
		}
	}
	if state == structs.ExecSucceeded && (ex.Kind == string(plan.KindSwitchover) || ex.Kind == string(plan.KindFailback)) {
		// Every primary at the old site was stopped and the target
		// replayed past its final position: nothing committed was lost.
		zero := 0.0
		req.RPOSeconds = &zero
	}
	_, err := e.s.raftApply(structs.FinishExecutionRequestType, req)
	var rejected *structs.RejectedError
	if errors.As(err, &rejected) {
		return nil // ended already, by this request id or another
	}
	if err == nil {
		e.s.logger.Info("execution ended", "execution_id", ex.ID, "state", state, "message", msg)
	}
	return err
}

// outageStart is when the outage an execution ends began: for a failover
// the last sign of life of the failed site (false when none is known: the
// RTO is then unknown, see outageEvidence), for the rest of an execution
// that stopped after activating its target that one's start, and
// otherwise the trigger.
func (e *executor) outageStart(ex *structs.Execution) (time.Time, bool) {
	if ex.Plan.Finishes != "" {
		if first, ok := e.s.fsm.execution(ex.Plan.Finishes); ok {
			return e.outageStart(&first)
		}
	}
	if ex.Kind == string(plan.KindFailover) && ex.CleanupOf == "" {
		if ex.OutageSince.IsZero() {
			return time.Time{}, false
		}
		return ex.OutageSince, true
	}
	return ex.TriggeredAt, true
}

// measuredRTO is from the outage's start to the end of the last health
// gate.
func measuredRTO(ex *structs.Execution, start time.Time) (float64, bool) {
	var last time.Time
	for i, st := range ex.Plan.Steps {
		if st.HealthGate && ex.Steps[i].State == structs.StepSucceeded && ex.Steps[i].EndedAt.After(last) {
			last = ex.Steps[i].EndedAt
		}
	}
	if last.IsZero() || start.IsZero() {
		return 0, false
	}
	return last.Sub(start).Seconds(), true
}

// hostsAt is the agents of site, in the order given: stateView.Agents is
// already sorted by host id.
func hostsAt(agents []structs.Agent, site string) []structs.Agent {
	var out []structs.Agent
	for _, a := range agents {
		if a.Site == site {
			out = append(out, a)
		}
	}
	return out
}
