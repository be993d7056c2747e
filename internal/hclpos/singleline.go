package hclpos

import (
	"bytes"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// HCL allows one argument only in a block written on one line, but the
// documented shape is the compact
//
//	objectives { rto = "15m"  rpo = "5m" }
//
// expandSingleLineBlocks rewrites such blocks into one argument per line
// and returns a map from positions in the rewritten source back to the
// operator's file.

func ExpandSingleLineBlocks(src []byte, filename string) ([]byte, *LineMap) {
	tokens, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	splits := splitPoints(tokens)
	if len(splits) == 0 {
		return src, nil
	}
	m := &LineMap{origins: []hcl.Pos{{Line: 1, Column: 1, Byte: 0}}}
	var out bytes.Buffer
	line, next := 1, 0
	for i, b := range src {
		if next < len(splits) && splits[next].Byte == i {
			out.WriteByte('\n')
			m.origins = append(m.origins, splits[next])
			m.starts = append(m.starts, out.Len())
			next++
		}
		out.WriteByte(b)
		if b == '\n' {
			line++
			m.origins = append(m.origins, hcl.Pos{Line: line, Column: 1, Byte: i + 1})
			m.starts = append(m.starts, out.Len())
		}
	}
	return out.Bytes(), m
}

// splitPoints finds where newlines must go so that no argument shares a
// line with a block's braces or with another argument.
func splitPoints(tokens hclsyntax.Tokens) []hcl.Pos {
	type frame struct {
		block     bool // a block body, not an object constructor
		items     int  // arguments on the current line
		onOpen    bool // no newline since the opening brace
		exprDepth int  // open ( [ inside this frame
	}
	var stack []frame
	var out []hcl.Pos
	for i, tok := range tokens {
		top := len(stack) - 1
		switch tok.Type {
		case hclsyntax.TokenOBrace:
			opens := i > 0 && (tokens[i-1].Type == hclsyntax.TokenIdent || tokens[i-1].Type == hclsyntax.TokenCQuote)
			stack = append(stack, frame{block: opens, onOpen: true})
		case hclsyntax.TokenCBrace:
			if top < 0 {
				continue
			}
			if stack[top].block && stack[top].items > 0 {
				out = append(out, tok.Range.Start)
			}
			stack = stack[:top]
		case hclsyntax.TokenOBrack, hclsyntax.TokenOParen:
			if top >= 0 {
				stack[top].exprDepth++
			}
		case hclsyntax.TokenCBrack, hclsyntax.TokenCParen:
			if top >= 0 && stack[top].exprDepth > 0 {
				stack[top].exprDepth--
			}
		case hclsyntax.TokenNewline:
			if top >= 0 {
				stack[top].items, stack[top].onOpen = 0, false
			}
		case hclsyntax.TokenIdent:
			if top < 0 || !stack[top].block || stack[top].exprDepth > 0 || i+1 >= len(tokens) || tokens[i+1].Type != hclsyntax.TokenEqual {
				continue
			}
			if stack[top].onOpen || stack[top].items > 0 {
				out = append(out, tok.Range.Start)
			}
			stack[top].items++
		}
	}
	return out
}

// LineMap translates positions in rewritten source to the original file.
type LineMap struct {
	// origins[n-1] is where rewritten line n starts in the original;
	// starts[n-1] is its byte offset in the rewritten source.
	origins []hcl.Pos
	starts  []int
}

// Original maps p; a nil map is the identity.
func (m *LineMap) Original(p hcl.Pos) hcl.Pos {
	if m == nil || p.Line < 1 || p.Line > len(m.origins) {
		return p
	}
	o := m.origins[p.Line-1]
	start := 0
	if p.Line > 1 {
		start = m.starts[p.Line-2]
	}
	return hcl.Pos{Line: o.Line, Column: o.Column + p.Column - 1, Byte: o.Byte + p.Byte - start}
}

// OriginalRange maps both ends of r.
func (m *LineMap) OriginalRange(r hcl.Range) hcl.Range {
	r.Start, r.End = m.Original(r.Start), m.Original(r.End)
	return r
}
