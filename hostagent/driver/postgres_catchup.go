package driver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	_ FinalPositioner = (*Postgres)(nil)
	_ ReplayWaiter    = (*Postgres)(nil)
)

// ErrInvalidLSN is returned for a WAL position that is not two hex
// numbers of at most 32 bits around a slash, PostgreSQL's pg_lsn text.
var ErrInvalidLSN = errors.New("invalid WAL position")

// pgLSNRE is PostgreSQL's text form of an LSN, e.g. 0/3000028.
var pgLSNRE = regexp.MustCompile(`^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$`)

// catchUpReportInterval spaces the progress lines of a catch-up wait: one
// a second is enough to watch, a line per poll would flood the leader.
const catchUpReportInterval = time.Second

// ParseLSN parses a WAL position such as "0/3000028" into the 64-bit
// number PostgreSQL compares.
func ParseLSN(s string) (uint64, error) {
	m := pgLSNRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%w %q: expected two hex numbers around a slash, e.g. 0/3000028", ErrInvalidLSN, s)
	}
	hi, _ := strconv.ParseUint(m[1], 16, 32)
	lo, _ := strconv.ParseUint(m[2], 16, 32)
	return hi<<32 | lo, nil
}

// FinalPosition reads the control file with pg_controldata and returns
// the latest checkpoint location when the cluster was shut down cleanly
// as a primary. A fast shutdown writes that shutdown checkpoint last and
// its WAL senders send it to the connected standbys before the server
// exits, so a standby that replayed past it has every write.
func (p *Postgres) FinalPosition(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fields, err := p.controlData(ctx)
	if err != nil {
		return "", fmt.Errorf("final position of %s: %w", p.cfg.Name, err)
	}
	// "shut down in recovery" is a stopped standby, whose checkpoint
	// location is only its last restartpoint; "in production" after a
	// stop means the immediate fallback ran, which writes no checkpoint.
	if state := fields["Database cluster state"]; state != "shut down" {
		return "", fmt.Errorf("final position of %s: %w: cluster state is %q, not a cleanly shut down primary", p.cfg.Name, ErrNoFinalPosition, state)
	}
	lsn := fields["Latest checkpoint location"]
	if _, err := ParseLSN(lsn); err != nil {
		return "", fmt.Errorf("final position of %s: pg_controldata: latest checkpoint location: %w", p.cfg.Name, err)
	}
	return lsn, nil
}

// controlData runs pg_controldata on DataDir and returns its "name: value"
// lines. It runs in the C locale: the names are translated otherwise.
func (p *Postgres) controlData(ctx context.Context) (map[string]string, error) {
	cmd := p.command(ctx, "pg_controldata", "-D", p.cfg.DataDir)
	cmd.Env = append(cmd.Env, "LC_ALL=C") // the last value of a key wins
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pg_controldata: %w: %s", err, pgTail(out.String()))
	}
	return parseControlData(out.String()), nil
}

// parseControlData splits pg_controldata's output into its fields.
func parseControlData(out string) map[string]string {
	fields := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return fields
}

// WaitReplayed polls the standby until its replay position is strictly
// past after: replaying the record that starts at after (the primary's
// shutdown checkpoint) moves it to that record's end. It fails at once
// when the server is stopped or is not a standby (a primary's position
// proves nothing about what it received), and otherwise waits until ctx
// ends: how long a catch-up may take is the step's timeout.
func (p *Postgres) WaitReplayed(ctx context.Context, after string, progress Progress) (string, error) {
	progress = pgProgress(progress)
	target, err := ParseLSN(after)
	if err != nil {
		return "", fmt.Errorf("wait for %s to replay past %s: %w", p.cfg.Name, after, err)
	}
	ticker := time.NewTicker(pgPollInterval)
	defer ticker.Stop()
	var (
		reported time.Time
		replayed string
		last     error
	)
	for {
		pos, done, err := p.replayedPast(ctx, target)
		switch {
		case err == nil && done:
			progress("replayed %s, past %s", pos, after)
			return pos, nil
		case errors.Is(err, ErrPostgresNotRunning), errors.Is(err, errNotStandby):
			return "", fmt.Errorf("wait for %s to replay past %s: %w", p.cfg.Name, after, err)
		case err == nil:
			replayed, last = pos, nil
		default:
			last = err
		}
		if time.Since(reported) >= catchUpReportInterval {
			reported = time.Now()
			if last != nil {
				progress("waiting for > %s: %v", after, last)
			} else {
				progress("replayed %s, waiting for > %s", replayed, after)
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for %s to replay past %s: replayed %s: %w", p.cfg.Name, after, pgOr(replayed, "nothing yet"), errors.Join(ctx.Err(), last))
		case <-ticker.C:
		}
	}
}

// errNotStandby is a catch-up check on a server that is not in recovery.
var errNotStandby = errors.New("not a standby (not in recovery): only a standby's replay position shows what it received")

// replayedPast reads the replay position and reports whether it is past
// target. A failed connection to a server that does not run is
// ErrPostgresNotRunning; to one that runs, a retryable error.
func (p *Postgres) replayedPast(ctx context.Context, target uint64) (string, bool, error) {
	var inRecovery bool
	var replay *string
	err := p.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text").Scan(&inRecovery, &replay)
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", false, err
		}
		if running, rerr := p.running(ctx); rerr == nil && !running {
			return "", false, ErrPostgresNotRunning
		}
		return "", false, err
	}
	if !inRecovery {
		return "", false, errNotStandby
	}
	if replay == nil {
		return "", false, errors.New("nothing replayed yet")
	}
	lsn, err := ParseLSN(*replay)
	if err != nil {
		return "", false, err
	}
	return *replay, lsn > target, nil
}
