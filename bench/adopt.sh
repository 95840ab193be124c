#!/bin/sh
# Master restart → instances re-adopted, and supervisor memory.
# Creates N instances (default 100) under a real master, then ROUNDS times:
# SIGKILL the master, start it again, time until /api/ping answers (adoption
# runs before it listens) and count ONLINE instances. Prints each round and
# the supervisors' RSS and PSS. Usage: N=100 ROUNDS=5 bench/adopt.sh
# (RSS is read 8 s after the last start: supervisors trim at start and 5 s on.)
set -eu
N=${N:-100}; ROUNDS=${ROUNDS:-5}; PORT=${PORT:-7311}
dir=$(mktemp -d); bin=$dir/universe
go build -o "$bin" ./cmd/universe
# The supervisor-only binary next to it, as "task build" and "go install
# ./cmd/..." lay them out (SUPERVISOR=self leaves it out: the master then
# re-executes itself).
[ "${SUPERVISOR:-small}" = self ] || go build -o "$dir/universe-supervisor" ./cmd/universe-supervisor
cd "$dir"
tok=$("$bin" key create bench ALL --data data | grep -o 'unv_[A-Za-z0-9_-]*')
h="Authorization: Bearer $tok"; j="Content-Type: application/json"
start() { "$bin" master --addr 127.0.0.1:$PORT --no-console --access-log=false >>master.log 2>&1 & }
start
until curl -s localhost:$PORT/api/ping >/dev/null; do sleep 0.01; done
curl -s -XPUT -H "$h" -H "$j" localhost:$PORT/api/configurations/bench \
  -d '{"command":"while :; do echo tick; sleep 1; done","availablePorts":{"min":22000,"max":22999}}'
i=0; while [ $i -lt "$N" ]; do
  curl -s -o /dev/null -XPOST -H "$h" -H "$j" localhost:$PORT/api/instances -d '{"configurationName":"bench"}'; i=$((i+1)); done
sleep 8
pids=$(pgrep -d, -f "$dir/universe[-a-z]* supervise")
ps -o rss= -p "$pids" | sort -n | awk '{a[NR]=$1} END {print "supervisor RSS KiB: min", a[1], "median", a[int((NR+1)/2)], "max", a[NR]}'
for p in $(echo "$pids" | tr , ' '); do awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup; done | sort -n |
  awk '{a[NR]=$1} END {print "supervisor PSS KiB: median", a[int((NR+1)/2)]}'
r=1; while [ $r -le "$ROUNDS" ]; do
  pkill -9 -f "$bin master" || true; sleep 0.5
  s=$(date +%s%N); start
  until curl -s localhost:$PORT/api/ping >/dev/null; do sleep 0.005; done
  e=$(date +%s%N)
  n=$(curl -s -H "$h" "localhost:$PORT/api/instances?state=ONLINE" | grep -o '"state":"ONLINE"' | wc -l)
  echo "round $r: $(( (e-s)/1000000 )) ms to answering, $n ONLINE"
  r=$((r+1))
done
[ -z "${KEEP:-}" ] || { echo "left running in $dir"; exit 0; }
pkill -TERM -f "$bin master"; sleep 3; rm -rf "$dir"
