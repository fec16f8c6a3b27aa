#!/usr/bin/env bash
# The evented model against nginx (one worker, access log off), measured in the same run:
#   1. GET / with wrk -t1 at 10, 100, 1000, 10000 connections: req/s and server CPU µs/request
#      (the server's exact on-CPU time over the run from /proc/PID/task/*/schedstat, divided by
#      the requests wrk counted); server pinned to core 0, wrk to core 1. With ROUNDS > 1 the
#      two servers alternate and each keeps its best round (other work on the machine only ever
#      slows a run down): the highest req/s and the lowest CPU per request; beside it, the median
#      over the rounds of each round's ratio (nginx and ours ran back to back).
#      Then, per server, the median user and kernel µs per request and sleeps per request.
#      A third server alternates with them: build/shootout-floor, an epoll loop that makes only
#      the system calls no server can avoid (recv, send, epoll_wait) and runs no code of its
#      own; its CPU per request is the kernel's share, the floor under any epoll server's.
#      "floor×" is the median over the rounds of floor ÷ nginx: the lowest CPU ratio any
#      epoll server could reach in that run.
#      When build/shootout-floor-uring exists, a fourth alternates with them: the same floor
#      under io_uring (multishot accept and recv, one send per read, one io_uring_enter per
#      batch); "uring µs" and "uring×" are its columns, as "floor µs" and "floor×" are the epoll
#      floor's: the kernel's share under completion, and the lowest CPU ratio an io_uring server
#      could reach.
#   2. PSS per idle keep-alive connection at 10,000 connections (each sent one request), from
#      /proc/PID/smaps_rollup before and after.
#   3. --poller poll against epoll: req/s of 10 busy wrk clients while 10,000 idle connections
#      stay open.
# Usage: bench/evented_vs_nginx.sh [build-dir] [seconds]     (default: build, 5)
# Env: ROUNDS (1), LEVELS ("10 100 1000 10000"), MODEL (evented; uring puts the io_uring model in
# the "ours" columns; the poll-versus-epoll part runs with evented only).
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-5}
ROUNDS=${ROUNDS:-1}
LEVELS=${LEVELS:-"10 100 1000 10000"}
MODEL=${MODEL:-evented}
BIN=$(realpath "$BUILD/shootout")
FLOOR_BIN=$(realpath "$BUILD/shootout-floor")
URING_BIN=""  # the io_uring floor, only built with liburing
[[ -x $BUILD/shootout-floor-uring ]] && URING_BIN=$(realpath "$BUILD/shootout-floor-uring")
source "$(dirname "$0")/lib.sh"
bench_init

# Opens N keep-alive connections, each sends one GET / and reads the answer, then holds them
# until stdin closes. Prints "ready" when all are open.
cat >"$BENCH_TMP/idle.py" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    got = b""
    while not got.endswith(b"Hello, World!"):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection %d closed" % i)
        got += chunk
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
PY

idle_pss() {  # port pid -> bytes per idle connection
  local port=$1 pid=$2 before after
  sleep 0.5
  before=$(pss_kib "$pid")
  coproc IDLE { taskset -c 1 python3 "$BENCH_TMP/idle.py" "$port" 10000; }
  read -r _ <&"${IDLE[0]}"
  sleep 1
  after=$(pss_kib "$pid")
  exec {IDLE[1]}>&-
  wait "$IDLE_PID" 2>/dev/null || true
  awk -v a="$after" -v b="$before" \
    'BEGIN { printf "%.0f bytes per connection (PSS %d KiB before, %d KiB after)", (a - b) * 1024 / 10000, b, a }'
}

best() {  # "rps cpu" lines on stdin -> the highest rps and the lowest cpu
  awk 'NR == 1 || $1 > r { r = $1 } NR == 1 || $2 < c { c = $2 } END { print r, c }'
}

