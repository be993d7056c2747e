package hostagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/drplane/drplane/hostagent/driver"
	"github.com/drplane/drplane/internal/names"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// defaultStepTimeout bounds a step that names no timeout.
const defaultStepTimeout = 10 * time.Minute

// stepFunc runs one action; outputs are returned to the leader.
type stepFunc func(ctx context.Context, p driver.Progress) (outputs map[string]string, err error)

// prepareStep checks a step against the agent's own configuration and
// returns what will run. Every target must be declared in this agent's
// config; arguments are data and never become a command line.
func (a *Agent) prepareStep(req *pb.ExecuteRequest) (stepFunc, error) {
	if req.GetExecutionId() == "" || req.GetStepId() == "" {
		return nil, invalidStep("malformed step: execution_id and step_id are required")
	}
	if !validID.MatchString(req.GetExecutionId()) || !validID.MatchString(req.GetStepId()) {
		return nil, invalidStep("malformed step: execution id %q and step id %q must match %s", req.GetExecutionId(), req.GetStepId(), validID)
	}
	// A target names a block of this agent's config, which follows the
	// name rule: anything else cannot be declared.
	if t := req.GetTarget(); t != "" {
		if err := names.Check(t); err != nil {
			return nil, invalidStep("malformed step: target %q: %v", t, err)
		}
	}
	switch req.GetAction() {
	case pb.StepAction_STEP_ACTION_START, pb.StepAction_STEP_ACTION_STOP, pb.StepAction_STEP_ACTION_PROMOTE,
		pb.StepAction_STEP_ACTION_DEMOTE, pb.StepAction_STEP_ACTION_CHECK:
		svc, err := a.declaredService(req)
		if err != nil {
			return nil, err
		}
		if id, ok := req.GetArgs()["drill"]; ok {
			return a.drillStep(req, svc, id)
		}
		return a.serviceStep(req, svc)
	case pb.StepAction_STEP_ACTION_FENCE:
		return a.fenceStep(req)
	case pb.StepAction_STEP_ACTION_HOOK:
		return a.hookStep(req)
	case pb.StepAction_STEP_ACTION_SNAPSHOT, pb.StepAction_STEP_ACTION_RESTORE:
		return a.snapshotStep(req)
	case pb.StepAction_STEP_ACTION_BACKUP, pb.StepAction_STEP_ACTION_VERIFY_BACKUP:
		return a.backupStep(req)
	case pb.StepAction_STEP_ACTION_RESTORE_BACKUP:
		return a.restoreBackupStep(req)
	case pb.StepAction_STEP_ACTION_RSYNC:
		return a.rsyncStep(req)
	case pb.StepAction_STEP_ACTION_SET_SYNC_STANDBYS:
		svc, err := a.declaredService(req)
		if err != nil {
			return nil, err
		}
		return a.syncStandbysStep(req, svc)
	case pb.StepAction_STEP_ACTION_UNSPECIFIED:
		return nil, invalidStep("malformed step: action is empty")
	}
	return nil, invalidStep("unknown action %s; expected start, stop, promote, demote, fence, snapshot, restore, rsync, check, hook, set-sync-standbys, backup, verify-backup or restore-backup", req.GetAction())
}

func (a *Agent) declaredService(req *pb.ExecuteRequest) (*service, error) {
	svc, ok := a.services[req.GetTarget()]
	if !ok {
		return nil, invalidStep("%s: service %q is not declared in this agent's config (services: %v)", actionName(req), req.GetTarget(), a.order)
	}
	return svc, nil
}

// serviceStep returns the step for a driver action on svc.
func (a *Agent) serviceStep(req *pb.ExecuteRequest, svc *service) (stepFunc, error) {
	epoch := req.GetEpoch()
	switch req.GetAction() {
	case pb.StepAction_STEP_ACTION_START:
		if req.GetArgs()[structs.ArgRestartInPlace] == "true" {
			return a.restartInPlaceStep(svc, epoch), nil
		}
		return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
			return nil, a.startService(ctx, svc, epoch, p)
		}, nil
	case pb.StepAction_STEP_ACTION_STOP:
		return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
			return a.stopService(ctx, svc, p)
		}, nil
	case pb.StepAction_STEP_ACTION_CHECK:
		if after, ok := req.GetArgs()["after_position"]; ok {
			return a.catchUpStep(svc, after)
		}
		return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
			return nil, a.checkService(ctx, svc, p)
		}, nil
	}
	promoter, ok := svc.driver.(driver.Promoter)
	if !ok {
		return nil, invalidStep("%s: service %q (driver %s) cannot be promoted or demoted", actionName(req), svc.cfg.Name, svc.cfg.Driver)
	}
	if req.GetAction() == pb.StepAction_STEP_ACTION_PROMOTE {
		syncStandbys, err := syncStandbysArg(req)
		if err != nil {
			return nil, err
		}
		opts := driver.PromoteOptions{SyncStandbys: syncStandbys}
		return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
			a.vouch(epoch, svc)
			pos, err := promoter.Promote(ctx, opts, p)
			if err == nil {
				// The lease guard learns of a new primary from its last
				// read role: do not wait for the next probe.
				svc.observe(driver.Status{Role: driver.RolePrimary}, nil)
				// Its WAL is archived from the first segment on, and the
				// new timeline's history file with it: a point in time
				// after the promotion stays restorable.
				a.archiveNow(ctx, svc.cfg.Name, p)
			}
			return map[string]string{"position": pos}, err
		}, nil
	}
	up, err := upstreamArgs(req.GetArgs())
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		// From here the service is meant to be a standby: the lease
		// guard must not take the standby Demote starts for the primary
		// last read (the next status read corrects a failed demote).
		svc.observe(driver.Status{Role: driver.RoleStandby}, nil)
		if err := promoter.Demote(ctx, up, p); err != nil {
			return nil, err
		}
		// The service now runs as a standby of the new primary: the fence
		// that stopped it as a primary has done its job, and probes must
		// not go on reporting the host fenced.
		svc.unfence()
		return nil, nil
	}, nil
}

