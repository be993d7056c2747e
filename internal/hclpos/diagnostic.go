// Package hclpos keeps the positions of problems in HCL files true: it
// rewrites the compact one-line block shape drplane documents into one HCL
// accepts while remembering where every line came from, and holds the
// positioned diagnostics both configuration and plan files report.
package hclpos

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Diagnostic is one problem in a file. A problem found in a file carries the
// file's name and the 1-based line and column of the offending key or
// block; one found in something built in code has no position.
type Diagnostic struct {
	File   string
	Line   int
	Column int
	// Key is the key concerned, e.g. "failover.lease_ttl"; empty when none.
	Key     string
	Message string
}

// String formats d as "file:line:col: message", or just the message when d
// has no position.
func (d Diagnostic) String() string {
	if d.File == "" {
		return d.Message
	}
	return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Line, d.Column, d.Message)
}

// Error is every problem found at once, one per line.
type Error struct {
	Diagnostics []Diagnostic
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// FirstErrors keeps the syntax errors at the earliest position: after one,
// HCL reads the rest of the file out of step (an unterminated string makes
// every later line an error), so later ones mislead more than they help.
func FirstErrors(hd hcl.Diagnostics) hcl.Diagnostics {
	var first hcl.Diagnostics
	for _, h := range hd {
		switch {
		case h.Severity != hcl.DiagError:
		case len(first) == 0 || Before(h.Subject, first[0].Subject):
			first = hcl.Diagnostics{h}
		case !Before(first[0].Subject, h.Subject):
			first = append(first, h)
		}
	}
	return first
}

// Before reports whether a starts before b; a missing range is last.
func Before(a, b *hcl.Range) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	}
	return a.Start.Byte < b.Start.Byte
}
