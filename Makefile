# Wirespan's build. `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

include hack/versions.env

ROOT         := $(abspath .)
BIN          := $(ROOT)/bin
ASSETS       := $(ROOT)/.cache/bins/assets
GO           ?= go
CONTROLLER_GEN := $(GO) tool controller-gen
GOLANGCI_LINT  := $(GO) tool -modfile=hack/tools/go.mod golangci-lint
# Tests may take a while on two cores: the envtest suites start real
# apiservers, the VM tier emulates a CPU, and test/images cross-compiles
# for arm64 (19 minutes once on a loaded machine). -p 2 matches the machine.
GOTEST_FLAGS ?= -count=1 -p 2 -timeout 30m

# What `make generate` writes; `make verify` fails if generating changes it.
GENERATED := apis/v1alpha1/zz_generated.deepcopy.go charts/wirespan/files/crds docs/api.md
GENERATED_SUM = find $(GENERATED) -type f | sort | xargs sha256sum

export KUBEBUILDER_ASSETS := $(ASSETS)
export GOTOOLCHAIN := local

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
		/^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2 } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: ## Generate deepcopy code, the CRDs (charts/wirespan/files/crds: ours, and the MCS API's from sigs.k8s.io/mcs-api) and docs/api.md.
	$(CONTROLLER_GEN) object paths=./apis/...
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./apis/... output:crd:dir=charts/wirespan/files/crds
	$(GO) run ./hack/mcscrds -out charts/wirespan/files/crds
	$(GO) run ./hack/apidocs -crd charts/wirespan/files/crds/wirespan.io_clusterpeers.yaml,charts/wirespan/files/crds/wirespan.io_proberequests.yaml -conditions apis/v1alpha1/conditions.go -out docs/api.md

.PHONY: verify
verify: ## Check generated files are current, then gofmt, go vet and golangci-lint.
	@before=$$($(GENERATED_SUM)); $(MAKE) --no-print-directory generate >/dev/null; \
	if [ "$$before" != "$$($(GENERATED_SUM))" ]; then \
		echo "generated files were stale: 'make generate' has now updated them; review and commit:"; \
		git status --short -- $(GENERATED); exit 1; fi
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then \
		echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...
	cd hack/tools && $(GO) mod verify >/dev/null
	cd test/promql && $(GO) vet ./... && $(GO) mod verify >/dev/null

# The version all the binaries report (the plugin's --version; the
# operator's and gateway's log at start, wirespan_build_info metric, the
# self ClusterPeer's status.operatorVersion and the gateway Lease's
# wirespan.io/version, which `kubectl wirespan diagnose` compares across
# clusters): the commit as `git describe` gives it. A build without it
# falls back to the Go build info (internal/version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
VERSION_LDFLAGS := -X github.com/wirespan/wirespan/internal/version.Version=$(VERSION)

.PHONY: build
build: ## Build wirespan-operator, wirespan-gateway, wirespan-lab and kubectl-wirespan (the kubectl plugin) into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(VERSION_LDFLAGS)' -o $(BIN)/wirespan-operator ./operator
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(VERSION_LDFLAGS)' -o $(BIN)/wirespan-gateway ./gateway
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/wirespan-lab ./test/lab
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(VERSION_LDFLAGS)' -o $(BIN)/kubectl-wirespan ./kubectl-wirespan

# Release binaries (the images build the same way, see build/*.Dockerfile):
# static (no cgo), no build paths (-trimpath), stripped (-s -w), stamped
# with VERSION (the images take it as a build argument: --build-arg
# VERSION=...). Linux only: the gateway is netlink.
GOOS        ?= linux
GOARCH      ?= $(shell $(GO) env GOARCH)
STATIC_DIR  ?= $(BIN)/$(GOOS)_$(GOARCH)
STATIC_CMDS ?= operator gateway
STATIC_LDFLAGS := -s -w $(VERSION_LDFLAGS)

.PHONY: build-static
build-static: ## Build static release binaries wirespan-{operator,gateway} for GOOS/GOARCH (default linux, this machine's arch) into bin/<os>_<arch>/.
	@for cmd in $(STATIC_CMDS); do \
		echo "wirespan-$$cmd ($(GOOS)/$(GOARCH)) -> $(STATIC_DIR)/wirespan-$$cmd"; \
		CGO_ENABLED=0 GOOS=$(GOOS) GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags '$(STATIC_LDFLAGS)' -o $(STATIC_DIR)/wirespan-$$cmd ./$$cmd; \
	done

.PHONY: bins
bins: ## Build and cache the pinned kube-apiserver, kube-controller-manager, kubectl, kube-proxy, etcd and coredns.
	@hack/bins.sh

