package kfl

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Redacted replaces the values that redact(…) masks.
const Redacted = "[REDACTED]"

// Redact masks, in place, the fields named by the query's redact(…) in m,
// the JSON object form of an entry (what `read --json` prints). Paths are
// dotted ("request.headers.Authorization", "response.body.password"); keys
// match case-insensitively, a "*" segment matches every key or element, and
// a path into a body held as a JSON string is followed into that JSON. It
// reports whether anything was masked. Safe for concurrent use with
// different maps.
func (q *Query) Redact(m map[string]any) bool {
	done := false
	for _, p := range q.redact {
		// "response.body.json().password" names the same thing as
		// "response.body.password": bodies are followed into their JSON.
		var segs []string
		for _, s := range strings.Split(p, ".") {
			if s != "json()" && s != "" {
				segs = append(segs, s)
			}
		}
		if redactPath(m, segs) {
			done = true
		}
	}
	return done
}

// RedactJSON is Redact on an encoded entry; it returns data unchanged when
// the query redacts nothing.
func (q *Query) RedactJSON(data []byte) ([]byte, error) {
	if len(q.redact) == 0 {
		return data, nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if !q.Redact(m) {
		return data, nil
	}
	return json.Marshal(m)
}

func redactPath(v any, path []string) bool {
	if len(path) == 0 {
		return false
	}
	last := len(path) == 1
	switch x := v.(type) {
	case map[string]any:
		done := false
		for k, child := range x {
			if path[0] != "*" && !strings.EqualFold(k, path[0]) {
				continue
			}
			if last {
				x[k] = Redacted
				done = true
				continue
			}
			if s, ok := child.(string); ok { // a body: follow the path into its JSON
				var inner any
				if json.Unmarshal([]byte(s), &inner) == nil && redactPath(inner, path[1:]) {
					if b, err := json.Marshal(inner); err == nil {
						x[k] = string(b)
						done = true
					}
				}
				continue
			}
			if redactPath(child, path[1:]) {
				done = true
			}
		}
		return done
	case map[string]string:
		done := false
		for k := range x {
			if last && (path[0] == "*" || strings.EqualFold(k, path[0])) {
				x[k] = Redacted
				done = true
			}
		}
		return done
	case []any:
		done := false
		for i, child := range x {
			if path[0] == "*" || path[0] == strconv.Itoa(i) {
				if last {
					x[i] = Redacted
					done = true
				} else if redactPath(child, path[1:]) {
					done = true
				}
			} else if path[0] != "*" && !isDigits(path[0]) && redactPath(child, path) {
				// "response.answers.ip" reaches into every element.
				done = true
			}
		}
		return done
	}
	return false
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
