package config

import (
	"fmt"
	"sort"

	"github.com/drplane/drplane/internal/hclpos"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Diagnostic is one problem in a configuration; see hclpos.Diagnostic.
type Diagnostic = hclpos.Diagnostic

// Error is every problem found in one configuration, one per line, sorted
// by position when they come from a file.
type Error = hclpos.Error

// problems collects what Validate methods find, each under the key it
// concerns, so that a file loader can place it at that key's position.
type problems struct {
	list []Diagnostic
}

// add records a problem with key.
func (p *problems) add(key, format string, args ...any) {
	p.list = append(p.list, Diagnostic{Key: key, Message: fmt.Sprintf(format, args...)})
}

// err returns nil when nothing was recorded, else an *Error.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &Error{Diagnostics: p.list}
}

// diagnostics collects problems, with positions, while a file is decoded
// and validated.
type diagnostics struct {
	file  string
	lines *hclpos.LineMap
	// body is the parsed file once parsing succeeded; it lets HCL's own
	// diagnostics name the key they concern.
	body  *hclsyntax.Body
	diags []Diagnostic
	// broken are keys whose value could not be parsed and was replaced by
	// its default; problems a Validate method finds there are not repeated.
	broken map[string]bool
}

// at records a problem at rng.
func (d *diagnostics) at(rng hcl.Range, format string, args ...any) {
	d.record(rng, "", fmt.Sprintf(format, args...))
}

// record records msg about key at rng.
func (d *diagnostics) record(rng hcl.Range, key, msg string) {
	diag := d.position(rng)
	diag.Key, diag.Message = key, msg
	d.diags = append(d.diags, diag)
}

// markBroken notes that key's value was unusable and a default stands in.
func (d *diagnostics) markBroken(key string) {
	if d.broken == nil {
		d.broken = map[string]bool{}
	}
	d.broken[key] = true
}

// place records problems found by a Validate method at the position of
// the key each concerns in body.
func (d *diagnostics) place(body *hclsyntax.Body, p problems) {
	for _, x := range p.list {
		if d.broken[x.Key] {
			continue
		}
		d.record(keyRange(body, x.Key), x.Key, x.Message)
	}
}

// err returns nil when nothing was recorded, else an *Error with the
// problems sorted by position.
func (d *diagnostics) err() error {
	if len(d.diags) == 0 {
		return nil
	}
	sort.SliceStable(d.diags, func(i, j int) bool {
		a, b := d.diags[i], d.diags[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return &Error{Diagnostics: d.diags}
}
