package controlplane

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/plan"
	"github.com/drplane/drplane/internal/structs"
	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// restoreCheckTimeout bounds the look at the repository before a restore.
const restoreCheckTimeout = 30 * time.Second

// checkRestore checks a restore's target against the repository, through
// the agent of the host it restores, before anything stops: a backup
// label it holds, a time after its oldest backup ended and not in the
// future, or its newest state, of which it must hold a backup. It sets
// the execution's RPO: the target's distance from the trigger. Then it
// checks that every snapshot block the plan restores holds a snapshot of
// that time (checkStateSnapshots).
func (s *Server) checkRestore(ctx context.Context, ex *structs.Execution, now time.Time) error {
	var step *plan.Step
	for i := range ex.Plan.Steps {
		if ex.Plan.Steps[i].Action == plan.ActionRestoreBackup {
			step = &ex.Plan.Steps[i]
		}
	}
	if step == nil {
		return fmt.Errorf("restore plan %s has no %s step", ex.ID, plan.ActionRestoreBackup)
	}
	client, err := s.hostAgentClient(step.Host)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, restoreCheckTimeout)
	defer cancel()
	resp, err := client.ListBackups(cctx, &pb.ListBackupsRequest{Name: step.Target})
	if err != nil {
		return fmt.Errorf("read the backups of block %s on %s before the restore (nothing was stopped): %w", step.Target, step.Host, err)
	}
	if len(resp.GetSets()) != 1 {
		return fmt.Errorf("%s reported %d backup blocks named %s", step.Host, len(resp.GetSets()), step.Target)
	}
	set := resp.GetSets()[0]
	backups := set.GetBackups()
	if len(backups) == 0 {
		return fmt.Errorf("%w: backup block %s of %s holds no backup: nothing to restore from (take one with `drplane backup create`)",
			errInvalidArgument, step.Target, step.Host)
	}
	var labels []string
	for _, b := range backups {
		labels = append(labels, b.GetLabel())
	}
	var at time.Time // the target's time, for the snapshot blocks
	switch toTime, label := step.Args[structs.ArgRestoreToTime], step.Args[structs.ArgRestoreLabel]; {
	case label != "":
		var found *pb.BackupInfo
		for _, b := range backups {
			if b.GetLabel() == label {
				found = b
			}
		}
		if found == nil {
			return fmt.Errorf("%w: backup %q is not in the repository of block %s; it holds %s", errInvalidArgument, label, step.Target, strings.Join(labels, ", "))
		}
		stop := found.GetStoppedAt().AsTime()
		at = stop
		rpo := max(now.Sub(stop), 0).Seconds()
		ex.RPOSeconds = &rpo
		ex.RPODetail = fmt.Sprintf("restored to backup %s, which ended %s: what was committed after it, up to the restore's start, is not restored", label, fmtTime(stop))
	case toTime != "":
		t, err := time.Parse(time.RFC3339Nano, toTime)
		if err != nil {
			return fmt.Errorf("%w: restore time %q: %v", errInvalidArgument, toTime, err)
		}
		from := set.GetStatus().GetRestorableFrom().AsTime()
		switch {
		case t.After(now):
			return fmt.Errorf("%w: restore time %s is in the future (now %s)", errInvalidArgument, fmtTime(t), fmtTime(now))
		case set.GetStatus().GetRestorableFrom() != nil && t.Before(from):
			return fmt.Errorf("%w: restore time %s is before the oldest backup of block %s ended: the earliest restorable time is %s (backups: %s)",
				errInvalidArgument, fmtTime(t), step.Target, fmtTime(from), strings.Join(labels, ", "))
		}
		at = t
		rpo := now.Sub(t).Seconds()
		ex.RPOSeconds = &rpo
		ex.RPODetail = fmt.Sprintf("restored to %s: what was committed after it, up to the restore's start, is not restored", fmtTime(t))
	default:
		zero := 0.0
		ex.RPOSeconds = &zero
		ex.RPODetail = "restored to the newest state: the restoration point, a backup taken once the services that depend on it stopped, holds what they committed; only a writer outside the plan's services that wrote after it would lose that"
	}
	return s.checkStateSnapshots(ctx, ex, at)
}

// checkStateSnapshots checks, on each host, that every snapshot block a
// restore plan restores holds a snapshot taken at or before at, the
// restore's target, and puts at in the place of a backup label.
func (s *Server) checkStateSnapshots(ctx context.Context, ex *structs.Execution, at time.Time) error {
	for i := range ex.Plan.Steps {
		step := &ex.Plan.Steps[i]
		if step.Action != plan.ActionRestoreSnapshot {
			continue
		}
		if _, ok := step.Args[structs.ArgSnapshotAtBackup]; ok {
			delete(step.Args, structs.ArgSnapshotAtBackup)
			step.Args[structs.ArgSnapshotAt] = at.UTC().Format(time.RFC3339Nano)
		}
		client, err := s.hostAgentClient(step.Host)
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, restoreCheckTimeout)
		resp, err := client.ListSnapshots(cctx, &pb.ListSnapshotsRequest{Name: step.Target})
		cancel()
		if err != nil {
			return fmt.Errorf("read the snapshots of block %s on %s before the restore (nothing was stopped): %w", step.Target, step.Host, err)
		}
		var oldest *pb.SnapshotInfo
		found := false
		for _, sn := range resp.GetSnapshots() {
			found = found || !sn.GetCreatedAt().AsTime().After(at)
			if oldest == nil || sn.GetCreatedAt().AsTime().Before(oldest.GetCreatedAt().AsTime()) {
				oldest = sn
			}
		}
		switch {
		case found:
		case oldest == nil:
			return fmt.Errorf("%w: snapshot block %s on %s holds no snapshot, so the state it holds cannot be taken back to %s; take snapshots of it (drplane snapshot create, or every in its block)",
				errInvalidArgument, step.Target, step.Host, fmtTime(at))
		default:
			return fmt.Errorf("%w: snapshot block %s on %s holds no snapshot taken at or before %s, so the state it holds cannot be taken back with the database; its oldest, %s, was taken %s",
				errInvalidArgument, step.Target, step.Host, fmtTime(at), oldest.GetId(), fmtTime(oldest.GetCreatedAt().AsTime()))
		}
	}
	return nil
}

// fmtTime is how a restore's messages show a time.
func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") }
