#!/usr/bin/env bash
# make fuzz: runs every Fuzz target of the module for FUZZTIME each (default 60s), one after
# another, and prints the inputs each tried and whether it found a crash. A crash leaves its
# input under the package's testdata/fuzz/<Target>/ (commit it: it becomes a regression case)
# and makes the run fail.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${FUZZTIME:=60s}"
: "${MESHCD_TESTBIN:=$PWD/bin/testbin}"
export MESHCD_TESTBIN
status=0
printf '%-22s %-32s %14s  %s\n' TARGET PACKAGE INPUTS RESULT
while read -r file target; do
  pkg=./$(dirname "$file")
  out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1)
  rc=$?
  execs=$(grep -oE 'execs: [0-9]+' <<<"$out" | tail -1 | grep -oE '[0-9]+' || echo 0)
  result="0 crashes"
  if [ $rc -ne 0 ]; then
    result="CRASH: $(grep -m1 -E 'Failing input written to|--- FAIL' <<<"$out")"
    status=1
  fi
  printf '%-22s %-32s %14s  %s\n' "$target" "$pkg" "$execs" "$result"
done < <(grep -rHoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed -E 's#^\./##; s#:func # #' | sort)
exit $status
