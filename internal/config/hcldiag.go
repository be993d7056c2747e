package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/drplane/drplane/internal/hclpos"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// decodeFile parses src as the file filename and decodes it into raw, a
// pointer to a struct with hcl tags. Syntax errors, unknown keys, values of
// the wrong type and missing required keys are all recorded in the
// returned diagnostics; body is nil when the file could not be parsed.
func decodeFile(src []byte, filename string, raw any) (*hclsyntax.Body, *diagnostics) {
	src, lines := hclpos.ExpandSingleLineBlocks(src, filename)
	d := &diagnostics{file: filename, lines: lines}
	file, hd := hclparse.NewParser().ParseHCL(src, filename)
	if hd.HasErrors() {
		d.addHCL(hclpos.FirstErrors(hd))
		return nil, d
	}
	d.body = file.Body.(*hclsyntax.Body)
	d.addHCL(gohcl.DecodeBody(file.Body, nil, raw))
	return d.body, d
}

// addHCL records HCL's own diagnostics (syntax, unknown keys, types),
// rephrased in drplane's words where HCL's are about HCL.
func (d *diagnostics) addHCL(hd hcl.Diagnostics) {
	for _, h := range hd {
		if h.Severity != hcl.DiagError {
			continue
		}
		rng := fileStart(nil)
		if h.Subject != nil {
			rng = *h.Subject
		}
		rng, key, msg := d.rephrase(h, rng)
		d.record(rng, key, msg)
	}
}

var (
	unknownArgRe   = regexp.MustCompile(`^An argument named "([^"]*)" is not expected here\.\s*(.*)$`)
	unknownBlockRe = regexp.MustCompile(`^Blocks of type "([^"]*)" are not expected here\.\s*(.*)$`)
	missingArgRe   = regexp.MustCompile(`^The argument "([^"]*)" is required`)
	duplicateRe    = regexp.MustCompile(`^Duplicate (\S+) block$`)
	redefinedRe    = regexp.MustCompile(`^The argument "([^"]*)" was already set`)
	missingLabelRe = regexp.MustCompile(`^Missing (\S+) for (\S+)$`)
)

// rephrase turns one HCL diagnostic into a position, the key it concerns
// (when known) and a message.
func (d *diagnostics) rephrase(h *hcl.Diagnostic, rng hcl.Range) (hcl.Range, string, string) {
	switch {
	case h.Summary == "Unsupported argument" && unknownArgRe.MatchString(h.Detail):
		m := unknownArgRe.FindStringSubmatch(h.Detail)
		return rng, m[1], fmt.Sprintf("unknown key %q%s", m[1], suggestion(m[2]))
	case h.Summary == "Unsupported block type" && unknownBlockRe.MatchString(h.Detail):
		m := unknownBlockRe.FindStringSubmatch(h.Detail)
		return rng, m[1], fmt.Sprintf("unknown block %q%s", m[1], suggestion(m[2]))
	case h.Summary == "Missing required argument" && missingArgRe.MatchString(h.Detail):
		return d.missingKey(rng, missingArgRe.FindStringSubmatch(h.Detail)[1])
	case h.Summary == "Unsuitable value type":
		return d.wrongType(rng, strings.TrimPrefix(h.Detail, "Unsuitable value: "))
	case duplicateRe.MatchString(h.Summary):
		typ := duplicateRe.FindStringSubmatch(h.Summary)[1]
		return rng, typ, fmt.Sprintf("duplicate %s block; only one is allowed", typ)
	case h.Summary == "Attribute redefined" && redefinedRe.MatchString(h.Detail):
		name := redefinedRe.FindStringSubmatch(h.Detail)[1]
		return rng, name, fmt.Sprintf("key %q is set twice; each key may be set only once", name)
	case missingLabelRe.MatchString(h.Summary):
		m := missingLabelRe.FindStringSubmatch(h.Summary)
		return rng, m[2], fmt.Sprintf("%s block: missing its %s label, e.g. %s \"name\" { ... }", m[2], m[1], m[2])
	}
	msg := lowerFirst(h.Summary)
	if h.Detail != "" {
		msg += ": " + lowerFirst(strings.TrimSuffix(h.Detail, "."))
	}
	return rng, "", msg
}

// suggestion turns HCL's "Did you mean ...?" into "; did you mean ...?".
func suggestion(detail string) string {
	if detail == "" {
		return ""
	}
	return "; " + lowerFirst(detail)
}

// missingKey reports a required key that is absent, at the start of the
// block that should hold it (HCL points at the block's opening brace) or,
// for a top-level key, at the file's start.
func (d *diagnostics) missingKey(rng hcl.Range, name string) (hcl.Range, string, string) {
	if b := blockOpenedAt(d.body, rng.Start); b != nil {
		return b.DefRange(), b.Type + "." + name, fmt.Sprintf("%s block: missing required key %q", b.Type, name)
	}
	return rng, name, fmt.Sprintf("missing required key %q", name)
}

// wrongType reports a value of the wrong type; why is HCL's reason, such
// as "a number is required".
func (d *diagnostics) wrongType(rng hcl.Range, why string) (hcl.Range, string, string) {
	if key, attr, ok := attrAt(d.body, rng.Start); ok {
		return attr, key, fmt.Sprintf("%s: wrong type: %s", key, why)
	}
	return rng, "", "wrong type: " + why
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
