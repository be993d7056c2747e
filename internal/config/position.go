package config

import (
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// This file finds where things are in a parsed file, so that problems found
// after decoding can still name a line and column. Nothing here is specific
// to one kind of configuration file.

// fileStart is the range of a file's first character, where problems that
// concern the file as a whole are reported.
func fileStart(body *hclsyntax.Body) hcl.Range {
	if body == nil {
		return hcl.Range{Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 1}}
	}
	return body.MissingItemRange()
}

// attrRange is where attribute name's value sits in body, or the body's
// opening when the attribute is absent (a default was used).
func attrRange(body *hclsyntax.Body, name string) hcl.Range {
	if body == nil {
		return fileStart(nil)
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
	if body == nil {
		return nil
	}
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// keyRange is where key is written in body. A key is a dotted path of
// names, each optionally indexed:
//
//	failover.lease_ttl   attribute lease_ttl of the failover block
//	site[1].active       attribute active of the second site block
//	site[1]              the second site block itself
//	retry_join[2]        the third element of the retry_join list
//
//	site[1].label        the name label of the second site block
//
// When the key is absent (a default was used, or a block is missing) the
// range is that of the nearest enclosing block that is present, or the
// start of the file.
func keyRange(body *hclsyntax.Body, key string) hcl.Range {
	rng := fileStart(body)
	var block *hclsyntax.Block
	segs := strings.Split(key, ".")
	for i, seg := range segs {
		name, idx, indexed := splitIndex(seg)
		if i == len(segs)-1 {
			if r, ok := attrOrElement(body, name, idx, indexed); ok {
				return r
			}
			if name == labelKey && block != nil && len(block.LabelRanges) > 0 {
				return block.LabelRanges[0]
			}
		}
		bs := blocks(body, name)
		if idx >= len(bs) {
			return rng
		}
		block = bs[idx]
		rng, body = block.DefRange(), block.Body
	}
	return rng
}

// labelKey is the last segment of a key that names a block's label
// rather than one of its attributes (no block has an attribute of that
// name).
const labelKey = "label"

// attrOrElement is the range of attribute name's value in body, or of its
// idx'th element when indexed and the value is a list.
func attrOrElement(body *hclsyntax.Body, name string, idx int, indexed bool) (hcl.Range, bool) {
	a, ok := body.Attributes[name]
	if !ok {
		return hcl.Range{}, false
	}
	if !indexed {
		return a.Expr.Range(), true
	}
	tuple, ok := a.Expr.(*hclsyntax.TupleConsExpr)
	if !ok {
		return hcl.Range{}, false
	}
	if idx >= len(tuple.Exprs) {
		return a.Expr.Range(), true
	}
	return tuple.Exprs[idx].Range(), true
}

// mapKeyRange is where key is written in the map that attribute name of
// body holds ({ MODE = "live" }), or the attribute's value when the key
// is not found there.
func mapKeyRange(body *hclsyntax.Body, name, key string) hcl.Range {
	a, ok := body.Attributes[name]
	if !ok {
		return attrRange(body, name)
	}
	obj, ok := a.Expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return a.Expr.Range()
	}
	for _, item := range obj.Items {
		var k string
		if diags := gohcl.DecodeExpression(item.KeyExpr, nil, &k); !diags.HasErrors() && k == key {
			return item.KeyExpr.Range()
		}
	}
	return a.Expr.Range()
}

// splitIndex splits "name[3]" into "name", 3, true and "name" into
// "name", 0, false.
func splitIndex(seg string) (string, int, bool) {
	open := strings.IndexByte(seg, '[')
	if open < 0 || !strings.HasSuffix(seg, "]") {
		return seg, 0, false
	}
	idx, err := strconv.Atoi(seg[open+1 : len(seg)-1])
	if err != nil || idx < 0 {
		return seg, 0, false
	}
	return seg[:open], idx, true
}

// attrAt finds the attribute whose value starts at pos, searching body and
// every block in it. It returns the attribute's dotted key, such as
// "failover.lease_ttl", and the range of its whole value.
func attrAt(body *hclsyntax.Body, pos hcl.Pos) (string, hcl.Range, bool) {
	if body == nil {
		return "", hcl.Range{}, false
	}
	for name, a := range body.Attributes {
		if a.Expr.StartRange().Start.Byte == pos.Byte {
			return name, a.Expr.Range(), true
		}
	}
	for _, b := range body.Blocks {
		if !b.Body.SrcRange.ContainsPos(pos) {
			continue
		}
		if name, rng, ok := attrAt(b.Body, pos); ok {
			return b.Type + "." + name, rng, true
		}
	}
	return "", hcl.Range{}, false
}

// blockOpenedAt returns the block whose body opens at pos, or nil when pos
// is not the opening of any block's body.
func blockOpenedAt(body *hclsyntax.Body, pos hcl.Pos) *hclsyntax.Block {
	if body == nil {
		return nil
	}
	for _, b := range body.Blocks {
		if b.Body.SrcRange.Start.Byte == pos.Byte {
			return b
		}
		if b.Body.SrcRange.ContainsPos(pos) {
			return blockOpenedAt(b.Body, pos)
		}
	}
	return nil
}
