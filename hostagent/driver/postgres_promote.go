package driver

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Promote makes a running standby the primary: it sets the
// synchronous_standby_names of opts, pg_ctl promote, then it waits until
// the server takes a write, checkpoints, and returns the WAL position at
// which it became writable. A primary is left alone and reports its
// current position, so a re-sent promote step is harmless. Invalid
// standby names are rejected before anything changes.
func (p *Postgres) Promote(ctx context.Context, opts PromoteOptions, progress Progress) (string, error) {
	syncNames, err := pgSyncStandbyNames(opts.SyncStandbys)
	if err != nil {
		return "", fmt.Errorf("promote %s: %w", p.cfg.Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lsn, err := p.promoteLocked(ctx, syncNames, pgProgress(progress))
	if err != nil {
		return "", fmt.Errorf("promote %s: %w", p.cfg.Name, err)
	}
	return lsn, nil
}

// promoteLocked implements Promote. The caller holds mu.
func (p *Postgres) promoteLocked(ctx context.Context, syncNames string, progress Progress) (string, error) {
	standby, err := p.runningInRecovery(ctx)
	if err != nil {
		return "", err
	}
	if !standby {
		lsn, err := p.currentLSN(ctx)
		progress("already primary at %s", lsn)
		return lsn, err
	}
	// A standby carries its old primary's postgresql.auto.conf (pg_rewind
	// and pg_basebackup copy it), which may name this very standby in
	// synchronous_standby_names: promoted with it, every commit would
	// wait for a standby that does not exist. The setting is replaced
	// before the server takes its first write.
	if err := p.applySyncStandbyNames(ctx, syncNames, progress); err != nil {
		return "", fmt.Errorf("before promoting: %w", err)
	}
	progress("promoting")
	if _, err := p.run(ctx, "pg_ctl", "promote", "-w", "-D", p.cfg.DataDir); err != nil {
		return "", err
	}
	return p.awaitWritable(ctx, progress)
}

// awaitWritable polls until the promoted server takes a write, then
// checkpoints: pg_rewind of the old primary against this one reads the
// new timeline from the control file, which only a checkpoint updates.
func (p *Postgres) awaitWritable(ctx context.Context, progress Progress) (string, error) {
	progress("waiting until writable")
	var lsn string
	err := pgPoll(ctx, func(ctx context.Context) error {
		var err error
		lsn, err = p.writableLSN(ctx)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("wait until writable: %w", err)
	}
	progress("writable at %s; checkpointing", lsn)
	if err := p.checkpoint(ctx); err != nil {
		return "", fmt.Errorf("checkpoint after promotion: %w", err)
	}
	return lsn, nil
}

// pgPoll calls f every pgPollInterval until it returns nil, ctx ends or
// pgReadyTimeout passes; it then returns f's last error.
func pgPoll(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, pgReadyTimeout)
	defer cancel()
	ticker := time.NewTicker(pgPollInterval)
	defer ticker.Stop()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-ticker.C:
		}
	}
}
