#!/bin/sh
# Master restart → instances re-adopted, and supervisor memory.
# Creates N instances (default 100) under a real master, then ROUNDS times:
# SIGKILL the master, start it again, time until /api/ping answers (adoption
# runs before it listens) and count ONLINE instances. Prints each round and
# the supervisors' RSS and PSS. Usage: N=100 ROUNDS=5 bench/adopt.sh
# (RSS is read 8 s after the last start: supervisors trim 5 s after their start.)
# LOGMB=10 first gives every instance a log of about that many MB (lines of
# 99 bytes, no line-rate limit), and prints, as the baseline, how long
# `tail -n 10000` of all their log files takes.
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
rate=10000; [ -z "${LOGMB:-}" ] || rate=-1
start() { "$bin" master --addr 127.0.0.1:$PORT --no-console --access-log=false --log-line-rate $rate >>master.log 2>&1 & }
start
until curl -s localhost:$PORT/api/ping >/dev/null; do sleep 0.01; done
curl -s -XPUT -H "$h" -H "$j" localhost:$PORT/api/configurations/bench \
  -d "{\"command\":\"if [ -n '${LOGMB:-}' ] && [ ! -f big.done ]; then head -c $(( ${LOGMB:-0} * 1000000 )) /dev/zero | tr '\\\\0' x | fold -w 99; touch big.done; fi; while :; do echo tick; sleep 1; done\",\"availablePorts\":{\"min\":22000,\"max\":22999}}"
i=0; while [ $i -lt "$N" ]; do
  curl -s -o /dev/null -XPOST -H "$h" -H "$j" localhost:$PORT/api/instances -d '{"configurationName":"bench"}'; i=$((i+1)); done
if [ -n "${LOGMB:-}" ]; then
  until [ "$(ls data/running/*/big.done 2>/dev/null | wc -l)" -ge "$N" ]; do sleep 0.5; done
  sleep 2
  du -sh data/instances | awk '{print "logs on disk:", $1}'
  s=$(date +%s%N); for f in data/instances/*/instance.log; do tail -n 10000 "$f" >/dev/null; done; e=$(date +%s%N)
  echo "baseline: tail -n 10000 of the $N log files: $(( (e-s)/1000000 )) ms"
fi
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
# Graceful stop: SIGTERM until the master has stopped every instance and exited.
mp=$(pgrep -f "$bin master" | head -n 1)
s=$(date +%s%N); kill -TERM "$mp"
while kill -0 "$mp" 2>/dev/null; do sleep 0.005; done
e=$(date +%s%N)
echo "graceful stop of the master with $N instances: $(( (e-s)/1000000 )) ms, $(pgrep -c -f "$dir/universe[-a-z]* supervise" || true) supervisors left"
rm -rf "$dir"
