#!/usr/bin/env bash
# make bench: every benchmark, each printed as a ratio against a peer measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MESHCD_TESTBIN:=$PWD/bin/testbin}"
export MESHCD_TESTBIN
CUE_VERSION=$(go list -m -f '{{.Version}}' cuelang.org/go)
cue=bin/tools/cue-$CUE_VERSION
if [ ! -x "$cue" ]; then
  echo "installing cue $CUE_VERSION for comparison"
  GOBIN=$PWD/bin/tools/cue-tmp go install "cuelang.org/go/cmd/cue@$CUE_VERSION"
  mv bin/tools/cue-tmp/cue "$cue" && rmdir bin/tools/cue-tmp
fi

# fortio's CLI at a version that installs from the module proxy (newer ones need a module it
# does not serve); meshcd's gates use the fortio library as a dependency.
FORTIO_VERSION=v1.66.5
fortio=bin/tools/fortio-$FORTIO_VERSION
if [ ! -x "$fortio" ]; then
  echo "installing fortio $FORTIO_VERSION for comparison"
  GOBIN=$PWD/bin/tools/fortio-tmp go install "fortio.org/fortio@$FORTIO_VERSION"
  mv bin/tools/fortio-tmp/fortio "$fortio" && rmdir bin/tools/fortio-tmp
fi

echo "== design language: meshcd validate vs cue vet"
go run ./hack/bench/validate -n 500 -meshcd "$PWD/bin/meshcd" -cue "$PWD/$cue"

echo "== rendering: meshcd render (with cache) vs kubectl kustomize + helm template"
go run ./hack/bench/render -n 200 -helm "$PWD/bin/tools/helm-$(go list -m -f '{{.Version}}' helm.sh/helm/v3)"

echo "== sources: Git polling and webhooks against a real Git server"
go run ./hack/bench/sources -n 100

echo "== Git host: push to applied through a real Gitea, its webhook vs polling"
go run ./hack/bench/githost

echo "== apply: meshcd reconciler vs a raw client-go SSA loop and kubectl apply --server-side"
go run ./hack/bench/apply

echo "== apply: meshcd reconciler vs fluxcd/pkg/ssa (a module of its own: flux never enters meshcd's go.mod)"
(cd hack/bench/flux && go run .)

echo "== drift: 10,000 managed objects over 5 real clusters, 200 out-of-band edits"
go run ./hack/bench/drift

echo "== gates: a fortio load run by meshcd vs fortio's own CLI, and the verdict committed to Git"
go run ./hack/bench/gates -fortio "$PWD/$fortio"

echo "== gate verdicts on a loaded machine: side by side vs history-based, two identical servers"
go run ./hack/bench/verdicts

echo "== the web view: the fleet page of 200 designs × 20 clusters in headless Chromium vs the JSON API"
go run ./hack/bench/view

echo "== the daemon: push to applied on 3 clusters across 20 repos, with 3 gates loading vs none"
go run ./hack/bench/daemon

pkgs=$(grep -rl --include='*_test.go' '^func Benchmark' . | xargs -r -n1 dirname | sort -u || true)
if [ -n "$pkgs" ]; then
  echo "== Go benchmarks"
  go test -run '^$' -bench . -benchmem -count=1 -timeout 60m $pkgs
fi
