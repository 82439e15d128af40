#!/usr/bin/env bash
# Runs meshcd's whole test suite and then checks that no etcd or kube-apiserver started by the
# tests is still running. Test binaries are compiled once per package by `go test` and cached
# in Go's build cache; results are never reused (-count=1), so every run talks to real servers.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${MESHCD_TESTBIN:=$PWD/bin/testbin}"
export MESHCD_TESTBIN
# Integration packages start several apiservers each; two packages at a time keeps both cores
# busy without starving the servers of CPU.
mkdir -p bin
go test -count=1 -p 2 -timeout 30m ./... 2>&1 | tee bin/test.log
status=${PIPESTATUS[0]}
left=$(pgrep -f "^$MESHCD_TESTBIN/(etcd|kube-apiserver)" || true)
if [ -n "$left" ]; then
  echo "FAIL: processes started by the tests are still running:"
  ps -o pid,args -p $left
  kill -9 $left 2>/dev/null || true
  status=1
else
  echo "ok: no test cluster process left running"
fi
exit $status
