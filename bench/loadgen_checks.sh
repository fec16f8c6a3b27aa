#!/usr/bin/env bash
# Our load generator checked against independent instruments, three ways (issue #16, item 7;
# results in docs/RESULTS.md):
#   1. count:  its count of answers equals the server's own count. The evented server (core 0)
#              writes its request counter to --stats-file when it stops; `shootout load`
#              (core 1, closed loop, no warm-up) reports responses_total, every answer of the
#              run. The server may count a few more: requests it answered while the load
#              generator was closing (at most one per connection).
#   2. sleep:  against /sleep?ms=20 at 50 connections (the threaded server, whose sleeps are
#              exact) the p50 it measures is within 5% of 20 ms (the server cannot answer
#              sooner; the wake-up, the loopback and the load generator add the rest), with
#              wrk's p50 beside it.
#   3. wrk:    beside wrk on the same target (the evented server, then nginx), alternating
#              rounds: req/s and p50 of each, and their ratios. wrk is a reference, not the truth.
#
#   bench/loadgen_checks.sh [-b build] [-d SECONDS] [-r ROUNDS]     (defaults: build, 5, 3)
# Needs nginx, wrk, taskset. Load goes to 127.0.0.1 only.
set -euo pipefail
build=build secs=5 rounds=3
while getopts "b:d:r:" opt; do
  case $opt in
    b) build=$OPTARG ;;
    d) secs=$OPTARG ;;
    r) rounds=$OPTARG ;;
    *) echo "usage: $0 [-b build] [-d seconds] [-r rounds]" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(realpath "$here/$build/shootout")
[[ -x $BIN ]] || { echo "no $BIN: build first" >&2; exit 1; }
for tool in /usr/sbin/nginx wrk taskset; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
source "$here/bench/lib.sh"
bench_init

json_num() {  # KEY: that top-level number of the JSON on stdin
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
load_json() {  # URL CONNS: one closed-loop run of ours on core 1, its JSON
  taskset -c 1 "$BIN" load -t1 -c"$2" -d"${secs}s" --json "$1"
}
p50_ms() { python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_us"]["p50"] / 1000)'; }
# wrk's p50, in ms, from --latency's distribution ("50%  1.23ms" / "850.00us" / "1.01s").
wrk_p50_ms() {
  awk '$1 == "50%" { v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[a-z]+$/, "", v);
        print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : v) }'
}

echo "# loadgen checks: $(date -u +%FT%TZ), commit $(git -C "$here" rev-parse --short HEAD)," \
  "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), -d ${secs}s"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. count
stats=$BENCH_TMP/stats.json
start_shootout --model evented --stats-file "$stats"
out=$(load_json "http://127.0.0.1:$PORT/" 50)
stop_pid "$PID"
ours=$(json_num responses_total <<<"$out")
server=$(json_num requests <"$stats")
echo "1. count at 50 connections: load generator $ours answers, server $server requests" \
  "(server - load generator = $((server - ours)); at most 50 may be in flight at the end)"

# 2. /sleep?ms=20 at 50 connections, against the threaded server: each of its threads sleeps in
#    nanosleep(2), which wakes within tens of µs (the evented loop's timers are kept in whole
#    milliseconds and its epoll_wait timeout too, so its answers come 1-2 ms late: a property
#    of that server, which wrk measures alike). wrk's p50 is printed beside ours.
start_shootout --model threaded
url=http://127.0.0.1:$PORT/sleep?ms=20
p50=$(load_json "$url" 50 | p50_ms)
w50=$(taskset -c 1 wrk -t1 -c50 -d"${secs}s" --latency "$url" | wrk_p50_ms)
stop_pid "$PID"
awk -v p="$p50" -v w="$w50" 'BEGIN { printf "2. /sleep?ms=20 at 50 connections (threaded server): p50 %.3f ms, %+.2f%% from 20 ms (%s); wrk %.3f ms\n",
  p, (p - 20) / 20 * 100, (p >= 20 && p <= 21) ? "within 5%" : "NOT within 5%", w }'

# 3. beside wrk, alternating rounds, on the evented server and on nginx
echo "3. beside wrk, -t1 each on core 1, 100 connections, $rounds alternating rounds:"
printf "   %-8s %5s %12s %12s %7s %10s %10s %7s\n" target round "wrk req/s" "ours req/s" ratio \
  "wrk p50" "ours p50" ratio
start_nginx
start_shootout --model evented
for target in evented nginx; do
  port=$([ "$target" = nginx ] && echo "$NGINX_PORT" || echo "$PORT")
  url=http://127.0.0.1:$port/
  for r in $(seq "$rounds"); do
    w=$(taskset -c 1 wrk -t1 -c100 -d"${secs}s" --latency "$url")
    w_rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$w")
    w_p50=$(wrk_p50_ms <<<"$w")
    o=$(load_json "$url" 100)
    o_rps=$(json_num requests_per_s <<<"$o")
    o_p50=$(p50_ms <<<"$o")
    awk -v t="$target" -v r="$r" -v wr="$w_rps" -v orr="$o_rps" -v wp="$w_p50" -v op="$o_p50" \
      'BEGIN { printf "   %-8s %5d %12.0f %12.0f %7.2f %8.3fms %8.3fms %7.2f\n", t, r, wr, orr,
               orr / wr, wp, op, op / wp }'
  done
done
