#!/usr/bin/env bash
# Runs every Go benchmark in the module. Each stage's benchmarks print their own ratios against
# a peer measured in the same run (kubectl, helm/kustomize, a raw client-go loop, fortio's CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MESHCD_TESTBIN:=$PWD/bin/testbin}"
export MESHCD_TESTBIN
pkgs=$(grep -rl --include='*_test.go' '^func Benchmark' . | xargs -r -n1 dirname | sort -u)
if [ -z "$pkgs" ]; then
  echo "no benchmarks in the module yet"
  exit 0
fi
go test -run '^$' -bench . -benchmem -count=1 -timeout 60m $pkgs
