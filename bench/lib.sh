# Shared pieces of the bench/*.sh scripts: source it, after `set -euo pipefail`.
#
#   bench_init             makes $BENCH_TMP and a trap that stops every server started here
#   start_nginx            nginx, one worker, access log off, GET / answered from memory
#                          (`return 200`, as our handler does), pinned to core 0, on a
#                          random port (another one if that is taken, up to 5 tries).
#                          Sets NGINX_PID (master) and NGINX_PORT.
#   nginx_pids             master and worker pids
#   start_shootout ARGS    build/shootout serve --port 0 ARGS on core 0. Sets PID and PORT.
#   start_listener CMD...  any server that prints "listening on HOST:PORT", started on core 0.
#                          Sets PID and PORT.
#   stop_pid PID           SIGTERM and wait
#   cpu_ns PID...          CPU time so far of every thread of those processes, in ns, from
#                          /proc/PID/task/*/schedstat (the scheduler's exact on-CPU time; the
#                          tick-sampled utime+stime of /proc/PID/stat undercount a server that
#                          runs in short bursts)
#   user_sys_ticks PID...  "utime stime" of those processes, in clock ticks (/proc/PID/stat:
#                          tick-sampled, so only their split is used, over whole runs)
#   sleeps PID...          voluntary context switches of their live threads: each is the
#                          server going to sleep (in epoll_wait, say) and being woken again
#   wrk_point PORT CONNS SECS PID...
#                          wrk -t1 on core 1 for SECS seconds; prints
#                          "req/s cpu_us user_us sys_us sleeps", all but req/s per request:
#                          cpu_us from cpu_ns of PID... over the run, split into user and
#                          kernel time in the proportion of their ticks
#   pss_kib PID            PSS of one process, KiB (/proc/PID/smaps_rollup)
#
# Needs nginx, wrk, taskset, curl. Load goes to 127.0.0.1 only.

BENCH_NOFILE=20000
BENCH_PIDS=()

bench_init() {
  BENCH_TMP=$(mktemp -d)
  trap bench_cleanup EXIT
  ulimit -n "$BENCH_NOFILE"
}

bench_cleanup() {
  local p
  for p in "${BENCH_PIDS[@]:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$BENCH_TMP"
}

# One try on a random port; returns 1 if nginx did not come up (say, the port was taken).
start_nginx_once() {
  # Below the ephemeral range (32768-60999 here), where wrk's TIME_WAIT sockets live.
  NGINX_PORT=$((10000 + RANDOM % 20000))
  cat >"$BENCH_TMP/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $BENCH_TMP/nginx.pid;
error_log $BENCH_TMP/nginx.err;
worker_rlimit_nofile $BENCH_NOFILE;
events { worker_connections $BENCH_NOFILE; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $BENCH_TMP; proxy_temp_path $BENCH_TMP; fastcgi_temp_path $BENCH_TMP;
  uwsgi_temp_path $BENCH_TMP; scgi_temp_path $BENCH_TMP;
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    location / { return 200 "Hello, World!"; }
  }
}
CONF
  taskset -c 0 /usr/sbin/nginx -p "$BENCH_TMP" -e "$BENCH_TMP/nginx.err" \
    -c "$BENCH_TMP/nginx.conf" 2>>"$BENCH_TMP/nginx.err" &
  NGINX_PID=$!
  local _
  for _ in $(seq 100); do
    kill -0 "$NGINX_PID" 2>/dev/null || return 1
    curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && return 0
    sleep 0.05
  done
  return 1
}

start_nginx() {
  local attempt
  for attempt in 1 2 3 4 5; do
    if start_nginx_once; then
      BENCH_PIDS+=("$NGINX_PID")
      return 0
    fi
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
  done
  echo "nginx did not start: $(cat "$BENCH_TMP/nginx.err" 2>/dev/null)" >&2
  return 1
}

nginx_pids() { echo "$NGINX_PID $(cat /proc/"$NGINX_PID"/task/*/children)"; }

start_shootout() { start_listener "$BIN" serve --port 0 "$@"; }

start_listener() {
  taskset -c 0 "$@" >"$BENCH_TMP/server.out" 2>&1 &
  PID=$!
  BENCH_PIDS+=("$PID")
  local _
  for _ in $(seq 400); do
    grep -q '^listening on' "$BENCH_TMP/server.out" 2>/dev/null && break
    sleep 0.05
  done
  PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$BENCH_TMP/server.out" | head -1)
  [[ -n $PORT ]] || { echo "server did not start: $(cat "$BENCH_TMP/server.out")" >&2; return 1; }
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

cpu_ns() {
  local t=0 p f
  for p in "$@"; do
    for f in /proc/"$p"/task/*/schedstat; do
      read -r ns _ <"$f" 2>/dev/null || continue
      t=$((t + ns))
    done
  done
  echo "$t"
}

user_sys_ticks() {
  local p
  for p in "$@"; do awk '{ print $14, $15 }' "/proc/$p/stat" 2>/dev/null || true; done |
    awk '{ u += $1; s += $2 } END { print u + 0, s + 0 }'
}

sleeps() {
  local p
  for p in "$@"; do cat /proc/"$p"/task/*/status 2>/dev/null || true; done |
    awk '/^voluntary_ctxt_switches/ { v += $2 } END { print v + 0 }'
}

wrk_point() {
  local port=$1 conns=$2 secs=$3
  shift 3
  local t0 t1 u0 s0 u1 s1 w0 w1 out reqs rps
  read -r u0 s0 < <(user_sys_ticks "$@")
  w0=$(sleeps "$@")
  t0=$(cpu_ns "$@")
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/" 2>&1 || true)
  t1=$(cpu_ns "$@")
  w1=$(sleeps "$@")
  read -r u1 s1 < <(user_sys_ticks "$@")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  awk -v r="${rps:-0}" -v n="${reqs:-0}" -v d=$((t1 - t0)) -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
    -v w=$((w1 - w0)) 'BEGIN {
      cpu = n > 0 ? d / 1000 / n : 0; user = u + s > 0 ? cpu * u / (u + s) : 0
      printf "%.0f %.2f %.2f %.2f %.4f\n", r, cpu, user, cpu - user, (n > 0 ? w / n : 0) }'
}

pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
