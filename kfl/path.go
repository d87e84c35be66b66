package kfl

import (
	"sort"
	"strconv"
	"strings"

	"github.com/kflcap/kflcap/dissect"
)

// seg is one step of a selector: .name, .*, [expr], [*] or .json().
type seg struct {
	name string
	star bool
	idx  node
	json bool
	at   int
}

func (c *compiler) flatten(n node) (*ident, []seg, *Error) {
	switch x := n.(type) {
	case *ident:
		return x, nil, nil
	case *paren:
		return c.flatten(x.x)
	case *selector:
		root, segs, err := c.flatten(x.x)
		if err != nil {
			return nil, nil, err
		}
		return root, append(segs, seg{name: x.name, star: x.star, at: x.at}), nil
	case *index:
		root, segs, err := c.flatten(x.x)
		if err != nil {
			return nil, nil, err
		}
		return root, append(segs, seg{idx: x.idx, star: x.star, at: x.at}), nil
	case *call:
		if f, ok := x.fun.(*selector); ok && f.name == "json" {
			if len(x.args) != 0 {
				return nil, nil, c.errAt(f.at, ".json() takes no arguments")
			}
			root, segs, err := c.flatten(f.x)
			if err != nil {
				return nil, nil, err
			}
			return root, append(segs, seg{json: true, at: f.at}), nil
		}
		return nil, nil, c.errAt(x.at, "a helper's result has no fields")
	}
	return nil, nil, c.errAt(startPos(n), "expected a field, found %s", format(n, false))
}

// path resolves a selector against the schema.
func (c *compiler) path(n node) (*operand, *Error) {
	root, segs, err := c.flatten(n)
	if err != nil {
		return nil, err
	}
	canon := root.name
	shown := root.name // the user's path, normalized, for explain
	slot := byte(0)    // '[' list index, '{' map key, '*' wildcard
	var idx int
	var key string
	i := 0
	for ; i < len(segs); i++ {
		s := segs[i]
		if s.json {
			break
		}
		isList := fields[canon+"[]"] != nil || fieldPrefix[canon+"[]"]
		isMap := fields[canon+"{}"] != nil
		switch {
		case (isList || isMap) && slot == 0:
			switch {
			case s.star:
				slot = '*'
				shown += "[*]"
			case s.idx != nil:
				o, err := c.operand(s.idx)
				if err != nil {
					return nil, err
				}
				switch {
				case isList && o.konst && o.kind == KindInt:
					slot, idx = '[', int(o.c.n)
					if o.c.n > 1<<30 || o.c.n < -(1<<30) {
						return nil, c.errAt(s.at, "index %d is out of range", o.c.n)
					}
					shown += "[" + strconv.Itoa(idx) + "]"
				case isMap && o.konst && o.kind == KindString:
					slot, key = '{', o.c.s
					shown += "[" + strconv.Quote(key) + "]"
				case isList:
					return nil, c.errAt(o.at, "%s is a list: index it with an integer constant or [*]", shown)
				default:
					return nil, c.errAt(o.at, "%s is a map: index it with a string constant or [*]", shown)
				}
			case isMap:
				slot, key = '{', s.name
				shown += "[" + strconv.Quote(key) + "]"
			default:
				return nil, c.errAt(s.at, "%s is a list: write %s[0].%s or %s[*].%s", shown, shown, s.name, shown, s.name)
			}
			if isList {
				canon += "[]"
			} else {
				canon += "{}"
			}
		case s.star || s.idx != nil:
			return nil, c.errAt(s.at, "%s is not a list or a map", shown)
		default:
			canon += "." + s.name
			shown += "." + s.name
		}
	}
	f := fields[canon]
	if f == nil {
		return nil, c.unknownField(root, canon, shown)
	}
	if slot == 0 && (f.n != nil || f.key != nil) {
		if f.n != nil {
			return nil, c.errAt(root.at, "%s is a list: index it, e.g. %s[0] or %s[*]", shown, shown, shown)
		}
		return nil, c.errAt(root.at, "%s is a map: look a key up, e.g. %s[\"name\"], or use [*]", shown, shown)
	}
	o := &operand{kind: f.kind, field: shown, at: root.at, mapVal: f.key != nil}
	switch {
	case f.get != nil:
		o.one = f.get
		o.str, o.num, o.ip = f.getStr, f.getInt, f.getIP
	case f.n != nil && slot == '[':
		n, elem, j := f.n, f.elem, idx
		o.one = func(e *dissect.Entry) (value, bool) {
			l := n(e)
			k := j
			if k < 0 { // negative indexes count from the end
				k += l
			}
			if k < 0 || k >= l {
				return value{}, false
			}
			return elem(e, k), true
		}
	case f.n != nil:
		n, elem := f.n, f.elem
		o.each = func(e *dissect.Entry, pred func(value) bool) bool {
			l := n(e)
			for k := 0; k < l; k++ {
				if pred(elem(e, k)) {
					return true
				}
			}
			return false
		}
	case slot == '{':
		get, k := f.key, key
		o.one = func(e *dissect.Entry) (value, bool) { return get(e, k) }
		if ks := f.keyStr; ks != nil {
			o.str = func(e *dissect.Entry) (string, bool) { return ks(e, k) }
		}
	default:
		o.each = f.each
	}
	c.use(shown, f.kind.String())
	if i == len(segs) {
		return o, nil
	}
	// .json() and a path into the body.
	if o.kind != KindBytes || o.each != nil {
		return nil, c.errAt(segs[i].at, ".json() applies to bodies (request.body, response.body), and %s is %s", shown, o.kind)
	}
	var jp []jsonStep
	shown += ".json()"
	for _, s := range segs[i+1:] {
		switch {
		case s.json:
			return nil, c.errAt(s.at, ".json() applies once, to a body")
		case s.star:
			jp = append(jp, jsonStep{star: true})
			shown += "[*]"
		case s.idx != nil:
			io, err := c.operand(s.idx)
			if err != nil {
				return nil, err
			}
			switch {
			case io.konst && io.kind == KindInt && io.c.n >= 0 && io.c.n < 1<<30:
				jp = append(jp, jsonStep{index: int(io.c.n), isIndex: true})
				shown += "[" + strconv.Itoa(int(io.c.n)) + "]"
			case io.konst && io.kind == KindString:
				jp = append(jp, jsonStep{key: io.c.s})
				shown += "[" + strconv.Quote(io.c.s) + "]"
			default:
				return nil, c.errAt(io.at, "JSON paths take non-negative integer or string constants")
			}
		default:
			jp = append(jp, jsonStep{key: s.name})
			shown += "." + s.name
		}
	}
	body := o.one
	c.use(shown, KindJSON.String())
	return &operand{kind: KindJSON, field: shown, at: root.at, each: func(e *dissect.Entry, pred func(value) bool) bool {
		v, ok := body(e)
		return ok && jsonWalk(v.b, jp, pred)
	}}, nil
}

