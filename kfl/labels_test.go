package kfl

import (
	"testing"

	"github.com/kflcap/kflcap/dissect"
)

// Kubernetes labels are a map slot on each side: by key, by dotted or
// slashed key, any value, and missing when the side has none.
func TestLabels(t *testing.T) {
	web := &dissect.Entry{
		Src: ep("10.0.0.5", 43512, "client-1", "front"),
		Dst: ep("10.0.0.7", 8080, "web-1", "shop"),
	}
	web.Dst.Labels = map[string]string{"app": "web", "app.kubernetes.io/name": "shop-web", "tier": "frontend"}
	bare := &dissect.Entry{Src: ep("10.0.0.5", 43512, "", ""), Dst: ep("192.0.2.1", 80, "", "")}
	for _, tc := range []struct {
		q         string
		web, bare bool
	}{
		{`dst.labels.app == "web"`, true, false},
		{`dst.labels["app"] == "web"`, true, false},
		{`dst.labels["app.kubernetes.io/name"] == "shop-web"`, true, false},
		{`dst.labels.app == "db"`, false, false},
		{`dst.labels.app != nil`, true, false},
		{`dst.labels.app == nil`, false, true},
		{`dst.labels[*] == "frontend"`, true, false},
		{`src.labels.app == "web"`, false, false},
		{`src.labels.app == nil and dst.namespace == "shop"`, true, false},
		{`dst.labels.tier.startsWith("front")`, true, false},
	} {
		q, err := Compile(tc.q)
		if err != nil {
			t.Errorf("%s: %v", tc.q, err)
			continue
		}
		if got := q.Match(web); got != tc.web {
			t.Errorf("%s on the labelled entry: %v, want %v", tc.q, got, tc.web)
		}
		if got := q.Match(bare); got != tc.bare {
			t.Errorf("%s on the unlabelled entry: %v, want %v", tc.q, got, tc.bare)
		}
	}
}
