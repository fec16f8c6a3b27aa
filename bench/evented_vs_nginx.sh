#!/usr/bin/env bash
# The evented model against nginx (one worker, access log off), measured in the same run:
#   1. GET / with wrk -t1 at 10, 100, 1000, 10000 connections: req/s and server CPU µs/request
#      (utime+stime of the server's processes from /proc over the window / requests served);
#      server pinned to core 0, wrk to core 1.
#   2. PSS per idle keep-alive connection at 10,000 connections (each sent one request), from
#      /proc/PID/smaps_rollup before and after.
#   3. --poller poll against epoll: req/s of 10 busy wrk clients while 10,000 idle connections
#      stay open.
# Usage: bench/evented_vs_nginx.sh [build-dir] [seconds]     (default: build, 5)
# Needs nginx, wrk, taskset, python3, and RLIMIT_NOFILE >= 20000 (ulimit -n).
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-5}
BIN=$(realpath "$BUILD/shootout")
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  sleep 0.3
  rm -rf "$TMP"
}
trap cleanup EXIT

NGINX_PORT=18480
OURS_PORT=18481

start_nginx() {
  cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 20000;
daemon on;
pid $TMP/nginx.pid;
error_log $TMP/error.log;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $TMP; proxy_temp_path $TMP; fastcgi_temp_path $TMP;
  uwsgi_temp_path $TMP; scgi_temp_path $TMP;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { return 200 "Hello, World!"; }
  }
}
EOF
  taskset -c 0 nginx -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/error.log"
  sleep 0.5
}

# All pids of nginx (master and worker), or our one process.
nginx_pids() { echo "$(cat "$TMP/nginx.pid") $(pgrep -P "$(cat "$TMP/nginx.pid")" | tr '\n' ' ')"; }

start_ours() {  # extra serve flags in "$@"
  taskset -c 0 "$BIN" serve --model evented --port $OURS_PORT --idle-timeout 600000 "$@" \
    >"$TMP/ours.out" 2>"$TMP/ours.err" &
  OURS=$!
  PIDS+=("$OURS")
  for _ in $(seq 50); do grep -q listening "$TMP/ours.out" 2>/dev/null && break; sleep 0.1; done
}
stop_ours() { kill -TERM "$OURS"; wait "$OURS" 2>/dev/null || true; }

# CPU ticks (utime+stime) summed over pids.
ticks() {
  local t=0
  for p in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo $t
}

# wrk run: prints "req/s cpu_us_per_request"
measure() {  # port conns pids...
  local port=$1 conns=$2
  shift 2
  local hz
  hz=$(getconf CLK_TCK)
  local t0 t1 out
  t0=$(ticks "$@")
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${SECS}s" "http://127.0.0.1:$port/" 2>&1)
  t1=$(ticks "$@")
  local reqs rps
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  awk -v r="$rps" -v n="$reqs" -v d=$((t1 - t0)) -v hz="$hz" \
    'BEGIN { printf "%10.0f %8.2f\n", r, (n > 0 ? d * 1e6 / hz / n : 0) }'
}

pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }

# Opens N keep-alive connections, each sends one GET / and reads the answer, then holds them
# until stdin closes. Prints "ready" when all are open.
cat >"$TMP/idle.py" <<'EOF'
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
EOF

idle_pss() {  # port pid -> bytes per idle connection
  local port=$1 pid=$2 before after
  sleep 0.5
  before=$(pss_kb "$pid")
  coproc IDLE { taskset -c 1 python3 "$TMP/idle.py" "$port" 10000; }
  read -r _ <&"${IDLE[0]}"
  sleep 1
  after=$(pss_kb "$pid")
  exec {IDLE[1]}>&-
  wait "$IDLE_PID" 2>/dev/null || true
  awk -v a="$after" -v b="$before" \
    'BEGIN { printf "%.0f bytes per connection (PSS %d KiB before, %d KiB after)", (a - b) * 1024 / 10000, b, a }'
}

echo "== GET / (wrk -t1 -d${SECS}s; server on core 0, wrk on core 1) — preliminary, shared machine"
printf "%7s | %10s %8s | %10s %8s | %6s %6s\n" conns "nginx r/s" "µs/req" "ours r/s" "µs/req" "r/s×" "cpu×"
start_nginx
start_ours
for c in 10 100 1000 10000; do
  read -r nr nc <<<"$(measure $NGINX_PORT $c $(nginx_pids))"
  read -r orr oc <<<"$(measure $OURS_PORT $c $OURS)"
  awk -v c=$c -v nr="$nr" -v nc="$nc" -v orr="$orr" -v oc="$oc" 'BEGIN {
    printf "%7d | %10.0f %8.2f | %10.0f %8.2f | %6.2f %6.2f\n", c, nr, nc, orr, oc, orr / nr, oc / nc }'
done

echo "== PSS per idle keep-alive connection at 10,000 connections"
worker=$(pgrep -P "$(cat "$TMP/nginx.pid")")
echo "nginx worker: $(idle_pss $NGINX_PORT "$worker")"
stop_ours
start_ours
echo "ours (evented, epoll): $(idle_pss $OURS_PORT "$OURS")"
stop_ours

echo "== 10 busy wrk clients while 10,000 idle connections stay open"
for poller in epoll poll; do
  start_ours --poller "$poller"
  coproc IDLE { taskset -c 1 python3 "$TMP/idle.py" $OURS_PORT 10000; }
  read -r _ <&"${IDLE[0]}"
  read -r rps cpu <<<"$(measure $OURS_PORT 10 $OURS)"
  echo "--poller $poller: $rps req/s, $cpu µs CPU/request"
  exec {IDLE[1]}>&-
  wait "$IDLE_PID" 2>/dev/null || true
  stop_ours
done
