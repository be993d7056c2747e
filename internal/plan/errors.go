package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/drplane/drplane/internal/hclpos"
	"github.com/hashicorp/hcl/v2"
)

// Diagnostic is one problem in a plan file, a definition or a plan; one
// found in a plan built in code (by Validate) has no position.
type Diagnostic = hclpos.Diagnostic

// Error is every problem found at once, one per line; those with a
// position come sorted by it.
type Error = hclpos.Error

// problems collects diagnostics.
type problems struct {
	list []Diagnostic
}

// at records a problem at rng; a zero rng records it without a position.
func (p *problems) at(rng hcl.Range, format string, args ...any) {
	d := Diagnostic{Message: fmt.Sprintf(format, args...)}
	if rng.Filename != "" {
		d.File, d.Line, d.Column = rng.Filename, rng.Start.Line, rng.Start.Column
	}
	p.list = append(p.list, d)
}

// add records a problem without a position.
func (p *problems) add(format string, args ...any) {
	p.at(hcl.Range{}, format, args...)
}

// err returns nil when nothing was recorded, else an *Error.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	sort.SliceStable(p.list, func(i, j int) bool {
		a, b := p.list[i], p.list[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return &Error{Diagnostics: p.list}
}

// didYouMean returns `; did you mean "x"?` for the candidate closest to
// given, when one is close enough to be a likely typo, else "".
func didYouMean(given string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(given), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// quoted formats names as `"a", "b"` for "expected one of" messages.
func quoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