median() {  # numbers on stdin, one per line -> their median
  sort -g | awk '{ v[NR] = $1 }
    END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# Round i of nginx against round i of ours (they ran back to back): the median of the
# per-round ratios, "rps_ratio cpu_ratio". Less flattering than best-of when the machine is
# quiet, more robust when a round is hit by something else.
median_ratios() {  # nginx.rounds ours.rounds
  local r c
  r=$(paste "$1" "$2" | awk '{ print $6 / $1 }' | median)
  c=$(paste "$1" "$2" | awk '{ print $7 / $2 }' | median)
  echo "$r $c"
}

echo "== GET / (wrk -t1 -d${SECS}s; server on core 0, wrk on core 1; best of $ROUNDS;"
echo "   med r/s× and med cpu×: median over the rounds of each round's ratios; floor µs: the"
echo "   floor server's median CPU per request; floor×: median of its per-round ratio to nginx;"
echo "   uring µs and uring×: the same for the io_uring floor, when it was built)"
head=$(printf "%7s | %10s %8s | %10s %8s | %6s %6s | %8s %8s | %8s %6s" conns "nginx r/s" "µs/req" \
  "ours r/s" "µs/req" "r/s×" "cpu×" "med r/s×" "med cpu×" "floor µs" "floor×")
[[ -n $URING_BIN ]] && head+=$(printf " | %8s %6s" "uring µs" "uring×")
echo "$head"
start_nginx
start_listener "$FLOOR_BIN" 0
FLOOR=$PID FLOOR_PORT=$PORT
servers="nginx ours floor"
if [[ -n $URING_BIN ]]; then
  start_listener "$URING_BIN" 0
  URING=$PID URING_PORT=$PORT
  servers+=" uring"
fi
start_shootout --model "$MODEL" --idle-timeout 600000
OURS=$PID
: >"$BENCH_TMP/split"
for c in $LEVELS; do
  : >"$BENCH_TMP/nginx.rounds"
  : >"$BENCH_TMP/ours.rounds"
  : >"$BENCH_TMP/floor.rounds"
  : >"$BENCH_TMP/uring.rounds"
  for _ in $(seq "$ROUNDS"); do
    wrk_point "$NGINX_PORT" "$c" "$SECS" $(nginx_pids) >>"$BENCH_TMP/nginx.rounds"
    wrk_point "$PORT" "$c" "$SECS" "$OURS" >>"$BENCH_TMP/ours.rounds"
    wrk_point "$FLOOR_PORT" "$c" "$SECS" "$FLOOR" >>"$BENCH_TMP/floor.rounds"
    if [[ -n $URING_BIN ]]; then
      wrk_point "$URING_PORT" "$c" "$SECS" "$URING" >>"$BENCH_TMP/uring.rounds"
    fi
  done
  read -r nr nc < <(best <"$BENCH_TMP/nginx.rounds")
  read -r orr oc < <(best <"$BENCH_TMP/ours.rounds")
  read -r mr mc < <(median_ratios "$BENCH_TMP/nginx.rounds" "$BENCH_TMP/ours.rounds")
  fc=$(awk '{ print $2 }' "$BENCH_TMP/floor.rounds" | median)
  read -r _ fr < <(median_ratios "$BENCH_TMP/nginx.rounds" "$BENCH_TMP/floor.rounds")
  row=$(awk -v c="$c" -v nr="$nr" -v nc="$nc" -v orr="$orr" -v oc="$oc" -v mr="$mr" -v mc="$mc" \
    -v fc="$fc" -v fr="$fr" 'BEGIN {
    printf "%7d | %10.0f %8.2f | %10.0f %8.2f | %6.2f %6.2f | %8.2f %8.2f | %8.2f %6.2f", c, nr,
      nc, orr, oc, orr / nr, oc / nc, mr, mc, fc, fr }')
  if [[ -n $URING_BIN ]]; then
    uc=$(awk '{ print $2 }' "$BENCH_TMP/uring.rounds" | median)
    read -r _ ur < <(median_ratios "$BENCH_TMP/nginx.rounds" "$BENCH_TMP/uring.rounds")
    row+=$(awk -v uc="$uc" -v ur="$ur" 'BEGIN { printf " | %8.2f %6.2f", uc, ur }')
  fi
  echo "$row"
  split_row=$c
  for f in $servers; do
    for col in 3 4 5; do
      split_row+=" $(awk -v k=$col '{ print $k }' "$BENCH_TMP/$f.rounds" | median)"
    done
  done
  awk '{ printf "%7d", $1
    for (i = 2; i <= NF; i += 3) printf " | %8.2f %8.2f %8.4f", $i, $(i + 1), $(i + 2)
    print "" }' <<<"$split_row" >>"$BENCH_TMP/split"
done
stop_pid "$OURS"
stop_pid "$FLOOR"
[[ -n $URING_BIN ]] && stop_pid "$URING"
echo "== where the CPU per request goes: medians over the rounds, µs of user and kernel time"
echo "   per request (schedstat's exact total split in the proportion of utime and stime), and"
echo "   sleeps per request (voluntary context switches: going to sleep in epoll_wait, or in"
echo "   io_uring_enter, and waking)"
head=$(printf "%7s | %8s %8s %8s | %8s %8s %8s | %8s %8s %8s" conns "ng user" "ng sys" "ng slp" \
  "our user" "our sys" "our slp" "fl user" "fl sys" "fl slp")
[[ -n $URING_BIN ]] && head+=$(printf " | %8s %8s %8s" "ur user" "ur sys" "ur slp")
echo "$head"
cat "$BENCH_TMP/split"

echo "== PSS per idle keep-alive connection at 10,000 connections"
# A fresh nginx: a worker that already served 10,000 connections keeps that memory.
stop_pid "$NGINX_PID"
start_nginx
worker=$(cat /proc/"$NGINX_PID"/task/*/children | awk '{print $1}')
echo "nginx worker: $(idle_pss "$NGINX_PORT" "$worker")"
start_shootout --model "$MODEL" --idle-timeout 600000
echo "ours ($MODEL): $(idle_pss "$PORT" "$PID")"
stop_pid "$PID"
[[ $MODEL == evented ]] || exit 0

echo "== 10 busy wrk clients while 10,000 idle connections stay open"
for poller in epoll poll; do
  start_shootout --model evented --idle-timeout 600000 --poller "$poller"
  coproc IDLE { taskset -c 1 python3 "$BENCH_TMP/idle.py" "$PORT" 10000; }
  read -r _ <&"${IDLE[0]}"
  read -r rps cpu _ < <(wrk_point "$PORT" 10 "$SECS" "$PID")
  echo "--poller $poller: $rps req/s, $cpu µs CPU/request"
  exec {IDLE[1]}>&-
  wait "$IDLE_PID" 2>/dev/null || true
  stop_pid "$PID"
done
