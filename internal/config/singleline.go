package config

import (
	"bytes"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// HCL itself allows only one argument in a block written on one line, but
// drplane's documented shape is the compact
//
//	ports { grpc = 7400  raft = 7401  http = 7402 }
//
// expandSingleLineBlocks rewrites such blocks into one argument per line
// and returns a map that translates positions in the rewritten source back
// to the operator's file, so every message still names the line and column
// they wrote.
func expandSingleLineBlocks(src []byte, filename string) ([]byte, *lineMap) {
	tokens, _ := hclsyntax.LexConfig(src, filename, hcl.Pos{Line: 1, Column: 1, Byte: 0})
	splits := splitPoints(tokens)
	m := &lineMap{origins: []hcl.Pos{{Line: 1, Column: 1}}}
	if len(splits) == 0 {
		return src, nil
	}
	var out bytes.Buffer
	line, next := 1, 0
	for i, b := range src {
		if next < len(splits) && splits[next].Byte == i {
			out.WriteByte('\n')
			m.origins = append(m.origins, hcl.Pos{Line: splits[next].Line, Column: splits[next].Column})
			next++
		}
		out.WriteByte(b)
		if b == '\n' {
			line++
			m.origins = append(m.origins, hcl.Pos{Line: line, Column: 1})
		}
	}
	return out.Bytes(), m
}

// splitPoints finds where newlines must go so that no argument shares a
// line with a block's braces or with another argument: before each
// argument written on a brace's line or after another argument, and
// before a closing brace that follows an argument.
func splitPoints(tokens hclsyntax.Tokens) []hcl.Pos {
	type frame struct {
		block     bool // a block body, not an object constructor
		items     int  // arguments since the last newline, or on the brace line
		onOpen    bool // no newline since the opening brace
		exprDepth int  // open ( [ inside this frame
	}
	var stack []frame
	var out []hcl.Pos
	for i, tok := range tokens {
		top := len(stack) - 1
		switch tok.Type {
		case hclsyntax.TokenOBrace:
			stack = append(stack, frame{block: opensBlock(tokens, i), onOpen: true})
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

// opensBlock reports whether the brace at i opens a block body (after a
// block type or label) rather than an object constructor (after = , [ ().
func opensBlock(tokens hclsyntax.Tokens, i int) bool {
	if i == 0 {
		return false
	}
	switch tokens[i-1].Type {
	case hclsyntax.TokenIdent, hclsyntax.TokenCQuote:
		return true
	}
	return false
}

// lineMap translates positions in rewritten source to the original file.
type lineMap struct {
	// origins[n-1] is where rewritten line n starts in the original.
	origins []hcl.Pos
}

func (m *lineMap) original(p hcl.Pos) hcl.Pos {
	if m == nil || p.Line < 1 || p.Line > len(m.origins) {
		return p
	}
	o := m.origins[p.Line-1]
	return hcl.Pos{Line: o.Line, Column: o.Column + p.Column - 1, Byte: p.Byte}
}