.PHONY: deps
deps: ## Install the Debian packages the lab and tests need (ip, nft, dig, ping, ps, wg, iperf3, dnsperf, busybox-static, setpriv, qemu, kmod, cpio) if missing.
	@hack/deps.sh

.PHONY: vm
vm: deps ## Fetch Debian's kernel and build the VM tier's guest into .cache/vm/<kernel>/ (test/vm does it too when needed).
	@hack/vm.sh >/dev/null

.PHONY: crd-modules
crd-modules: ## Fetch the Flux and Argo CD modules whose CRDs test/gitops installs, into the Go module cache.
	WIRESPAN_REQUIRE_MODULES=1 $(GO) test -short -count=1 -run '^TestCRDModulesAvailable$$' ./test/gitops/

##@ Testing

# What `make test` sets up it also requires: with these, a test that lacks
# root, a tool, kernel support or a module fails instead of skipping
# (docs/development.md lists which tests need what).
REQUIRE_ENV := WIRESPAN_REQUIRE_PRIVILEGED=1 WIRESPAN_REQUIRE_MODULES=1

.PHONY: test
test: deps bins crd-modules verify ## Run verify, then every test: unit, envtest suites, admission, end-to-end, the VM tier (kernel WireGuard under qemu). (The README's test command.)
	$(REQUIRE_ENV) $(GO) test $(GOTEST_FLAGS) ./...
	@# The chart's alerts and dashboard, with Prometheus' parser: a module of its own (test/promql/doc.go).
	cd test/promql && $(GO) test $(GOTEST_FLAGS) ./...

.PHONY: test-short
test-short: ## Run only the tests that need no control plane.
	$(GO) test -short -count=1 ./...
	cd test/promql && $(GO) test -short -count=1 ./...

.PHONY: bench
bench: deps bins ## Run the benchmarks (figures go in docs/benchmarks.md).
	$(GO) test -run '^$$' -bench . -benchtime 20x $$($(GO) list ./... | grep -v -e '/test/internal/lab$$' -e '/test/bench$$' -e '/test/vm$$')
	@# Each round boots a guest: one is enough (kernel against userspace WireGuard).
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 20m ./test/vm/
	@# A lab up takes seconds, not milliseconds: three rounds are enough.
	$(GO) test -run '^$$' -bench . -benchtime 3x ./test/internal/lab/
	$(GO) test -run '^$$' -bench . -skip 'BenchmarkScale|BenchmarkFailover|BenchmarkThroughput' -benchtime 3x -timeout 30m ./test/bench/
	@# Each stream five times, beside its reference, in one round (about three minutes).
	$(GO) test -run '^$$' -bench BenchmarkThroughput -benchtime 1x -timeout 20m ./test/bench/
	@# Each fault ten times in one round (about five minutes).
	$(GO) test -run '^$$' -bench BenchmarkFailover -benchtime 1x -timeout 30m ./test/bench/
	@# 10,000 exported Services take minutes to converge: one round.
	$(GO) test -run '^$$' -bench BenchmarkScale -benchtime 1x -timeout 120m ./test/bench/

.PHONY: demo
demo: deps bins build ## Bring up two lab clusters, peer them from a ClusterPeer folder, show what works (docs/lab.md). Leaves the lab running.
	@hack/demo.sh

.PHONY: demo-down
demo-down: ## Take the demo lab down: every process, namespace, link and file it made.
	@if [ -x $(BIN)/wirespan-lab ]; then $(BIN)/wirespan-lab down; else $(GO) run ./test/lab down; fi

.PHONY: clean
clean: ## Remove build output (bin/). The control-plane cache in .cache/ is kept.
	rm -rf $(BIN)

.PHONY: clean-cache
clean-cache: ## Remove the cached control-plane binaries and the VM tier's guest (.cache/) too.
	rm -rf .cache

##@ Tilt: two kind clusters (needs docker, kind, kubectl, helm and tilt; docs/development.md)

KINDDEV := $(GO) run ./hack/kinddev

.PHONY: kind-up
kind-up: ## Create the kind clusters of tilt-settings.yaml (default wirespan-1, wirespan-2) that do not exist yet.
	$(KINDDEV) up

.PHONY: kind-down
kind-down: ## Delete the kind clusters and the loop's state in .cache/tilt (tilt down does not).
	$(KINDDEV) down

.PHONY: tilt-up
tilt-up: kind-up ## Create the kind clusters if needed, then run tilt up on them.
	tilt up

.PHONY: tilt-down
tilt-down: ## Remove what tilt up deployed; the clusters stay (make kind-down deletes them).
	tilt down
