#!/usr/bin/env bash
# Graceful stop of a master process, measured as an operator gets it: N
# running `sleep` instances, SIGTERM to the master, the time until the
# process is gone (waited for by its parent, this script: a process
# reparented to an init that reaps late stays a zombie that `kill -0`
# still finds), then what is left of the instances (supervisors, sleeps).
#   N=1000 bench/stop-process.sh           (SMALL=0: without universe-supervisor;
#                                           GORUN=1: the master started by go run, as the README's first command)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-1000}
dir=$(mktemp -d)
trap 'pkill -f "supervise $dir" 2>/dev/null; rm -rf "$dir"' EXIT
go build -o "$dir/universe" ./cmd/universe
if [ "${SMALL:-1}" = 1 ]; then go build -o "$dir/universe-supervisor" ./cmd/universe-supervisor; fi
token=$("$dir/universe" key create admin ALL --data "$dir/data" | grep -o 'unv_[A-Za-z0-9_-]*')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if [ "${GORUN:-0}" = 1 ]; then
  go build -o /dev/null ./cmd/universe # go run's build, cached
  go run ./cmd/universe master --addr "127.0.0.1:$port" --data "$dir/data" --no-console --access-log=false >"$dir/master.log" 2>&1 &
  gpid=$!
  until mpid=$(pgrep -P "$gpid" -f "universe master"); do sleep 0.05; done
else
  "$dir/universe" master --addr "127.0.0.1:$port" --data "$dir/data" --no-console --access-log=false >"$dir/master.log" 2>&1 &
  mpid=$!; gpid=$mpid
fi
for _ in $(seq 50); do curl -s -o /dev/null "localhost:$port/api/ping" && break; sleep 0.1; done
h="Content-Type: application/json"
curl -s -X PUT -H "$h" -H "Authorization: Bearer $token" "localhost:$port/api/configurations/s" \
  -d '{"command":"exec sleep 600","availablePorts":{"min":30000,"max":32000},"ramMB":1,"cpu":1}'
for _ in $(seq "$n"); do curl -s -o /dev/null -X POST -H "$h" -H "Authorization: Bearer $token" "localhost:$port/api/instances" -d '{"configurationName":"s"}'; done
sleep 8 # supervisors trim their start-up memory: a steady state
echo "running: $(pgrep -c -f "supervise $dir/data" || true) supervisors, $(pgrep -c -x sleep || true) sleeps"
# With go run, the master is go run's child: it gets the signal, and go run
# exits once it has.
start=$(date +%s%N); kill -TERM "$mpid"; wait "$gpid" || true; end=$(date +%s%N)
echo "SIGTERM to the master process gone: $(( (end - start) / 1000000 )) ms (goal <= 500 ms); left at once: $(pgrep -c -f "supervise $dir/data" || true) supervisors, $(pgrep -c -x sleep || true) sleeps (goal 0)"
grep -E "instances stopped" "$dir/master.log" | sed 's/.*duration=/the master logged: instances stopped in /'