// upstreamArgs reads a demote step's upstream_host and upstream_port.
func upstreamArgs(args map[string]string) (driver.Upstream, error) {
	host, portStr := args["upstream_host"], args["upstream_port"]
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return driver.Upstream{}, invalidStep("demote: upstream_port %q is not a port", portStr)
	}
	if host == "" || (net.ParseIP(host) == nil && !validHostname(host)) {
		return driver.Upstream{}, invalidStep("demote: upstream_host %q is not an IP address or host name", host)
	}
	return driver.Upstream{Host: host, Port: port}, nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r == '-' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}

// vouch treats a leader's instruction to make svc primary as a lease
// grant: the leader of a current epoch just said so. It also lifts the
// service's fence. The grant runs for the leader's lease_ttl, which its
// lease-wait counts with, not a longer one of the agent's config.
func (a *Agent) vouch(epoch uint64, svc *service) {
	now := a.clock.Now()
	a.lease.renew(now, a.lease.ttlOr(a.config.LeaseTTL), epoch)
	a.recordLease(now)
	svc.unfence()
}

// stopService stops svc and, for a data service that can tell, outputs
// its final position: a switchover's catch-up check waits until the
// standby replayed past it before the standby is promoted.
func (a *Agent) stopService(ctx context.Context, svc *service, p driver.Progress) (map[string]string, error) {
	if err := svc.driver.Stop(ctx, p); err != nil {
		return nil, err
	}
	svc.observe(driver.Status{Role: driver.RoleStopped}, nil)
	return a.finalPosition(ctx, svc, p)
}

// finalPosition outputs a stopped data service's final position, when
// its driver can tell.
func (a *Agent) finalPosition(ctx context.Context, svc *service, p driver.Progress) (map[string]string, error) {
	fp, ok := svc.driver.(driver.FinalPositioner)
	if !ok {
		return nil, nil
	}
	pos, err := fp.FinalPosition(ctx)
	switch {
	case errors.Is(err, driver.ErrNoFinalPosition):
		// The service is stopped, which is what the step asked; a catch-up
		// check that needs the position finds no output to wait for.
		p("stopped; %v", err)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("stopped, but: %w", err)
	}
	p("stopped cleanly; final position %s", pos)
	return map[string]string{"position": pos}, nil
}

// catchUpStep is a check step with Args["after_position"]: it waits, up
// to the step's timeout, until the standby replayed past that position
// (a stopped primary's final position), and outputs its own.
func (a *Agent) catchUpStep(svc *service, after string) (stepFunc, error) {
	if _, err := driver.ParseLSN(after); err != nil {
		return nil, invalidStep("check: after_position: %v", err)
	}
	waiter, ok := svc.driver.(driver.ReplayWaiter)
	if !ok {
		return nil, invalidStep("check: service %q (driver %s) has no replication position to wait for", svc.cfg.Name, svc.cfg.Driver)
	}
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		pos, err := waiter.WaitReplayed(ctx, after, p)
		if err != nil {
			return nil, err
		}
		return map[string]string{"position": pos}, nil
	}, nil
}

// startService starts svc and, when it has a health check, waits until it
// passes: a start step succeeds only for a service that serves.
func (a *Agent) startService(ctx context.Context, svc *service, epoch uint64, p driver.Progress) error {
	a.vouch(epoch, svc)
	if err := svc.driver.Start(ctx, p); err != nil {
		return err
	}
	// The role read updates what the lease guard protects (a database
	// may start as a primary) without waiting for the next probe.
	_, _ = svc.status(ctx)
	if svc.monitor == nil {
		return nil
	}
	p("waiting for %s to pass its health check", svc.cfg.Name)
	return svc.monitor.WaitHealthy(ctx)
}