func (c *compiler) unknownField(root *ident, canon, shown string) *Error {
	err := c.unknownFieldMsg(root, canon, shown)
	err.notKFL = c.inMacro == ""
	return err
}

func (c *compiler) unknownFieldMsg(root *ident, canon, shown string) *Error {
	if fieldPrefix[canon] {
		var subs []string
		for _, p := range fieldOrder {
			if strings.HasPrefix(p, canon+".") || strings.HasPrefix(p, canon+"[") || strings.HasPrefix(p, canon+"{") {
				subs = append(subs, displayPath(p))
			}
		}
		if len(subs) > 6 {
			subs = append(subs[:6], "…")
		}
		return c.errAt(root.at, "%s is not a complete field: use one of %s", shown, strings.Join(subs, ", "))
	}
	if v := celVarIndex[shown]; v != nil && v.kfl != shown {
		return c.errAt(root.at, "unknown field %q: that is a KFL2 (CEL) variable; in KFL write %s, or use && and || for CEL", shown, v.kfl)
	}
	if canon == root.name {
		if s := suggest(canon, c.barewords()); s != "" {
			return c.errAt(root.at, "unknown field or protocol %q (did you mean %q?)", shown, s)
		}
		return c.errAt(root.at, "unknown field or protocol %q", shown)
	}
	cands := make([]string, 0, len(fieldOrder))
	for _, p := range fieldOrder {
		cands = append(cands, strings.NewReplacer("[]", "", "{}", "").Replace(p))
	}
	plain := strings.NewReplacer("[]", "", "{}", "").Replace(canon)
	if s := suggest(plain, cands); s != "" {
		// Show the suggestion in the user's notation when they differ only by name.
		return c.errAt(root.at, "unknown field %q (did you mean %q?)", shown, s)
	}
	return c.errAt(root.at, "unknown field %q", shown)
}

func (c *compiler) barewords() []string {
	out := append([]string{}, protocolWords...)
	for m := range c.opts.macros {
		out = append(out, m)
	}
	for _, p := range fieldOrder {
		if !strings.ContainsAny(p, ".[{") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
