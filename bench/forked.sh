#!/usr/bin/env bash
# The forked model (process per connection, and --prefork) against the threaded model and nginx,
# measured in the same run (docs/FORKED.md).
#
#   1. GET / with keep-alive: wrk -t1 pinned to core 1, the server pinned to core 0, at each of
#      LEVELS connections for DURATION seconds: req/s, wrk's socket-error line, and server CPU
#      per request. Our servers: (self + children) utime+stime from the stats file, a snapshot
#      on SIGUSR1 before wrk and the file written at exit after it (every child reaped by then,
#      so RUSAGE_CHILDREN holds them all), divided by the requests wrk counted. nginx (one
#      worker): utime+stime of master and worker from /proc over the run.
#      mid_conns: connections the server had accepted half-way through (SIGUSR1), which shows
#      connections starved in the backlog, since wrk 4.1 reports no error for them;
#      total_conns: accepted by the end (from the stats file at exit).
#   2. GET / with `Connection: close` at CLOSE_CONNS connections: a new connection per request,
#      so the per-connection server forks a process per request (its stats file's connection
#      count equals its request count).
#
# Usage: bench/forked.sh [path/to/shootout]     (default: build/shootout)
# Env: DURATION (5), LEVELS ("10 100 1000"), PREFORK (1000: a worker per keep-alive
#      connection at the top level), CLOSE_CONNS (100), SERVERS ("forked prefork threaded nginx").
set -euo pipefail
BIN=$(realpath "${1:-$(dirname "$0")/../build/shootout}")
DURATION=${DURATION:-5}
LEVELS=${LEVELS:-"10 100 1000"}
PREFORK=${PREFORK:-1000}
CLOSE_CONNS=${CLOSE_CONNS:-100}
SERVERS=${SERVERS:-"forked prefork threaded nginx"}
HZ=$(getconf CLK_TCK)
source "$(dirname "$0")/lib.sh"
bench_init
OUT=$BENCH_TMP

# start_server NAME: starts one server on core 0; sets PID and PORT.
start_server() {
  case $1 in
    nginx) start_nginx; PID=$NGINX_PID; PORT=$NGINX_PORT; return ;;
    forked) set -- --model forked ;;
    prefork) set -- --model forked --prefork "$PREFORK" ;;
    threaded) set -- --model threaded ;;
  esac
  rm -f "$OUT/stats.json"
  start_shootout --stats-file "$OUT/stats.json" "$@"
}
stop_server() {
  kill -TERM "$PID"
  wait "$PID" || true
}

# server_cpu_us NAME: the server's CPU so far, in µs (nginx: master + its workers, from /proc;
# ours: self + reaped children, from a stats file written on SIGUSR1, or at exit).
server_cpu_us() {
  if [[ $1 == nginx ]]; then
    local t=0 p
    for p in $PID $(cat /proc/$PID/task/*/children); do
      t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat)))
    done
    echo $((t * 1000000 / HZ))
    return
  fi
  if kill -0 "$PID" 2>/dev/null; then
    rm -f "$OUT/stats.json"
    kill -USR1 "$PID"
    for _ in $(seq 200); do [[ -s $OUT/stats.json ]] && break; sleep 0.01; done
  fi
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); \
print(sum(j[w][k] for w in ('self', 'children') for k in ('utime_us', 'stime_us')))" \
    "$OUT/stats.json"
}

# run_point NAME CONNS [wrk args...]: one wrk run; prints a table row.
run_point() {
  local name=$1 conns=$2
  shift 2
  start_server "$name"
  local before after
  before=$(server_cpu_us "$name")
  taskset -c 1 wrk -t1 -c"$conns" -d"${DURATION}s" "$@" "http://127.0.0.1:$PORT/" \
    >"$OUT/wrk.txt" 2>&1 &
  # Half-way, how many connections the server has accepted: wrk 4.1 reports no error for a
  # connection left unaccepted in the backlog the whole run (prefork smaller than -c).
  local mid=-
  sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"
  if [[ $name != nginx ]]; then
    server_cpu_us "$name" >/dev/null
    mid=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['connections'])" \
      "$OUT/stats.json")
  fi
  wait $! || true
  if [[ $name == nginx ]]; then
    after=$(server_cpu_us nginx)
    stop_server
  else
    stop_server  # the stats file written at exit holds every reaped child
    after=$(server_cpu_us "$name")
  fi
  local reqs rps errs conns_seen=-
  reqs=$(awk '/requests in/ {print $1}' "$OUT/wrk.txt")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/wrk.txt")
  errs=$(grep -E 'Socket errors|Non-2xx' "$OUT/wrk.txt" | tr -s ' ' | paste -sd';' || true)
  [[ $name != nginx ]] && conns_seen=$(python3 -c \
    "import json,sys; print(json.load(open(sys.argv[1]))['connections'])" "$OUT/stats.json")
  awk -v m="$name" -v c="$conns" -v r="${rps:-0}" -v n="${reqs:-0}" -v t=$((after - before)) \
    -v h="$mid" -v k="$conns_seen" -v e="${errs:-none}" \
    'BEGIN { printf "%-9s %6d %10.0f %10.1f %9s %11s  %s\n", m, c, r, n ? t / n : 0, h, k, e }'
}

header() {
  printf '%-9s %6s %10s %10s %9s %11s  %s\n' server conns req/s cpu_us/req mid_conns \
    total_conns "wrk errors"
}

echo "# GET / keep-alive: wrk -t1 on core 1, server on core 0, ${DURATION}s per point," \
     "prefork = --prefork $PREFORK"
header
for conns in $LEVELS; do
  for s in $SERVERS; do run_point "$s" "$conns"; done
done

echo
echo "# GET / with Connection: close (a connection per request), $CLOSE_CONNS connections"
header
for s in $SERVERS; do run_point "$s" "$CLOSE_CONNS" -H 'Connection: close'; done