// checkService runs the service's health check once, or requires it to
// run when it has none.
func (a *Agent) checkService(ctx context.Context, svc *service, p driver.Progress) error {
	st, err := svc.status(ctx)
	if err != nil {
		return err
	}
	if st.Role != driver.RolePrimary && st.Role != driver.RoleStandby {
		return fmt.Errorf("service %s is %s", svc.cfg.Name, st.Role)
	}
	if svc.monitor == nil {
		p("service %s is %s (no health check declared)", svc.cfg.Name, st.Role)
		return nil
	}
	if err := newHealthCheck(svc.cfg.Health).Check(ctx); err != nil {
		return fmt.Errorf("health check of %s failed: %w", svc.cfg.Name, err)
	}
	p("service %s is %s and healthy", svc.cfg.Name, st.Role)
	return nil
}

// fenceStep fences one declared service, or every primary-role service
// when the target is empty.
func (a *Agent) fenceStep(req *pb.ExecuteRequest) (stepFunc, error) {
	f := planFence(req.GetExecutionId(), req.GetEpoch())
	if req.GetTarget() == "" {
		return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
			fenced := a.fenceAll(ctx, f)
			p("fenced %d primary-role services: %v", len(fenced), fenced)
			return nil, nil
		}, nil
	}
	svc, err := a.declaredService(req)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, p driver.Progress) (map[string]string, error) {
		return nil, a.fenceService(ctx, svc, f, p)
	}, nil
}

// runStep executes a prepared step under its timeout and journals the
// result.
func (a *Agent) runStep(req *pb.ExecuteRequest, fn stepFunc, run *stepRun) {
	ctx, cancel := a.stepContext(req)
	defer cancel()
	a.logger.Info("running step", "execution_id", req.GetExecutionId(), "step_id", req.GetStepId(), "action", actionName(req), "target", req.GetTarget())
	a.endStep(req, run, a.perform(ctx, req, fn, run))
}

// stepContext is the step's timeout on the agent's own context: the
// agent's stop ends it, a leader that disconnects does not.
func (a *Agent) stepContext(req *pb.ExecuteRequest) (context.Context, context.CancelFunc) {
	timeout := time.Duration(req.GetTimeoutMs()) * time.Millisecond
	if timeout <= 0 {
		timeout = defaultStepTimeout
	}
	return context.WithTimeout(a.ctx, timeout)
}

// perform runs fn and returns its result. A step that failed because this
// agent is stopping is interrupted, not failed: what it did before the
// stop is unknown, and a re-sent step finds out (resume.go).
func (a *Agent) perform(ctx context.Context, req *pb.ExecuteRequest, fn stepFunc, run *stepRun) *stepResult {
	res := &stepResult{StartedAt: time.Now().UTC()}
	outputs, err := fn(ctx, progressOf(run))
	res.EndedAt, res.Outputs = time.Now().UTC(), outputs
	switch {
	case err != nil && a.ctx.Err() != nil:
		return interruptedResult(res.StartedAt, fmt.Sprintf("%s: %v", stepName(req), err))
	case err != nil:
		res.Message = fmt.Sprintf("%s failed: %v", stepName(req), err)
	default:
		res.OK, res.Message = true, stepName(req)+" done"
		if last := run.last(); last != "" {
			// The last progress line says what was done, e.g. "promoted
			// at 0/3000148".
			res.Message += ": " + last
		}
	}
	return res
}

// progressOf passes a step's progress lines to its run's followers.
func progressOf(run *stepRun) driver.Progress {
	return func(format string, args ...any) { run.add(fmt.Sprintf(format, args...)) }
}

// endStep journals a run's result and hands it to its followers.
func (a *Agent) endStep(req *pb.ExecuteRequest, run *stepRun, res *stepResult) {
	a.logger.Info("step ended", "execution_id", req.GetExecutionId(), "step_id", req.GetStepId(), "ok", res.OK, "verified", res.Verified, "interrupted", res.Interrupted, "message", res.Message)
	if err := a.journal.end(req.GetExecutionId(), req.GetStepId(), actionName(req), req.GetTarget(), run, res); err != nil {
		a.logger.Error("failed to journal step result", "execution_id", req.GetExecutionId(), "step_id", req.GetStepId(), "error", err)
	}
}

func nowUTC() time.Time { return time.Now().UTC() }

// stepName is "action target", or the action alone when it has no target
// (a fence of every primary-role service).
func stepName(req *pb.ExecuteRequest) string {
	if req.GetTarget() == "" {
		return actionName(req)
	}
	return actionName(req) + " " + req.GetTarget()
}

// actionName is the step's action as plans and the journal spell it.
func actionName(req *pb.ExecuteRequest) string {
	return structs.ActionName(req.GetAction())
}
