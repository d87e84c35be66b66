package kfl

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// jsonStep is one step of a path into a JSON body.
type jsonStep struct {
	key     string
	index   int
	isIndex bool
	star    bool
}

// jsonWalk reports whether pred holds for any value that path selects in
// the JSON document data. It scans data in place rather than decoding it, so
// that a query on a body allocates nothing unless a selected string holds
// escapes. Malformed or truncated documents (bodies are bounded previews)
// simply select nothing past the damage.
func jsonWalk(data []byte, path []jsonStep, pred func(value) bool) bool {
	w := jsonScanner{data: data}
	w.space()
	found, _ := w.walk(path, pred, 0)
	return found
}

type jsonScanner struct {
	data []byte
	i    int
}

const maxJSONDepth = 64

func (w *jsonScanner) space() {
	for w.i < len(w.data) {
		switch w.data[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

// walk is at the start of a value. It consumes the value and reports
// whether pred matched (ok false: the document is malformed, stop).
func (w *jsonScanner) walk(path []jsonStep, pred func(value) bool, depth int) (found, ok bool) {
	if depth > maxJSONDepth || w.i >= len(w.data) {
		return false, false
	}
	if len(path) == 0 {
		v, ok := w.scalar()
		if !ok {
			return false, false
		}
		return pred(v), true
	}
	step := path[0]
	switch w.data[w.i] {
	case '{':
		w.i++
		for {
			w.space()
			if w.i < len(w.data) && w.data[w.i] == '}' {
				w.i++
				return false, true
			}
			k, ok := w.str()
			if !ok {
				return false, false
			}
			w.space()
			if w.i >= len(w.data) || w.data[w.i] != ':' {
				return false, false
			}
			w.i++
			w.space()
			if pred != nil && !step.isIndex && (step.star || k.s == step.key) {
				f, ok := w.walk(path[1:], pred, depth+1)
				if f || !ok {
					return f, ok
				}
			} else if !w.skip(depth + 1) {
				return false, false
			}
			w.space()
			if w.i < len(w.data) && w.data[w.i] == ',' {
				w.i++
				continue
			}
			if w.i < len(w.data) && w.data[w.i] == '}' {
				w.i++
				return false, true
			}
			return false, false
		}
	case '[':
		w.i++
		for n := 0; ; n++ {
			w.space()
			if w.i < len(w.data) && w.data[w.i] == ']' {
				w.i++
				return false, true
			}
			if pred != nil && (step.star || (step.isIndex && step.index == n)) {
				f, ok := w.walk(path[1:], pred, depth+1)
				if f || !ok {
					return f, ok
				}
			} else if !w.skip(depth + 1) {
				return false, false
			}
			w.space()
			if w.i < len(w.data) && w.data[w.i] == ',' {
				w.i++
				continue
			}
			if w.i < len(w.data) && w.data[w.i] == ']' {
				w.i++
				return false, true
			}
			return false, false
		}
	}
	// A scalar where the path wants to go deeper: nothing selected.
	return false, w.skip(depth)
}

// skip consumes one value.
func (w *jsonScanner) skip(depth int) bool {
	if depth > maxJSONDepth || w.i >= len(w.data) {
		return false
	}
	switch w.data[w.i] {
	case '{', '[':
		f, ok := w.walk(neverPath, nil, depth)
		return !f && ok
	}
	_, ok := w.scalar()
	return ok
}

func (w *jsonScanner) str() (value, bool) {
	if w.i >= len(w.data) || w.data[w.i] != '"' {
		return value{}, false
	}
	start := w.i
	w.i++
	escaped := false
	for w.i < len(w.data) {
		switch w.data[w.i] {
		case '\\':
			escaped = true
			w.i += 2
			continue
		case '"':
			w.i++
			raw := w.data[start+1 : w.i-1]
			// Escapes and invalid UTF-8 (which JSON decoders replace with
			// U+FFFD) need decoding; plain strings are viewed in place.
			if !escaped && utf8.Valid(raw) {
				return value{s: bytesString(raw), k: KindString}, true
			}
			var s string
			if json.Unmarshal(w.data[start:w.i], &s) != nil {
				return value{}, false
			}
			return value{s: s, k: KindString}, true
		}
		w.i++
	}
	return value{}, false
}

func (w *jsonScanner) scalar() (value, bool) {
	if w.i >= len(w.data) {
		return value{}, false
	}
	switch c := w.data[w.i]; {
	case c == '"':
		return w.str()
	case c == '{' || c == '[':
		start := w.i
		if !w.skip(0) {
			return value{}, false
		}
		return value{b: w.data[start:w.i], k: KindJSON}, true
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if len(w.data)-w.i >= len(lit) && string(w.data[w.i:w.i+len(lit)]) == lit {
				w.i += len(lit)
				switch lit {
				case "null":
					return value{k: KindNil}, true
				default:
					return value{t: lit == "true", k: KindBool}, true
				}
			}
		}
		return value{}, false
	default:
		start := w.i
		for w.i < len(w.data) {
			c := w.data[w.i]
			if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
				w.i++
				continue
			}
			break
		}
		f, err := strconv.ParseFloat(bytesString(w.data[start:w.i]), 64)
		if err != nil {
			return value{}, false
		}
		return value{f: f, k: KindFloat}, true
	}
}

// neverPath with a nil predicate selects nothing: walking it consumes
// (skips) a container.
var neverPath = []jsonStep{{}}

// bytesString views b as a string without copying. Bodies are read-only once
// an entry is made (see dissect.Entry) and predicates do not keep the
// strings they are given, so the view never outlives or sees a change to b.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
