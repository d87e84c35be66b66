package kfl

import (
	"os"
	"strings"
	"testing"
)

// TestDocsListEveryField keeps docs/kfl.md in step with the schema.
func TestDocsListEveryField(t *testing.T) {
	b, err := os.ReadFile("../docs/kfl.md")
	if err != nil {
		t.Skipf("no docs: %v", err)
	}
	doc := string(b)
	for _, f := range Fields() {
		if !strings.Contains(doc, "`"+f.Path+"`") {
			t.Errorf("docs/kfl.md does not list the field %s", f.Path)
		}
	}
	for _, v := range CELVariables() {
		if !strings.Contains(doc, "`"+v.Name+"`") {
			t.Errorf("docs/kfl.md does not list the CEL variable %s", v.Name)
		}
	}
	for _, w := range append(append([]string{}, protocolWords...), methodNames...) {
		if !strings.Contains(doc, w) {
			t.Errorf("docs/kfl.md does not mention %s", w)
		}
	}
}
