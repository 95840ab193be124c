#!/usr/bin/env bash
# Throughput of GET /api/node with an ALL key through the master's whole
# middleware chain, default configuration (access log on), as a ratio to bare
# gin serving the same handler, at 32 keep-alive connections over loopback.
# Each round runs both cases back to back; we report medians of ns/op and of
# the per-round ratios (goal: ratio >= 0.90).
#
#   bench/request-overhead.sh            # 10 rounds of 1s per case
#   ROUNDS=20 BENCHTIME=2s bench/request-overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-10}
benchtime=${BENCHTIME:-1s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -c -o "$out.test" ./master/ >/dev/null
trap 'rm -f "$out" "$out.test"' EXIT
for i in $(seq 1 "$rounds"); do
  (cd master && "$out.test" -test.run '^$' -test.bench 'NodeVsBareGin' -test.benchtime "$benchtime" -test.count 1) |
    awk -v r="$i" '/^BenchmarkNodeVsBareGin\// { split($1, a, "/"); sub(/-[0-9]+$/, "", a[2]); print r, a[2], $3 }' >>"$out"
done
awk '
  { ns[$1, $2] = $3; rs[$1] = 1 }
  function median(arr, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
    return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
  }
  END {
    n = 0
    for (r in rs) { n++; a[n] = ns[r, "bare"]; b[n] = ns[r, "default"]; q[n] = ns[r, "bare"] / ns[r, "default"]; mn = (n == 1 || q[n] < mn) ? q[n] : mn; mx = (n == 1 || q[n] > mx) ? q[n] : mx
      h[n] = ns[r, "bare"] / ns[r, "headers"]; hmn = (n == 1 || h[n] < hmn) ? h[n] : hmn; hmx = (n == 1 || h[n] > hmx) ? h[n] : hmx }
    printf "rounds: %d\n", n
    printf "bare gin sending the two headers of the master too: ratio median %.3f (range %.3f-%.3f)\n", median(h, n), hmn, hmx
    printf "bare gin  median %8.0f ns/op  (%6.0f req/s)\n", median(a, n), 1e9 / median(a, n)
    printf "default   median %8.0f ns/op  (%6.0f req/s)  ratio median %.3f (range %.3f-%.3f; goal >= 0.90)\n", median(b, n), 1e9 / median(b, n), median(q, n), mn, mx
  }' "$out"
