// Package deploy holds kflcap's deployment files: the Dockerfile, the Helm
// chart (chart/kflcap), the plain manifests for the DaemonSet
// (manifests/kflcap.yaml), a Falco http_output example
// (manifests/falco-http-output.yaml) and a Grafana dashboard.
//
// The chart is the source: manifests/kflcap.yaml is its rendering with the
// default values and namespace.create=true (the plain manifests create their
// Namespace; helm install --create-namespace does it for a release), byte
// for byte. After editing the chart, regenerate it with
//
//	make manifests
//
// which runs, with the helm that scripts/helm.sh builds,
//
//	helm template kflcap deploy/chart/kflcap --namespace kflcap --set namespace.create=true >deploy/manifests/kflcap.yaml
//
// The tests check that the two agree, that helm lint --strict passes, that
// values reach the objects (privileged fallback, ServiceMonitor, ports) and
// that values.schema.json rejects bad ones, that the ConfigMap is a valid
// agent configuration, and that a real kube-apiserver (internal/kubetest)
// accepts every object with strict server-side field validation, dry run
// first, then for real, and that the Dockerfile's build step, run as
// written, makes a static binary the DaemonSet can start. The helm and API server tests need the binaries
// scripts/ builds (make servers); without them they are skipped, except on
// CI (CI=true), and -short skips them.
package deploy
