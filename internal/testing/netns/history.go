package netns

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// HistoryTableSQL creates the table the checker writes to. Run it on the
// primary before the checker starts; it replicates to the standby.
const HistoryTableSQL = `CREATE TABLE history (
	id     bigint PRIMARY KEY,
	epoch  bigint NOT NULL,   -- the epoch the client believed current
	site   text   NOT NULL,   -- the site the client believed active
	writer text   NOT NULL    -- active or adversarial
)`

// insertSQL writes one row and returns the address of the server that
// acknowledged it, which names the PostgreSQL instance (one per host).
const insertSQL = `INSERT INTO history (id, epoch, site, writer) VALUES ($1, $2, $3, $4) RETURNING host(inet_server_addr())`

// Outcome is what became of one write.
type Outcome int

const (
	// Acked: the database acknowledged the commit.
	Acked Outcome = iota + 1
	// Failed: the database refused the write, or it was never sent; the
	// row must not exist.
	Failed
	// Unknown: the connection broke or timed out after the write was
	// sent; the row may or may not exist.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case Acked:
		return "acked"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return "?"
}

// Writer is one of the checker's clients.
type Writer int

const (
	// Active writes go to the database of the site the control plane
	// last said is active.
	Active Writer = iota
	// Adversarial writes go to the data site the client believes is not
	// active: the old primary's address after a failover.
	Adversarial
	// Proxied writes go through the load balancer, wherever it routes
	// them, as an application that knows only its address.
	Proxied
)

func (w Writer) String() string {
	switch w {
	case Active:
		return "active"
	case Adversarial:
		return "adversarial"
	case Proxied:
		return "proxied"
	}
	return "?"
}

// Op is one write of the history.
type Op struct {
	ID     int64
	Writer Writer
	// Site is the site whose database the write was sent to; "" for a
	// proxied write.
	Site string
	// BelievedEpoch and BelievedSite are the control plane's answer the
	// client acted on.
	BelievedEpoch uint64
	BelievedSite  string
	Sent, Done    time.Time
	Outcome       Outcome
	// Server is the address of the server that acknowledged the write
	// (inet_server_addr), ServerSite its site.
	Server, ServerSite string
	Err                string
}

func (op Op) String() string {
	to := op.Site
	if op.Writer == Proxied {
		to = "the load balancer"
	}
	s := fmt.Sprintf("#%d %s to %s (believed epoch %d, %s active) %s..%s %s",
		op.ID, op.Writer, to, op.BelievedEpoch, op.BelievedSite,
		op.Sent.Format("15:04:05.000"), op.Done.Format("15:04:05.000"), op.Outcome)
	if op.Outcome == Acked {
		s += " by " + op.Server + " (" + op.ServerSite + ")"
	}
	if op.Err != "" {
		s += ": " + op.Err
	}
	return s
}

// Poll is one successful answer of the control plane: the epoch and
// active site at some instant between Start and End.
type Poll struct {
	Start, End time.Time
	Epoch      uint64
	Active     string
}

// Target is where the checker writes for one data site: the site's
// database, reached from a host of that site (its application host).
type Target struct {
	Site string
	DB   *Postgres
	From *Host
}

// CheckerConfig configures a Checker.
type CheckerConfig struct {
	// Targets are the data sites' databases; exactly two.
	Targets []Target
	// Status asks the control plane for the current epoch and active
	// site (`drplane status`).
	Status func(ctx context.Context) (epoch uint64, active string, err error)
	// PollEvery is how often Status is asked; default 200ms.
	PollEvery time.Duration
	// WriteEvery paces the active writer; default 10ms.
	WriteEvery time.Duration
	// AdversarialEvery paces the adversarial writer; default 25ms.
	AdversarialEvery time.Duration
	// Timeout bounds one write, connecting included; default 2s.
	Timeout time.Duration
	// Proxy, when set, adds a writer that writes every WriteEvery through
	// this load balancer (the address, and the host connecting to it).
	Proxy *ProxyTarget
}

// ProxyTarget is a load balancer in front of the data sites' databases.
type ProxyTarget struct {
	Addr string
	From *Host
}

