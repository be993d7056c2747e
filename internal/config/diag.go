package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Diagnostic is one problem in a configuration file, with its position.
type Diagnostic struct {
	File    string
	Line    int
	Column  int
	Message string
}

func (d Diagnostic) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Line, d.Column, d.Message)
}

// Error is every problem found in one configuration file, sorted by
// position, one per line as "file:line:col: message".
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

// diagnostics collects problems while a file is decoded and validated.
type diagnostics struct {
	file  string
	lines *lineMap
	diags []Diagnostic
}

// at records a problem at rng.
func (d *diagnostics) at(rng hcl.Range, format string, args ...any) {
	pos := d.lines.original(rng.Start)
	d.diags = append(d.diags, Diagnostic{File: d.file, Line: pos.Line, Column: pos.Column, Message: fmt.Sprintf(format, args...)})
}

// addHCL records HCL's own diagnostics (syntax, unknown keys, types).
func (d *diagnostics) addHCL(hd hcl.Diagnostics) {
	for _, h := range hd {
		if h.Severity != hcl.DiagError {
			continue
		}
		rng := hcl.Range{Start: hcl.Pos{Line: 1, Column: 1}}
		if h.Subject != nil {
			rng = *h.Subject
		}
		msg := strings.ToLower(h.Summary[:1]) + h.Summary[1:]
		if h.Detail != "" {
			msg += ": " + h.Detail
		}
		d.at(rng, "%s", msg)
	}
}

// err returns nil when nothing was recorded, else an *Error.
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

// attrRange is where attribute name's value sits in body, or the body's
// opening when the attribute is absent (a default was used).
func attrRange(body *hclsyntax.Body, name string) hcl.Range {
	if body == nil {
		return hcl.Range{Start: hcl.Pos{Line: 1, Column: 1}}
	}
	if a, ok := body.Attributes[name]; ok {
		return a.Expr.Range()
	}
	return body.SrcRange
}

// blockBody returns the body of the first block of type typ, or nil.
func blockBody(body *hclsyntax.Body, typ string) *hclsyntax.Body {
	for _, b := range blocks(body, typ) {
		return b.Body
	}
	return nil
}

// blocks returns the blocks of type typ in file order, which is also the
// order gohcl decodes them in.
func blocks(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	if body == nil {
		return nil
	}
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}
