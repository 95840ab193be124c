#!/usr/bin/env bash
# Runs `go test ./...` RUNS times with a cleared test cache while LOAD busy
# loops take the cores, and counts the green runs: a test that passes only
# on a quiet machine is a bug.
#   RUNS=10 LOAD=2 bench/test-under-load.sh
set -u
cd "$(dirname "$0")/.."
runs=${RUNS:-10} load=${LOAD:-2}
pids=()
for _ in $(seq "$load"); do (while :; do :; done) & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
green=0
for i in $(seq "$runs"); do
  go clean -testcache
  start=$(date +%s)
  if out=$(go test ./... 2>&1); then
    green=$((green + 1)); echo "run $i: green in $(( $(date +%s) - start )) s"
  else
    keep=$(mktemp "${TMPDIR:-/tmp}/test-under-load-run$i-XXXXXX.log")
    echo "$out" > "$keep"
    echo "run $i: FAILED in $(( $(date +%s) - start )) s (whole output: $keep)"; echo "$out" | grep -E -- '^(--- FAIL|FAIL|panic|\s+\S+_test.go:)' | head -20
  fi
done
echo "$green of $runs runs green with $load busy loops beside them"
