package hostagent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// leaseFileName records in data_dir, in wall-clock time, when the last
// lease a leader granted (or revoked) ends. A restarted agent's boot
// window never outlives it: the leader counts only the leases it granted,
// and may promote another site once they lapsed (invariant 4), so an
// agent that restarts after that must not keep an adopted primary for a
// fresh lease_ttl.
const leaseFileName = "lease"

// readLeaseUntil returns when the recorded lease ends, and false when no
// leader ever granted this agent one.
func readLeaseUntil(dir string) (time.Time, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, leaseFileName))
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("parse %s: %w", filepath.Join(dir, leaseFileName), err)
	}
	return time.Unix(0, ns), true, nil
}

// writeLeaseUntil records when the lease ends, through w. It is not
// fsynced: it guards against an agent restart, and a crash of the host
// stops its services too.
func writeLeaseUntil(w *dataDirWriter, until time.Time) error {
	return w.writeFile(filepath.Join(w.dir, leaseFileName), []byte(strconv.FormatInt(until.UnixNano(), 10)+"\n"), false)
}

// bootWindow is how long an agent starting at now waits for a leader
// before it fences adopted primaries: lease_ttl, but never beyond the end
// of the last lease a leader granted it.
func bootWindow(dir string, now time.Time, ttl time.Duration) (time.Duration, error) {
	until, ok, err := readLeaseUntil(dir)
	if err != nil || !ok {
		return ttl, err
	}
	return max(0, min(ttl, until.Sub(now))), nil
}

// lease is this host's right to keep services in the primary role
// (DESIGN.md sections 4 and 5). It starts when a renewal arrives, on the
// agent's own monotonic clock, and runs for the TTL the leader granted: it
// is valid before that deadline and lapsed at it, the instant the leader's
// leaseTable counts it lapsed at too, less the clock skew margin (invariant
// 4). At boot the agent behaves as if a lease had been granted at start,
// so an adopted primary is fenced unless a leader renews within one TTL
// (invariant 5). Every instant passed in comes from the agent's clock
// (Deps.Clock), which the fencer waits on, so tests run the lease in
// virtual time.
type lease struct {
	mu        sync.Mutex
	expiresAt time.Time // monotonic reading; zero never
	epoch     uint64
	granted   bool // a leader (not boot) granted the current lease
	// leaderTTL is the lease_ttl the last leader probe carried, zero
	// before one: the leader counts leases by its own lease_ttl, which
	// may differ from the agent's configured one.
	leaderTTL time.Duration
}

func newBootLease(now time.Time, ttl time.Duration) *lease {
	return &lease{expiresAt: now.Add(ttl)}
}

// renew extends the lease to now+ttl. It never shortens a leader's grant,
// but the first grant replaces the boot window: the leader counts only
// the leases it granted (DESIGN.md section 5), and a boot window of a
// longer agent lease_ttl would outlive them.
func (l *lease) renew(now time.Time, ttl time.Duration, epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if exp := now.Add(ttl); exp.After(l.expiresAt) || !l.granted {
		l.expiresAt = exp
	}
	l.epoch, l.granted = epoch, true
}

// learnTTL records the lease_ttl a leader probe carried.
func (l *lease) learnTTL(ttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leaderTTL = ttl
}

// ttlOr returns the leader's lease_ttl, or fallback before any probe.
func (l *lease) ttlOr(fallback time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leaderTTL > 0 {
		return l.leaderTTL
	}
	return fallback
}

// revoke ends the lease at now: a leader of epoch says another site is
// active, so this host must not keep a primary a moment longer. A lease
// granted in a newer epoch is kept (the revoking message is stale).
func (l *lease) revoke(now time.Time, epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if epoch < l.epoch {
		return
	}
	if now.Before(l.expiresAt) {
		l.expiresAt = now
	}
}

// valid reports whether the lease runs at now.
func (l *lease) valid(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return now.Before(l.expiresAt)
}

// snapshot returns the lease for reports.
func (l *lease) snapshot(now time.Time) (valid bool, remaining time.Duration, epoch uint64, granted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.expiresAt) {
		remaining = l.expiresAt.Sub(now)
	}
	return remaining > 0, remaining, l.epoch, l.granted
}

// deadline returns when the lease ends, on the monotonic clock.
func (l *lease) deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expiresAt
}

// probeReceipts remembers when the agent received the leader's last few
// probes, by leader and probe id: an anchored renewal (ProbeRequest's
// lease_anchor) runs from the receipt of the probe it names. The leader
// received that probe's answer after the agent received the probe, so it
// bounds the lease by the answer's arrival, however late the renewal
// itself lands; a probe delayed in the network cannot stretch a lease past
// what the leader counts (invariant 4).
type probeReceipts struct {
	mu   sync.Mutex
	ring [probeReceiptsKept]probeReceipt
	next int
}

// probeReceiptsKept is how many receipts are remembered: a leader anchors
// on its newest answered probe, a probe_interval or two back.
const probeReceiptsKept = 16

type probeReceipt struct {
	leader string
	id     uint64
	at     time.Time
}

// record notes that probe id of leader arrived at at.
func (r *probeReceipts) record(leader string, id uint64, at time.Time) {
	if id == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ring[r.next] = probeReceipt{leader: leader, id: id, at: at}
	r.next = (r.next + 1) % len(r.ring)
}

// receivedAt returns when probe id of leader last arrived, if
// remembered: newest first, should a leader's ids ever repeat.
func (r *probeReceipts) receivedAt(leader string, id uint64) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 1; i <= len(r.ring); i++ {
		p := r.ring[(r.next-i+len(r.ring))%len(r.ring)]
		if p.id == id && p.leader == leader && id != 0 {
			return p.at, true
		}
	}
	return time.Time{}, false
}
