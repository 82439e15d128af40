# meshcd — `make demo` and `make test` do all set-up themselves on a fresh machine.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go

ROOT := $(abspath .)
BIN := $(ROOT)/bin
TESTBIN := $(BIN)/testbin
TOOLS := $(BIN)/tools
export MESHCD_TESTBIN := $(TESTBIN)

# Pins live in the tools modules' go.mod files; a pin change gives a new file name, so only a
# changed pin rebuilds.
KUBE_VERSION := $(shell grep -oE 'k8s.io/kubernetes v[0-9.]+' hack/testbin/kube-apiserver/go.mod | cut -d' ' -f2)
ETCD_VERSION := $(shell grep -oE 'etcd/server/v3 v[0-9.]+' hack/testbin/etcd/go.mod | cut -d' ' -f2)
GITEA_VERSION := $(shell sed -n 's/^version=//p' hack/testbin/gitea/build.sh)
# Contour at the version whose CRDs the test clusters install (hack/crds.sh); istioctl from the
# istio.io/istio module whose charts examples/istio ships (hack/istio-charts.sh).
CONTOUR_VERSION := $(shell sed -n 's/^CONTOUR=github.com\/projectcontour\/contour@//p' hack/crds.sh)
ISTIO_MODULE_VERSION := $(shell sed -n 's/^version=//p' hack/istio-charts.sh)
ISTIOCTL_VERSION := $(lastword $(subst -, ,$(ISTIO_MODULE_VERSION)))
STATICCHECK_VERSION := v0.8.2
HELM_VERSION := $(shell go list -m -f '{{.Version}}' helm.sh/helm/v3)
export MESHCD_HELM := $(TOOLS)/helm-$(HELM_VERSION)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/meshcd/meshcd/internal/version.Version=$(VERSION)

N ?= 3
# Debian's chromium drives the web view's browser tests; installing it needs root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build test testbin controlplanes tools chromium lint bench fuzz demo clusters devenv crds istio-charts ui-vendor clean
all: build

build: ## the meshcd binary in bin/
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/meshcd ./cmd/meshcd

testbin: $(TESTBIN)/kube-apiserver-$(KUBE_VERSION) $(TESTBIN)/etcd-$(ETCD_VERSION) $(TESTBIN)/gitea-$(GITEA_VERSION) ## real etcd, kube-apiserver and Gitea for tests and the demo
	ln -sfn kube-apiserver-$(KUBE_VERSION) $(TESTBIN)/kube-apiserver
	ln -sfn etcd-$(ETCD_VERSION) $(TESTBIN)/etcd
	ln -sfn gitea-$(GITEA_VERSION) $(TESTBIN)/gitea

controlplanes: $(TESTBIN)/contour-$(CONTOUR_VERSION) $(TESTBIN)/istioctl-$(ISTIOCTL_VERSION) ## the real Contour and istioctl the tests check renders with
	ln -sfn contour-$(CONTOUR_VERSION) $(TESTBIN)/contour
	ln -sfn istioctl-$(ISTIOCTL_VERSION) $(TESTBIN)/istioctl

$(TESTBIN)/contour-$(CONTOUR_VERSION):
	@mkdir -p $(TESTBIN)
	@echo "building contour $(CONTOUR_VERSION), the ingress controller the edge tests run (5-13 minutes the first time)"
	rm -rf $@.d && GOBIN=$@.d $(GO) install -trimpath -ldflags '-s -w' github.com/projectcontour/contour/cmd/contour@$(CONTOUR_VERSION)
	mv $@.d/contour $@ && rmdir $@.d

$(TESTBIN)/istioctl-$(ISTIOCTL_VERSION):
	@mkdir -p $(TESTBIN)
	@echo "building istioctl ($(ISTIO_MODULE_VERSION)), whose analyzers check every Istio render (5-11 minutes the first time)"
	rm -rf $@.d && GOBIN=$@.d $(GO) install -trimpath -ldflags '-s -w' istio.io/istio/istioctl/cmd/istioctl@$(ISTIO_MODULE_VERSION)
	mv $@.d/istioctl $@ && rmdir $@.d

$(TESTBIN)/kube-apiserver-$(KUBE_VERSION):
	@mkdir -p $(TESTBIN)
	@echo "building kube-apiserver $(KUBE_VERSION) (the first build takes several minutes)"
	cd hack/testbin/kube-apiserver && $(GO) build -trimpath -ldflags '-s -w' -o $@.tmp . && mv $@.tmp $@

$(TESTBIN)/gitea-$(GITEA_VERSION):
	@mkdir -p $(TESTBIN)
	@echo "building gitea $(GITEA_VERSION), the Git host of the pull-request tests (4-6 minutes the first time)"
	hack/testbin/gitea/build.sh $@

$(TESTBIN)/etcd-$(ETCD_VERSION):
	@mkdir -p $(TESTBIN)
	@echo "building etcd $(ETCD_VERSION)"
	cd hack/testbin/etcd && $(GO) build -trimpath -ldflags '-s -w' -o $@.tmp . && mv $@.tmp $@

test: testbin controlplanes tools istio-charts chromium ## the whole test suite, then a check that no test process is left running
	$(GO) vet ./...
	hack/test.sh

chromium: ## Debian's chromium for the web view's browser tests, installed when missing
	@command -v chromium > /dev/null || { echo "installing Debian's chromium for the web view's browser tests"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

ui-vendor: ## refresh the web view's vendored uPlot from npm (pinned, integrity checked); the files are committed
	hack/ui-vendor.sh

istio-charts: ## Istio's own charts into examples/istio, from the pinned istio.io/istio module (not committed)
	hack/istio-charts.sh

tools: $(TOOLS)/helm-$(HELM_VERSION) ## peer CLIs the tests compare meshcd with, at meshcd's pinned versions

$(TOOLS)/helm-$(HELM_VERSION):
	@mkdir -p $(TOOLS)
	@echo "building helm $(HELM_VERSION) to compare meshcd's Helm rendering with"
	GOBIN=$(TOOLS)/helm-tmp $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(TOOLS)/helm-tmp/helm $@ && rmdir $(TOOLS)/helm-tmp

lint: $(TOOLS)/staticcheck-$(STATICCHECK_VERSION) ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS)/staticcheck-$(STATICCHECK_VERSION) ./...
	cd hack/bench/flux && $(GO) vet ./...

$(TOOLS)/staticcheck-$(STATICCHECK_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS)/sc-$(STATICCHECK_VERSION) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/sc-$(STATICCHECK_VERSION)/staticcheck $@ && rmdir $(TOOLS)/sc-$(STATICCHECK_VERSION)

bench: testbin build tools chromium ## benchmarks, printed as ratios against a peer measured in the same run
	hack/bench.sh

fuzz: testbin ## every Fuzz target for FUZZTIME each (default 60s): inputs tried, crashes
	hack/fuzz.sh

clusters: testbin devenv ## N local clusters (default 3) with a kubeconfig, until Ctrl-C
	$(BIN)/devenv -n $(N)

devenv:
	$(GO) build -o $(BIN)/devenv ./hack/devenv

demo: testbin build devenv ## the whole job on local clusters and a local Git repo
	hack/demo.sh

crds: ## refresh the test clusters' CRDs from their pinned upstream modules
	hack/crds.sh

clean:
	rm -rf $(BIN)
