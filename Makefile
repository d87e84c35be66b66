# kflcap — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
BIN := bin/kflcap
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: help deps servers manifests generate check-generate build test test-short bench lint run clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

deps: ## install the Debian tools the tests need (when missing)
	@bash scripts/deps.sh test

generate: ## rebuild the BPF objects (bpf/*_bpfel.go/.o) with bpf2go
	@bash scripts/deps.sh generate
	$(GO) generate ./bpf/

check-generate: generate ## fail when the committed BPF objects differ from a rebuild
	@git diff --exit-code --stat -- bpf/ || { echo "bpf/: generated objects are stale: run make generate and commit" >&2; exit 1; }

build: ## build bin/kflcap
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kflcap

test: deps servers ## run every test (as root: attach tests need CAP_BPF and netns)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 60m ./...

servers: ## build the MinIO, kube-apiserver, etcd and helm the tests run (once, cached in ~/.cache/kflcap)
	@sh scripts/minio.sh >/dev/null
	@sh scripts/kube-binaries.sh >/dev/null
	@sh scripts/helm.sh >/dev/null

manifests: ## render deploy/manifests/kflcap.yaml from the Helm chart's defaults, with its Namespace (deploy's tests compare them)
	@out=deploy/manifests/kflcap.yaml; helm=$$(sh scripts/helm.sh) && \
	$$helm template kflcap deploy/chart/kflcap --namespace kflcap --set namespace.create=true >$$out.tmp && mv $$out.tmp $$out || { rm -f $$out.tmp; exit 1; }

test-short: ## unit tests only, as any user: privileged, network-namespace and real-server tests skip
	$(GO) test -count=1 -short ./...

bench: deps build ## run the benchmarks against tcpdump/tshark and print ratios (root)
	bash bench/capture/run.sh
	mkdir -p bench/out && $(GO) run ./bench/agent -kflcap $(BIN) -out bench/out/agent.md
	$(GO) run ./bench/overhead -kflcap $(BIN) -out bench/out/overhead.md

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_bpfel.go$$')); if [ -n "$$out" ]; then echo "gofmt: $$out" >&2; exit 1; fi
	$(GO) vet ./...

run: build ## run the agent on the embedded default (capture on any, local repositories)
	./$(BIN) agent

clean: ## remove build output
	rm -rf bin
