#!/usr/bin/env bash
# The coroutine model against the evented model, measured in the same run (docs/COROUTINE.md).
#
#   1. GET / throughput: wrk -t1 pinned to core 1, the server pinned to core 0, at 100, 1000
#      and 10000 connections for DURATION seconds each: req/s, and server CPU per request
#      (exact on-CPU time of the server's threads from /proc/PID/task/*/schedstat over the run,
#      divided by the requests wrk counted). Both servers run side by side; with ROUNDS > 1
#      they alternate and each keeps its best round (highest req/s, lowest CPU per request).
#   2. Memory per idle connection: PSS (/proc/PID/smaps_rollup) before and after CONNS
#      keep-alive connections that each made one request and then stay idle, for every --stack
#      kind of the coroutine model and for the evented model.
#   3. Idle CPU: server CPU ticks over 5 s while holding those idle connections.
#
# Usage: bench/coroutine_vs_evented.sh [path/to/shootout]   (default: build/shootout)
# Env: DURATION (5), CONNS (10000), LEVELS ("100 1000 10000"), MODELS ("coroutine evented"),
#      ROUNDS (1).
set -euo pipefail
BIN=${1:-$(dirname "$0")/../build/shootout}
DURATION=${DURATION:-5}
CONNS=${CONNS:-10000}
LEVELS=${LEVELS:-"100 1000 10000"}
MODELS=${MODELS:-"coroutine evented"}
ROUNDS=${ROUNDS:-1}
source "$(dirname "$0")/lib.sh"
bench_init
NOFILE=$BENCH_NOFILE
stop_server() { stop_pid "$PID"; }

echo "# throughput: GET /, wrk -t1 on core 1, server on core 0, ${DURATION}s per point, best of $ROUNDS"
printf '%-10s %7s %10s %14s\n' model conns req/s cpu_us/req
for model in $MODELS; do
  start_shootout --model "$model" --idle-timeout 600000
  eval "PID_$model=$PID PORT_$model=$PORT"
done
for conns in $LEVELS; do
  for model in $MODELS; do : >"$BENCH_TMP/$model.rounds"; done
  for _ in $(seq "$ROUNDS"); do
    for model in $MODELS; do
      eval "pid=\$PID_$model port=\$PORT_$model"
      wrk_point "$port" "$conns" "$DURATION" "$pid" >>"$BENCH_TMP/$model.rounds"
    done
  done
  for model in $MODELS; do
    awk -v m="$model" -v c="$conns" 'NR == 1 || $1 > r { r = $1 } NR == 1 || $2 < u { u = $2 }
      END { printf "%-10s %7d %10.0f %14.2f\n", m, c, r, u }' "$BENCH_TMP/$model.rounds"
  done
done
for model in $MODELS; do eval "stop_pid \$PID_$model"; done

# idle_memory PORT PID: PSS before and after CONNS connections that made one request each and
# now sit idle, then the server's CPU ticks over 5 s of holding them. Prints "kib_delta ticks".
idle_memory() {
  python3 - "$1" "$2" "$CONNS" <<'EOF'
import socket, sys, time
port, pid, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def pss():
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1])
def ticks():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
before = pss()
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    conns.append(s)
for s in conns:
    got = b""
    while b"Hello, World!" not in got:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed early")
        got += chunk
time.sleep(0.5)
after = pss()
t0 = ticks(); time.sleep(5); t1 = ticks()
print(after - before, t1 - t0)
EOF
}

echo
echo "# memory and idle CPU: $CONNS idle keep-alive connections, one request each"
printf '%-28s %12s %10s %14s\n' server pss_kib_delta B/conn idle_ticks_5s
for variant in "coroutine --stack protected" "coroutine --stack fixed" \
               "coroutine --stack pooled" "evented"; do
  set -- $variant
  start_shootout --model "$@"
  read -r delta ticks < <(ulimit -n $NOFILE; idle_memory "$PORT" "$PID")
  stop_server
  awk -v v="$variant" -v d="$delta" -v n="$CONNS" -v t="$ticks" \
    'BEGIN { printf "%-28s %12d %10.0f %14d\n", v, d, d * 1024 / n, t }'
done
