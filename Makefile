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
# apiservers. -p 2 matches the machine.
GOTEST_FLAGS ?= -count=1 -p 2 -timeout 20m

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
generate: ## Generate deepcopy code, the CRDs (charts/wirespan/crds) and docs/api.md.
	$(CONTROLLER_GEN) object paths=./apis/...
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./apis/... output:crd:dir=charts/wirespan/crds
	$(GO) run ./hack/apidocs -crd charts/wirespan/crds/wirespan.io_clusterpeers.yaml -conditions apis/v1alpha1/conditions.go -out docs/api.md

.PHONY: verify
verify: ## Check generated files are current, then gofmt, go vet and golangci-lint.
	@$(MAKE) --no-print-directory generate >/dev/null
	@if [ -n "$$(git status --porcelain -- apis charts docs/api.md)" ]; then \
		echo "generated files are stale; run 'make generate' and commit:"; \
		git status --porcelain -- apis charts docs/api.md; git --no-pager diff --stat -- apis charts docs/api.md; exit 1; fi
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then \
		echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...
	cd hack/tools && $(GO) mod verify >/dev/null

.PHONY: build
build: ## Build the operator and gateway binaries into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/wirespan-operator ./operator
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/wirespan-gateway ./gateway

.PHONY: bins
bins: ## Build and cache the pinned kube-apiserver, kube-controller-manager, kubectl and etcd.
	@hack/bins.sh

##@ Testing

.PHONY: test
test: bins ## Run every test: unit, envtest suites on real apiservers, admission. (The README's test command.)
	$(GO) test $(GOTEST_FLAGS) ./...

.PHONY: test-short
test-short: ## Run only the tests that need no control plane.
	$(GO) test -short -count=1 ./...

.PHONY: bench
bench: bins ## Run the benchmarks (figures go in docs/benchmarks.md).
	$(GO) test -run '^$$' -bench . -benchtime 20x ./...

.PHONY: demo
demo: ## Run the lab demo (not yet: arrives with the lab, issue "The lab").
	@echo "make demo arrives with the lab (two real clusters on this machine, no Docker); it is not built yet." >&2
	@echo "Until then: 'make test' runs the operator against a real kube-apiserver." >&2
	@exit 2

.PHONY: clean
clean: ## Remove build output (bin/). The control-plane cache in .cache/ is kept.
	rm -rf $(BIN)

.PHONY: clean-cache
clean-cache: ## Remove the cached control-plane binaries too.
	rm -rf .cache
