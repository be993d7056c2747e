package snapshot

import (
	"context"
	"fmt"
	"time"
)

// progressInterval is how often a long operation reports between its first
// and last lines.
const progressInterval = 2 * time.Second

// ProgressFunc receives human-readable progress lines, such as
// "snapshot state: 123 files, 4.5 MB"; the agent streams them to the leader.
type ProgressFunc = func(format string, args ...any)

type progressKey struct{}

// withProgress carries p to the engine. The Engine interface has no place
// for it, and an engine called without one simply reports nowhere.
func withProgress(ctx context.Context, p ProgressFunc) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, progressKey{}, p)
}

// progressFrom returns the progress function carried by ctx, or one that
// discards.
func progressFrom(ctx context.Context) ProgressFunc {
	if p, ok := ctx.Value(progressKey{}).(ProgressFunc); ok {
		return p
	}
	return func(string, ...any) {}
}

// progressMeter counts files and bytes for one operation and reports at
// most every progressInterval, plus a final line from done.
type progressMeter struct {
	report ProgressFunc
	label  string
	last   time.Time
	files  int64
	bytes  int64
}

func newProgressMeter(ctx context.Context, label string) *progressMeter {
	return &progressMeter{report: progressFrom(ctx), label: label, last: time.Now()}
}

// add counts one more entry of size bytes.
func (m *progressMeter) add(files, bytes int64) {
	m.files += files
	m.bytes += bytes
	if now := time.Now(); now.Sub(m.last) >= progressInterval {
		m.last = now
		m.line()
	}
}

// done reports the totals.
func (m *progressMeter) done() { m.line() }

func (m *progressMeter) line() {
	m.report("%s: %d files, %s", m.label, m.files, formatBytes(m.bytes))
}

// formatBytes renders n in decimal units with one decimal: "4.5 MB".
func formatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
