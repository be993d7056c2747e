package rsync

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const (
	// maxLineLen cuts the lines rsync writes; longer ones are truncated.
	maxLineLen = 4 << 10
	// stderrTailLines is how many of rsync's last stderr lines an error
	// carries.
	stderrTailLines = 20
	// stdoutTailLines is how many of rsync's last stdout lines are kept for
	// the --stats block, which is about 16 lines long.
	stdoutTailLines = 64
	// progressInterval is the least time between two progress lines
	// forwarded from rsync, so a long pull reports without flooding.
	progressInterval = 5 * time.Second
)

// lineWriter is an io.Writer that calls emit with every non-empty line
// written to it, split at \n or \r (rsync ends progress updates with \r).
// It is used as exec.Cmd output, so one goroutine writes; call Flush after
// the command ended for a last unterminated line.
type lineWriter struct {
	emit func(line string)
	buf  []byte
}

// newLineWriter returns a lineWriter calling emit.
func newLineWriter(emit func(line string)) *lineWriter {
	return &lineWriter{emit: emit}
}

// Write implements io.Writer; it never fails.
func (w *lineWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		switch {
		case c == '\n' || c == '\r':
			w.Flush()
		case len(w.buf) < maxLineLen:
			w.buf = append(w.buf, c)
		}
	}
	return len(p), nil
}

// Flush emits the buffered partial line, if any.
func (w *lineWriter) Flush() {
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = w.buf[:0]
	}
}

// tailLines keeps the last max lines added.
type tailLines struct {
	max   int
	lines []string
}

// add appends line, dropping the oldest beyond max.
func (t *tailLines) add(line string) {
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

// String joins the kept lines with "; ", for an error message.
func (t *tailLines) String() string {
	return strings.Join(t.lines, "; ")
}

// progressRE matches an --info=progress2 update:
// "  588897  99%   58.93MB/s    0:00:00 (xfr#2, to-chk=0/5)".
var progressRE = regexp.MustCompile(`^\s*[\d,.]+\s+\d+%\s`)

// stdoutParser sorts the lines of a pulling rsync's stdout: progress
// updates go to the Progress callback at most once per interval, the rest
// is kept for parseStats.
type stdoutParser struct {
	progress func(format string, args ...any)
	interval time.Duration
	now      func() time.Time
	last     time.Time
	tail     tailLines
}

// newStdoutParser returns a parser whose first progress line is forwarded
// one interval after now.
func newStdoutParser(progress func(string, ...any), interval time.Duration, now func() time.Time) *stdoutParser {
	return &stdoutParser{progress: progress, interval: interval, now: now, last: now(), tail: tailLines{max: stdoutTailLines}}
}

// line handles one line of output.
func (p *stdoutParser) line(l string) {
	if !progressRE.MatchString(l) {
		p.tail.add(l)
		return
	}
	if now := p.now(); now.Sub(p.last) >= p.interval {
		p.last = now
		p.progress("rsync progress: %s", strings.Join(strings.Fields(l), " "))
	}
}

// parseStats reads the counters Result holds out of rsync's --stats block.
func parseStats(lines []string) (Result, error) {
	var r Result
	fields := map[string]*int64{
		"Number of files":                     &r.Files,
		"Number of regular files transferred": &r.TransferredFiles,
		"Number of deleted files":             &r.DeletedFiles,
		"Total file size":                     &r.Bytes,
		"Total transferred file size":         &r.TransferredBytes,
		"Total bytes received":                &r.ReceivedBytes,
	}
	for _, line := range lines {
		label, value, _ := strings.Cut(line, ":")
		dst, ok := fields[label]
		if !ok {
			continue
		}
		n, err := leadingInt(value)
		if err != nil {
			return r, fmt.Errorf("parse rsync stats line %q: %w", line, err)
		}
		*dst = n
		delete(fields, label)
	}
	for label := range fields {
		return r, fmt.Errorf("parse rsync stats: no %q line in output", label)
	}
	return r, nil
}

// leadingInt parses the first word of s as an integer, ignoring digit
// group separators ("5 (reg: 2, dir: 3)", "588,900 bytes").
func leadingInt(s string) (int64, error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return 0, fmt.Errorf("no number")
	}
	return strconv.ParseInt(strings.ReplaceAll(words[0], ",", ""), 10, 64)
}
