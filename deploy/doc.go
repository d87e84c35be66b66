// Package deploy holds kflcap's deployment files: the Dockerfile, plain
// manifests for the DaemonSet (manifests/), and a Falco http_output
// example. Its test checks the manifests against the agent's own
// configuration loader, so the two cannot drift apart.
package deploy
