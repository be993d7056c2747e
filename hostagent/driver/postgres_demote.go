package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Demote makes this server a streaming standby of up. It stops the
// server, rewinds its data onto up's history with pg_rewind, or, when
// that fails, re-clones it with pg_basebackup (the old data directory is
// kept aside until the clone succeeded), points it at up, starts it and
// waits until it streams. A server already streaming from up is left
// alone. An invalid up is rejected before anything changes.
func (p *Postgres) Demote(ctx context.Context, up Upstream, progress Progress) error {
	if err := pgValidateUpstream(up); err != nil {
		return fmt.Errorf("demote %s: %w", p.cfg.Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.demoteLocked(ctx, up, pgProgress(progress)); err != nil {
		return fmt.Errorf("demote %s to standby of %s: %w", p.cfg.Name, pgHostPort(up), err)
	}
	return nil
}

// demoteLocked implements Demote. The caller holds mu.
func (p *Postgres) demoteLocked(ctx context.Context, up Upstream, progress Progress) error {
	if p.alreadyFollows(ctx, up) {
		progress("already a standby streaming from %s", pgHostPort(up))
		return nil
	}
	if err := p.stopLocked(ctx, progress); err != nil {
		return err
	}
	if err := p.resync(ctx, up, progress); err != nil {
		return err
	}
	progress("configuring standby of %s", pgHostPort(up))
	if err := p.writeStandbyConfig(up); err != nil {
		return err
	}
	if err := p.startLocked(ctx, progress); err != nil {
		return err
	}
	return p.awaitStreaming(ctx, up, progress)
}

// alreadyFollows reports whether the server runs and streams from up; any
// doubt (stopped, unreachable) means no, and Demote does the full work.
func (p *Postgres) alreadyFollows(ctx context.Context, up Upstream) bool {
	running, err := p.running(ctx)
	if err != nil || !running {
		return false
	}
	ok, err := p.streamingFrom(ctx, up)
	return err == nil && ok
}

// Follows reports whether the server runs as a standby streaming from up.
func (p *Postgres) Follows(ctx context.Context, up Upstream) (bool, error) {
	running, err := p.running(ctx)
	if err != nil || !running {
		return false, err
	}
	return p.streamingFrom(ctx, up)
}

// resync brings the stopped server's data onto up's history: pg_rewind,
// or a fresh clone when pg_rewind cannot (no common history, a missing
// or damaged data directory, wal_log_hints off).
func (p *Postgres) resync(ctx context.Context, up Upstream, progress Progress) error {
	if err := p.checkpointUpstream(ctx, up); err != nil {
		p.logger.Warn("failed to checkpoint upstream before pg_rewind", "upstream", pgHostPort(up), "error", err)
	}
	progress("pg_rewind from %s", pgHostPort(up))
	out, err := p.run(ctx, "pg_rewind", "--target-pgdata="+p.cfg.DataDir,
		"--source-server="+pgConnInfo(up, p.cfg.User, "postgres"))
	if err == nil {
		progress("rewound: %s", pgTail(out))
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	progress("rewind failed: %v; re-cloning", err)
	return p.reclone(ctx, up, progress)
}

// reclone replaces the data directory with a pg_basebackup of up. The old
// directory is renamed aside first and put back if the clone fails, so a
// failed demote never loses the only copy of this node's data.
func (p *Postgres) reclone(ctx context.Context, up Upstream, progress Progress) error {
	aside := p.cfg.DataDir + ".drplane-old-" + time.Now().UTC().Format("20060102T150405")
	moved, err := p.moveAside(aside, progress)
	if err != nil {
		return err
	}
	progress("pg_basebackup from %s", pgHostPort(up))
	err = p.basebackup(ctx, up)
	if err != nil {
		return errors.Join(err, p.restoreAside(aside, moved, progress))
	}
	if moved {
		progress("clone done; removing old data directory %s", aside)
		if err := os.RemoveAll(aside); err != nil {
			p.logger.Warn("failed to remove old data directory", "path", aside, "error", err)
		}
	}
	return nil
}

// moveAside renames the data directory to aside, and reports whether
// there was one to move.
func (p *Postgres) moveAside(aside string, progress Progress) (bool, error) {
	if _, err := os.Lstat(p.cfg.DataDir); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	progress("moving data directory aside to %s", aside)
	if err := os.Rename(p.cfg.DataDir, aside); err != nil {
		return false, fmt.Errorf("move data directory aside: %w", err)
	}
	return true, nil
}

// restoreAside undoes moveAside after a failed clone.
func (p *Postgres) restoreAside(aside string, moved bool, progress Progress) error {
	if err := os.RemoveAll(p.cfg.DataDir); err != nil {
		return fmt.Errorf("remove failed clone: %w", err)
	}
	if !moved {
		return nil
	}
	progress("clone failed; restoring data directory from %s", aside)
	if err := os.Rename(aside, p.cfg.DataDir); err != nil {
		return fmt.Errorf("restore data directory from %s: %w", aside, err)
	}
	return nil
}

// basebackup clones up into a new, empty data directory owned by RunAs.
// It checkpoints up fast rather than waiting for a spread checkpoint:
// a demote is on the recovery path.
func (p *Postgres) basebackup(ctx context.Context, up Upstream) error {
	if err := os.Mkdir(p.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := p.cred.Chown(p.cfg.DataDir); err != nil {
		return fmt.Errorf("chown data directory: %w", err)
	}
	_, err := p.run(ctx, "pg_basebackup", "-D", p.cfg.DataDir, "-R", "-X", "stream", "-c", "fast",
		"-h", up.Host, "-p", strconv.Itoa(up.Port), "-U", p.cfg.ReplicationUser, "-w")
	return err
}

// awaitStreaming polls until the started standby is in recovery and its
// WAL receiver streams from up.
func (p *Postgres) awaitStreaming(ctx context.Context, up Upstream, progress Progress) error {
	progress("waiting until streaming from %s", pgHostPort(up))
	err := pgPoll(ctx, func(ctx context.Context) error {
		ok, err := p.streamingFrom(ctx, up)
		if err == nil && !ok {
			err = errors.New("wal receiver is not streaming yet")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("wait until streaming: %w", err)
	}
	progress("streaming from %s", pgHostPort(up))
	return nil
}

// writeStandbyConfig creates standby.signal and points primary_conninfo
// at up, streaming as ApplicationName. pg_rewind copies the source's
// postgresql.auto.conf and pg_basebackup -R writes its own settings, so
// this always rewrites it. It also clears the synchronous_standby_names
// copied from the source: Promote replaces it anyway, but a standby
// promoted by hand would otherwise wait for its old primary's standbys.
func (p *Postgres) writeStandbyConfig(up Upstream) error {
	signal := filepath.Join(p.cfg.DataDir, "standby.signal")
	if err := p.writeOwned(signal, nil); err != nil {
		return fmt.Errorf("create standby.signal: %w", err)
	}
	conninfo := pgConnInfo(up, p.cfg.ReplicationUser, "")
	if p.cfg.ApplicationName != "" {
		// Validated: plain characters, nothing to quote.
		conninfo += " application_name=" + p.cfg.ApplicationName
	}
	for _, kv := range [][2]string{{"primary_conninfo", conninfo}, {"synchronous_standby_names", ""}} {
		if err := p.setAutoConf(kv[0], kv[1]); err != nil {
			return fmt.Errorf("set %s: %w", kv[0], err)
		}
	}
	return nil
}
