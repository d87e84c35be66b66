package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/internal/kubetest"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// objects decodes a YAML stream as kubectl does (YAML to JSON, then
// unstructured objects), skipping empty documents.
func objects(t *testing.T, name string, b []byte) []*unstructured.Unstructured {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		js, err := utilyaml.ToJSON(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
			continue
		}
		obj, _, err := unstructured.UnstructuredJSONScheme.Decode(js, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		objs = append(objs, obj.(*unstructured.Unstructured))
	}
}

// apiServer creates unstructured objects through the dynamic client, the
// resource of each found by discovery.
type apiServer struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

// create creates obj with server-side field validation: with Strict, an
// unknown or duplicated field is an error, not a warning. dryRun runs
// admission and validation and stores nothing.
func (s *apiServer) create(ctx context.Context, obj *unstructured.Unstructured, dryRun bool, validation string) error {
	gvk := obj.GroupVersionKind()
	m, err := s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	r := s.dyn.Resource(m.Resource)
	var ri dynamic.ResourceInterface = r
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		// kubectl apply -f would put it in the current namespace.
		if obj.GetNamespace() == "" {
			return fmt.Errorf("%s %s: namespaced, but no metadata.namespace", gvk.Kind, obj.GetName())
		}
		ri = r.Namespace(obj.GetNamespace())
	}
	opts := metav1.CreateOptions{FieldValidation: validation}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := ri.Create(ctx, obj, opts); err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	return nil
}