// Checker is a Jepsen-style client. An active writer inserts uniquely
// numbered rows into the database of whichever site the control plane
// last said is active; an adversarial writer inserts into the other data
// site's database, as a client with a stale view (or an application left
// behind in a partitioned site) would; a proxied writer, when there is a
// load balancer, writes through it. Every write records the epoch and
// site the client believed in, its interval and its outcome, and which
// server acknowledged it.
type Checker struct {
	cfg      CheckerConfig
	bySite   map[string]Target
	siteOfIP map[string]string

	belief    atomic.Pointer[Poll]
	nextID    atomic.Int64
	advPaused atomic.Bool

	mu         sync.Mutex
	ops        []Op
	polls      []Poll
	pollErrors int
	lastErr    string

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartChecker starts the poller and waits for the control plane's first
// answer, then starts the writers.
func StartChecker(ctx context.Context, cfg CheckerConfig) (*Checker, error) {
	if len(cfg.Targets) != 2 {
		return nil, fmt.Errorf("checker: %d targets, want the two data sites", len(cfg.Targets))
	}
	cfg.PollEvery = orDuration(cfg.PollEvery, 200*time.Millisecond)
	cfg.WriteEvery = orDuration(cfg.WriteEvery, 10*time.Millisecond)
	cfg.AdversarialEvery = orDuration(cfg.AdversarialEvery, 25*time.Millisecond)
	cfg.Timeout = orDuration(cfg.Timeout, 2*time.Second)
	c := &Checker{cfg: cfg, bySite: map[string]Target{}, siteOfIP: map[string]string{}}
	for _, tg := range cfg.Targets {
		c.bySite[tg.Site] = tg
		c.siteOfIP[tg.DB.Host.IP] = tg.Site
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(1)
	go c.poller(runCtx)
	for c.belief.Load() == nil {
		select {
		case <-ctx.Done():
			c.Stop()
			return nil, fmt.Errorf("checker: no answer from the control plane: %w (last error: %s)", ctx.Err(), c.lastError())
		case <-time.After(20 * time.Millisecond):
		}
	}
	c.wg.Add(2)
	go c.writer(runCtx, Active, cfg.WriteEvery)
	go c.writer(runCtx, Adversarial, cfg.AdversarialEvery)
	if cfg.Proxy != nil {
		c.wg.Add(1)
		go c.writer(runCtx, Proxied, cfg.WriteEvery)
	}
	return c, nil
}

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (c *Checker) lastError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func (c *Checker) poller(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.PollEvery)
	defer t.Stop()
	for {
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		epoch, active, err := c.cfg.Status(pctx)
		cancel()
		end := time.Now()
		c.mu.Lock()
		if err != nil {
			c.pollErrors++
			c.lastErr = err.Error()
		} else {
			p := Poll{Start: start, End: end, Epoch: epoch, Active: active}
			c.polls = append(c.polls, p)
			// Epochs only grow: an older answer arriving late never
			// replaces a newer belief.
			if b := c.belief.Load(); b == nil || epoch >= b.Epoch {
				c.belief.Store(&p)
			}
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PauseAdversarial stops the adversarial writer until ResumeAdversarial,
// for a phase in which something outside the control plane (the test
// itself) runs a database the checker must not count.
func (c *Checker) PauseAdversarial() { c.advPaused.Store(true) }

// ResumeAdversarial restarts the adversarial writer.
func (c *Checker) ResumeAdversarial() { c.advPaused.Store(false) }

func (c *Checker) writer(ctx context.Context, w Writer, every time.Duration) {
	defer c.wg.Done()
	conns := map[string]*pgx.Conn{}
	defer func() {
		for _, conn := range conns {
			_ = conn.Close(context.Background())
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w == Adversarial && c.advPaused.Load() {
			continue
		}
		b := c.belief.Load()
		site := b.Active
		switch w {
		case Adversarial:
			site = ""
			for s := range c.bySite {
				if s != b.Active {
					site = s
				}
			}
		case Proxied:
			site = ""
		}
		tg, ok := c.bySite[site]
		if !ok && w != Proxied {
			continue // the control plane names a site without a database
		}
		op := Op{ID: c.nextID.Add(1), Writer: w, Site: site, BelievedEpoch: b.Epoch, BelievedSite: b.Active, Sent: time.Now()}
		wctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		conn := conns[site]
		var err error
		if conn == nil {
			if w == Proxied {
				conn, err = connectPG(wctx, c.cfg.Proxy.Addr, c.cfg.Proxy.From)
			} else {
				conn, err = tg.DB.Connect(wctx, tg.From)
			}
			if err == nil {
				conns[site] = conn
			}
		}
		if err != nil {
			// Nothing was sent: the row cannot exist.
			op.Outcome, op.Err = Failed, "connect: "+err.Error()
		} else {
			err = conn.QueryRow(wctx, insertSQL, op.ID, int64(b.Epoch), b.Active, w.String()).Scan(&op.Server)
			op.Outcome, op.Err = classify(err)
			if op.Outcome == Acked {
				op.ServerSite = c.siteOfIP[op.Server]
			}
			if op.Outcome == Unknown {
				_ = conn.Close(context.Background())
				delete(conns, site)
			}
		}
		cancel()
		op.Done = time.Now()
		if ctx.Err() != nil && op.Outcome != Acked {
			return // stopped mid-write: not part of the history
		}
		c.mu.Lock()
		c.ops = append(c.ops, op)
		c.mu.Unlock()
	}
}

// classify turns a write's error into its outcome. A statement error
// (ERROR severity, such as a read-only standby's refusal) rolled the
// write back; a broken connection, a timeout or a FATAL termination may
// have come after the commit.
func classify(err error) (Outcome, string) {
	if err == nil {
		return Acked, ""
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Severity == "ERROR" &&
		!strings.HasPrefix(pgErr.Code, "08") && !strings.HasPrefix(pgErr.Code, "57") {
		return Failed, err.Error()
	}
	return Unknown, err.Error()
}

// Stats is a snapshot of the history so far.
type Stats struct {
	Ops int
	// AckedBySite counts acknowledged writes by the site whose server
	// acknowledged them.
	AckedBySite map[string]int
	// LastAck is the newest acknowledgement per site.
	LastAck map[string]time.Time
	// Belief is the control plane's latest answer.
	Belief Poll
}

// Stats returns counts of the history so far, for a test waiting for
// progress.
func (c *Checker) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Ops: len(c.ops), AckedBySite: map[string]int{}, LastAck: map[string]time.Time{}}
	for _, op := range c.ops {
		if op.Outcome == Acked {
			s.AckedBySite[op.ServerSite]++
			if op.Done.After(s.LastAck[op.ServerSite]) {
				s.LastAck[op.ServerSite] = op.Done
			}
		}
	}
	if b := c.belief.Load(); b != nil {
		s.Belief = *b
	}
	return s
}

// Stop stops the writers and the poller and returns the history.
func (c *Checker) Stop() *History {
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return &History{Ops: slices.Clone(c.ops), Polls: slices.Clone(c.polls), PollErrors: c.pollErrors}
}

// History is what a Checker recorded.
type History struct {
	Ops        []Op
	Polls      []Poll
	PollErrors int
}

// Promise is what a plan promises about acknowledged rows. The zero
// Promise is a switchover's: every acknowledged row survives. A failover
// may lose rows that the lost site's database acknowledged shortly before
// the failure (within the RPO guard) and, when the site was partitioned
// rather than dead, until it fenced itself (within the lease).
type Promise struct {
	// LossSite is the site whose acknowledged rows may be missing.
	LossSite string
	// LossFrom and LossUntil bound when those rows were written: a
	// missing row is promised only when its write was acknowledged at or
	// after LossFrom and sent at or before LossUntil.
	LossFrom, LossUntil time.Time
}

// Result is the verdict on a history.
type Result struct {
	Ops, Acked, Failed, Unknown int
	// AckedBySite counts acknowledgements by the acknowledging server's
	// site.
	AckedBySite map[string]int
	// Writers maps every epoch to the sites that acknowledged writes
	// certainly made in it, with counts; Ambiguous counts acknowledged
	// writes whose interval saw an epoch change (or no answer).
	Writers   map[uint64]map[string]int
	Ambiguous int
	// Active is the active site of every epoch the control plane named.
	Active map[uint64]string
	// SplitBrain lists the epochs in which two sites acknowledged writes
	// (DESIGN.md invariant 1), with examples.
	SplitBrain []string
	// Stray lists writes acknowledged, certainly within an epoch, by a
	// site that was not active in it.
	Stray []Op
	// Lost are acknowledged writes whose row is missing from the final
	// database; Unpromised those of them the promise does not cover.
	Lost       []Op
	Unpromised []Op
	// Phantoms are rows present whose write the database refused.
	Phantoms []Op
	// LostWindow is the span of Lost's acknowledgements.
	LostFirst, LostLast time.Time
}

// OK reports whether the history passed every check.
func (r Result) OK() bool {
	return len(r.SplitBrain) == 0 && len(r.Stray) == 0 && len(r.Unpromised) == 0 && len(r.Phantoms) == 0
}

// String summarises the result for a test log.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d writes: %d acknowledged (", r.Ops, r.Acked)
	for i, site := range slices.Sorted(maps.Keys(r.AckedBySite)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", site, r.AckedBySite[site])
	}
	fmt.Fprintf(&b, "), %d refused, %d unknown; writers by epoch:", r.Failed, r.Unknown)
	for _, e := range slices.Sorted(maps.Keys(r.Writers)) {
		fmt.Fprintf(&b, " %d(active %s)=%v", e, r.Active[e], r.Writers[e])
	}
	fmt.Fprintf(&b, "; %d acknowledged across an epoch change; %d lost", r.Ambiguous, len(r.Lost))
	if len(r.Lost) > 0 {
		fmt.Fprintf(&b, " (acknowledged %s..%s)", r.LostFirst.Format("15:04:05.000"), r.LostLast.Format("15:04:05.000"))
	}
	fmt.Fprintf(&b, ", %d outside the promise, %d phantoms, %d split-brain epochs, %d stray", len(r.Unpromised), len(r.Phantoms), len(r.SplitBrain), len(r.Stray))
	return b.String()
}

// FirstAck returns the earliest acknowledgement by site's database of a
// write sent at or after since.
func (h *History) FirstAck(site string, since time.Time) (Op, bool) {
	var first Op
	found := false
	for _, op := range h.Ops {
		if op.Outcome == Acked && op.ServerSite == site && !op.Sent.Before(since) && (!found || op.Done.Before(first.Done)) {
			first, found = op, true
		}
	}
	return first, found
}

// LastAck returns the latest acknowledgement by site's database.
func (h *History) LastAck(site string) (Op, bool) {
	var last Op
	found := false
	for _, op := range h.Ops {
		if op.Outcome == Acked && op.ServerSite == site && (!found || op.Done.After(last.Done)) {
			last, found = op, true
		}
	}
	return last, found
}

// EpochOf returns the epoch op certainly happened in: the control plane
// answered that epoch both before op was sent and after it was
// acknowledged (epochs only grow, so nothing changed in between).
func (h *History) EpochOf(op Op) (uint64, bool) {
	var before, after uint64
	haveBefore, haveAfter := false, false
	for _, p := range h.Polls {
		if !p.End.After(op.Sent) && (!haveBefore || p.Epoch > before) {
			before, haveBefore = p.Epoch, true
		}
		if !p.Start.Before(op.Done) && (!haveAfter || p.Epoch < after) {
			after, haveAfter = p.Epoch, true
		}
	}
	return before, haveBefore && haveAfter && before == after
}

// Check judges the history against the rows of the final primary
// (present) and what the plan promised. A nil present skips the checks of
// rows (lost, phantoms): for a scenario without a primary to read.
func (h *History) Check(present map[int64]bool, promise Promise) Result {
	r := Result{Ops: len(h.Ops), AckedBySite: map[string]int{}, Writers: map[uint64]map[string]int{}, Active: map[uint64]string{}}
	for _, p := range h.Polls {
		r.Active[p.Epoch] = p.Active
	}
	examples := map[uint64]map[string]Op{}
	for _, op := range h.Ops {
		switch op.Outcome {
		case Failed:
			r.Failed++
			if present != nil && present[op.ID] {
				r.Phantoms = append(r.Phantoms, op)
			}
			continue
		case Unknown:
			r.Unknown++
			continue
		}
		r.Acked++
		r.AckedBySite[op.ServerSite]++
		if present != nil && !present[op.ID] {
			r.Lost = append(r.Lost, op)
			if r.LostFirst.IsZero() || op.Done.Before(r.LostFirst) {
				r.LostFirst = op.Done
			}
			if op.Done.After(r.LostLast) {
				r.LostLast = op.Done
			}
			if !promise.covers(op) {
				r.Unpromised = append(r.Unpromised, op)
			}
		}
		e, ok := h.EpochOf(op)
		if !ok {
			r.Ambiguous++
			continue
		}
		if r.Writers[e] == nil {
			r.Writers[e], examples[e] = map[string]int{}, map[string]Op{}
		}
		r.Writers[e][op.ServerSite]++
		if _, seen := examples[e][op.ServerSite]; !seen {
			examples[e][op.ServerSite] = op
		}
		if active, known := r.Active[e]; known && op.ServerSite != active {
			r.Stray = append(r.Stray, op)
		}
	}
	for _, e := range slices.Sorted(maps.Keys(r.Writers)) {
		if len(r.Writers[e]) < 2 {
			continue
		}
		var ex []string
		for _, site := range slices.Sorted(maps.Keys(examples[e])) {
			ex = append(ex, examples[e][site].String())
		}
		r.SplitBrain = append(r.SplitBrain, fmt.Sprintf("epoch %d: sites %v acknowledged writes; e.g. %s", e, r.Writers[e], strings.Join(ex, "; ")))
	}
	sort.Slice(r.Lost, func(i, j int) bool { return r.Lost[i].ID < r.Lost[j].ID })
	return r
}

func (p Promise) covers(op Op) bool {
	return p.LossSite != "" && op.ServerSite == p.LossSite && !op.Done.Before(p.LossFrom) && !op.Sent.After(p.LossUntil)
}

// ClientOutage is the write outage a client of the load balancer saw
// across a failover: from its last write acknowledged by from's database
// to its first one acknowledged by to's database after that.
func (h *History) ClientOutage(from, to string) (lastOld, firstNew Op, err error) {
	found := false
	for _, op := range h.Ops {
		if op.Writer == Proxied && op.Outcome == Acked && op.ServerSite == from && (!found || op.Done.After(lastOld.Done)) {
			lastOld, found = op, true
		}
	}
	if !found {
		return Op{}, Op{}, fmt.Errorf("no write through the load balancer was acknowledged by %s", from)
	}
	found = false
	for _, op := range h.Ops {
		if op.Writer == Proxied && op.Outcome == Acked && op.ServerSite == to && op.Done.After(lastOld.Done) && (!found || op.Done.Before(firstNew.Done)) {
			firstNew, found = op, true
		}
	}
	if !found {
		return lastOld, Op{}, fmt.Errorf("no write through the load balancer was acknowledged by %s after %s", to, lastOld)
	}
	return lastOld, firstNew, nil
}

// LongestProxiedGap is the longest time between two consecutive
// acknowledgements of writes through the load balancer, counting from
// and to the bounds, within [from, to].
func (h *History) LongestProxiedGap(from, to time.Time) time.Duration {
	var acks []time.Time
	for _, op := range h.Ops {
		if op.Writer == Proxied && op.Outcome == Acked && op.Done.After(from) && op.Done.Before(to) {
			acks = append(acks, op.Done)
		}
	}
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	prev, longest := from, time.Duration(0)
	for _, t := range append(acks, to) {
		longest = max(longest, t.Sub(prev))
		prev = t
	}
	return longest
}
