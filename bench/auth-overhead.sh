#!/usr/bin/env bash
# Throughput of authenticated GET /api/node on the real server over loopback
# (ALL key, PUBLIC key) as a ratio to the same handler without the auth
# middleware. Each round runs the three cases back to back, so slow drift of
# a shared machine hits all three alike; we report the median over rounds
# of each case's ns/op and of the per-round ratios (goal: ratio >= 0.90).
#
#   bench/auth-overhead.sh            # 10 rounds of 1s per case
#   ROUNDS=20 BENCHTIME=2s bench/auth-overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-10}
benchtime=${BENCHTIME:-1s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -c -o "$out.test" ./master/ >/dev/null
trap 'rm -f "$out" "$out.test"' EXIT
for i in $(seq 1 "$rounds"); do
  (cd master && "$out.test" -test.run '^$' -test.bench 'NodeThroughput' -test.benchtime "$benchtime" -test.count 1) |
    awk -v r="$i" '/^BenchmarkNodeThroughput\// { split($1, a, "/"); sub(/-[0-9]+$/, "", a[2]); print r, a[2], $3 }' >>"$out"
done
awk '
  { ns[$1, $2] = $3; rs[$1] = 1 }
  function median(arr, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
    return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
  }
  END {
    n = 0
    for (r in rs) { n++; a[n] = ns[r, "noauth"]; b[n] = ns[r, "ALL"]; c[n] = ns[r, "PUBLIC"]; ra[n] = ns[r, "noauth"] / ns[r, "ALL"]; rp[n] = ns[r, "noauth"] / ns[r, "PUBLIC"] }
    printf "rounds: %d\n", n
    printf "noauth  median %8.0f ns/op  (%6.0f req/s)\n", median(a, n), 1e9 / median(a, n)
    printf "ALL     median %8.0f ns/op  (%6.0f req/s)  ratio median %.3f\n", median(b, n), 1e9 / median(b, n), median(ra, n)
    printf "PUBLIC  median %8.0f ns/op  (%6.0f req/s)  ratio median %.3f\n", median(c, n), 1e9 / median(c, n), median(rp, n)
  }' "$out"