// apply dry-runs every object, strictly validated, then creates them for
// real when dryRunOnly is false. A Namespace is created for real as soon as
// its dry run passes: the namespaced objects after it need it to exist even
// for a dry run. skip names kinds the API server cannot know.
func (s *apiServer) apply(t *testing.T, ctx context.Context, objs []*unstructured.Unstructured, dryRunOnly bool, skip ...string) {
	t.Helper()
	for _, o := range objs {
		if slices.Contains(skip, o.GetKind()) {
			continue
		}
		if err := s.create(ctx, o, true, metav1.FieldValidationStrict); err != nil {
			t.Fatalf("dry run: %v", err)
		}
		if o.GetKind() == "Namespace" {
			if err := s.create(ctx, o, false, metav1.FieldValidationStrict); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dryRunOnly {
		return
	}
	for _, o := range objs {
		if o.GetKind() == "Namespace" || slices.Contains(skip, o.GetKind()) {
			continue
		}
		if err := s.create(ctx, o, false, metav1.FieldValidationStrict); err != nil {
			t.Fatal(err)
		}
	}
}

// The manifests and the chart's renderings are what a real kube-apiserver
// (v1.34, internal/kubetest) accepts, field by field: every object is
// created with strict server-side field validation, first as a dry run,
// then for real, and read back.
func TestManifestsAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	ctx := kubetest.Context(t)
	dc, err := discovery.NewDiscoveryClientForConfig(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	api := &apiServer{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}

	b, err := os.ReadFile("manifests/kflcap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	manifests := objects(t, "manifests/kflcap.yaml", b)

	t.Run("manifests", func(t *testing.T) {
		api.apply(t, ctx, manifests, false)

		ds, err := c.AdminClient.AppsV1().DaemonSets("kflcap").Get(ctx, "kflcap", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sc := ds.Spec.Template.Spec.Containers[0].SecurityContext
		if sc == nil || sc.Capabilities == nil {
			t.Fatalf("DaemonSet read back without capabilities: %+v", sc)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Error("DaemonSet read back privileged")
		}
		want := []corev1.Capability{"BPF", "NET_ADMIN", "PERFMON", "SYS_RESOURCE"}
		if !slices.Equal(sc.Capabilities.Add, want) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("capabilities add %v drop %v, want add %v drop [ALL]", sc.Capabilities.Add, sc.Capabilities.Drop, want)
		}
		if !ds.Spec.Template.Spec.HostNetwork {
			t.Error("DaemonSet read back without hostNetwork")
		}

		// The ClusterRoleBinding gives the agent's service account what the
		// name resolver needs (docs/kubernetes.md), and nothing more.
		sa := "system:serviceaccount:kflcap:kflcap"
		for _, a := range []struct {
			verb, group, resource string
			allowed               bool
		}{
			{"list", "", "pods", true},
			{"watch", "", "services", true},
			{"watch", "discovery.k8s.io", "endpointslices", true},
			{"delete", "", "pods", false},
			{"get", "", "secrets", false},
		} {
			r, err := c.AdminClient.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{User: sa, ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: a.verb, Group: a.group, Resource: a.resource,
				}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Status.Allowed != a.allowed {
				t.Errorf("%s may %s %s/%s: %v, want %v", sa, a.verb, a.group, a.resource, r.Status.Allowed, a.allowed)
			}
		}
	})

	// A copy of the DaemonSet with one mistake must fail the same path: the
	// validation above can fail. Each copy has a fresh name, so that the
	// mistake is the only reason to reject it (the control shows it).
	t.Run("rejects", func(t *testing.T) {
		var base *unstructured.Unstructured
		for _, o := range manifests {
			if o.GetKind() == "DaemonSet" {
				base = o.DeepCopy()
			}
		}
		if base == nil {
			t.Fatal("no DaemonSet in manifests/kflcap.yaml")
		}
		base.SetName("kflcap-broken")
		if err := api.create(ctx, base, true, metav1.FieldValidationStrict); err != nil {
			t.Fatalf("control: the renamed DaemonSet: %v", err)
		}
		podSpec := func(o map[string]any) map[string]any {
			return get(o, "spec", "template", "spec").(map[string]any)
		}
		securityContext := func(o map[string]any) map[string]any {
			return get(podSpec(o)["containers"].([]any)[0], "securityContext").(map[string]any)
		}
		spec := func(o map[string]any) map[string]any { return o["spec"].(map[string]any) }
		for _, tc := range []struct {
			name  string
			in    func(map[string]any) map[string]any // the map to set key in
			key   string
			value any
			// unknown: only Strict catches it; Ignore drops the field.
			unknown bool
		}{
			{"misspelt pod field", podSpec, "hostNetwrok", true, true},
			{"misspelt container field", securityContext, "capabilites", map[string]any{"add": []any{"BPF"}}, true},
			{"wrong type", podSpec, "terminationGracePeriodSeconds", "thirty", false},
			{"invalid value", spec, "updateStrategy", map[string]any{"type": "Sometimes"}, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				o := base.DeepCopy()
				tc.in(o.Object)[tc.key] = tc.value
				err := api.create(ctx, o, true, metav1.FieldValidationStrict)
				if err == nil {
					t.Fatalf("accepted %s: %v", tc.key, tc.value)
				}
				if !apierrors.IsBadRequest(err) && !apierrors.IsInvalid(err) {
					t.Errorf("rejected, but not as a bad request or an invalid object: %v", err)
				}
				if !strings.Contains(err.Error(), tc.key) {
					t.Errorf("the error does not name %s: %v", tc.key, err)
				}
				t.Logf("rejected: %v", err)
				if tc.unknown {
					if err := api.create(ctx, o, true, metav1.FieldValidationIgnore); err != nil {
						t.Errorf("without strict validation: %v", err)
					}
				}
			})
		}
	})

	// Each rendering gets its own release and namespace, so that names of
	// cluster-scoped objects (ClusterRole, ClusterRoleBinding) do not clash
	// with those already created.
	t.Run("privileged", func(t *testing.T) {
		out, err := render(t, "kflcap-privileged", "securityContext.privileged=true", "namespace.create=true")
		if err != nil {
			t.Fatal(err)
		}
		api.apply(t, ctx, objects(t, "privileged", []byte(out)), false)
		ds, err := c.AdminClient.AppsV1().DaemonSets("kflcap-privileged").Get(ctx, "kflcap-privileged", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sc := ds.Spec.Template.Spec.Containers[0].SecurityContext
		if sc == nil || sc.Privileged == nil || !*sc.Privileged || sc.Capabilities != nil {
			t.Errorf("securityContext read back %+v, want privileged and no capabilities", sc)
		}
	})

	t.Run("serviceMonitor", func(t *testing.T) {
		out, err := render(t, "kflcap-monitored", "serviceMonitor.enabled=true", "namespace.create=true")
		if err != nil {
			t.Fatal(err)
		}
		objs := objects(t, "serviceMonitor", []byte(out))
		var kinds []string
		for _, o := range objs {
			kinds = append(kinds, o.GetKind())
		}
		if !slices.Contains(kinds, "Service") || !slices.Contains(kinds, "ServiceMonitor") {
			t.Fatalf("rendered %v", kinds)
		}
		// The ServiceMonitor CRD (Prometheus Operator) is not installed on
		// this API server: every object but the ServiceMonitor is validated
		// here; TestChartServiceMonitor checks what it selects.
		api.apply(t, ctx, objs, true, "ServiceMonitor")
	})

	// helm install as docs/kubernetes.md says, with the defaults: helm
	// stores the release in its namespace before creating anything, so
	// helm creates the namespace and the chart does not (with
	// namespace.create=true it fails either way: "namespaces not found",
	// or "already exists").
	t.Run("helm install", func(t *testing.T) {
		out, err := helm(t, "install", "kflcap-helm", chartDir, "--namespace", "kflcap-helm", "--create-namespace",
			"--kubeconfig", c.AdminKubeconfig)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if _, err := c.AdminClient.AppsV1().DaemonSets("kflcap-helm").Get(ctx, "kflcap-helm", metav1.GetOptions{}); err != nil {
			t.Error(err)
		}
	})
}
