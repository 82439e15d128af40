#!/usr/bin/env bash
# Runs meshcd's whole test suite with the race detector, then checks that no etcd or
# kube-apiserver this run started is still running. Results are never reused (-count=1), so
# every run talks to real servers; test binaries are compiled once per package and kept in
# Go's build cache. The daemon's end-to-end tests start their own race-built test binary as
# the daemon and fail on any race report in its output.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${MESHCD_TESTBIN:=$PWD/bin/testbin}"
export MESHCD_TESTBIN
mkdir -p bin
# Only the processes recorded here are this run's: clusters someone started beside it (make
# clusters, another checkout) are never blamed or killed.
MESHCD_TEST_PIDS=$(mktemp -d "${TMPDIR:-/tmp}/meshcd-test-pids.XXXXXX")
export MESHCD_TEST_PIDS
trap 'rm -rf "$MESHCD_TEST_PIDS"' EXIT
# Integration packages start several apiservers each; two packages at a time keeps both cores
# busy without starving the servers of CPU. The longest package (the daemon's end-to-end
# tests) goes first, so the others run beside it rather than after it.
pkgs=$(go list ./... | grep -v /internal/daemon$)
go test -race -count=1 -p 2 -timeout 30m ./internal/daemon $pkgs 2>&1 | tee bin/test.log
status=${PIPESTATUS[0]}
go run ./hack/leftovers || status=1
exit $status
