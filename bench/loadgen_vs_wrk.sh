#!/usr/bin/env bash
# Load generator against wrk, same run, same target: nginx with one worker pinned to core 0,
# the load generator (wrk -t1, then `shootout load -t1`) pinned to core 1, at 10, 100, 1000 and
# 10000 connections. Prints req/s of each, the ratio, each one's CPU time per request
# (user+sys of the load process over the run, from /usr/bin/time) and nginx's CPU time per
# request under each (master and worker's exact run time, schedstat, over the run). nginx is
# bench/lib.sh's: one worker, access log off, `return 200`.
#
#   [ENGINES="asio uring"] bench/loadgen_vs_wrk.sh [-d 5s] [-b build] [-r ROUNDS] [-c "10 100"]
#
# ENGINES: the load generator's engines to run beside wrk (`shootout load --engine E`; default
# "asio"), and "floor" for build/shootout-floor-load (the least a closed-loop client can spend
# per request: bench/floor_load_uring.cpp); each gets its own columns, its ratio to wrk and its
# CPU per request. An engine that
# cannot run here (io_uring disabled) is left out with its reason. Each round runs wrk, then
# ours on each engine; with ROUNDS > 1 (default 3) req/s is each one's best round (other work
# on the machine only ever slows a run down) and CPU per request its median over the rounds.
# Needs nginx (/usr/sbin/nginx), wrk, taskset, curl.
set -euo pipefail

duration=5s
build=build
rounds=3
conns="10 100 1000 10000"
while getopts "d:b:r:c:" opt; do
  case $opt in
    d) duration=$OPTARG ;;
    b) build=$OPTARG ;;
    r) rounds=$OPTARG ;;
    c) conns=$OPTARG ;;
    *) echo "usage: [ENGINES=\"asio uring\"] $0 [-d 5s] [-b build] [-r rounds] [-c \"10 100\"]" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
shootout=$here/$build/shootout
[[ -x $shootout ]] || { echo "no $shootout: build first" >&2; exit 1; }
for tool in /usr/sbin/nginx wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done

source "$here/bench/lib.sh"
bench_init
# 10,000 connections need that many descriptors on both sides.
if (( $(ulimit -n) < 10100 )); then echo "ulimit -n is $(ulimit -n): need 10100" >&2; exit 1; fi
start_nginx
url=http://127.0.0.1:$NGINX_PORT/
read -r -a nginx <<<"$(nginx_pids)"
worker_ns() { cpu_ns "${nginx[@]}"; }

# One run of a tool: prints "REQ_PER_S CPU_SECONDS REQUESTS".
run_wrk() {
  local c=$1 out ns0
  ns0=$(worker_ns)
  out=$( { /usr/bin/time -f "CPU %U %S" taskset -c 1 wrk -t1 -c"$c" -d"$duration" "$url"; } 2>&1)
  local rps reqs cpu
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk '/^CPU/ {print $2 + $3}' <<<"$out")
  echo "${rps:-0} ${cpu:-0} ${reqs:-0} $(( $(worker_ns) - ns0 ))"
}
floor_load=$here/$build/shootout-floor-load
run_load() {
  local c=$1 engine=$2 out ns0 cmd
  if [[ $engine == floor ]]; then
    cmd=("$floor_load" "$NGINX_PORT" "$c" "${duration%s}")
  else
    cmd=("$shootout" load --engine "$engine" -t1 -c"$c" -d"$duration" --json "$url")
  fi
  ns0=$(worker_ns)
  out=$( { /usr/bin/time -f "CPU %U %S" taskset -c 1 "${cmd[@]}"; } 2>&1)
  local rps reqs cpu
  # The first value of each key (shootout load's JSON spans lines, the floor's is one line).
  rps=$(grep -o '"requests_per_s": *[0-9.]*' <<<"$out" | head -1 | tr -dc '0-9.' || true)
  # responses_total: every answer of the run, as wrk's "requests in" counts them.
  reqs=$(grep -o '"responses_total": *[0-9]*' <<<"$out" | head -1 | tr -dc '0-9' || true)
  cpu=$(awk '/^CPU/ {print $2 + $3}' <<<"$out")
  echo "${rps:-0} ${cpu:-0} ${reqs:-0} $(( $(worker_ns) - ns0 ))"
}

# The engines asked for that can run here (a quick probe: --engine uring exits 2 with the
# reason where io_uring is unavailable).
read -r -a asked <<<"${ENGINES:-asio}"
engines=()
for e in "${asked[@]}"; do
  if [[ $e == floor ]]; then
    probe=("$floor_load" "$NGINX_PORT" 1 1)
    [[ -x $floor_load ]] || probe=(sh -c "echo no $floor_load: it is built only with liburing; exit 1")
    [[ ${duration%s} =~ ^[0-9]+$ ]] || probe=(sh -c "echo it runs whole seconds, not -d $duration; exit 1")
  else
    probe=("$shootout" load --engine "$e" -c1 -d100ms "$url")
  fi
  if why=$("${probe[@]}" 2>&1 >/dev/null); then
    engines+=("$e")
  else
    echo "engine $e left out: $why" >&2
  fi
done
(( ${#engines[@]} > 0 )) || { echo "no engine can run here" >&2; exit 1; }

# "a" beats "b" on req/s (the first of the four fields).
better() { awk -v a="$1" -v b="$2" 'BEGIN{split(a,x," ");split(b,y," ");print (x[1]>y[1])}'; }

echo "nginx 1 worker on core 0, load -t1 on core 1, -d $duration, $rounds round(s), $(nproc) cores,"
echo "engines: ${engines[*]}; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-8s %-6s %12s %12s %7s %11s %11s %9s %13s %13s\n" conns engine "wrk req/s" "load req/s" ratio \
  "wrk us/req" "load us/req" "CPU ×wrk" "nginx us/req" "nginx us/req"
printf "%-8s %-6s %12s %12s %7s %11s %11s %9s %13s %13s\n" "" "" "" "" "" "" "" "" "(wrk)" "(load)"
# CPU per request of one run ("REQ_PER_S CPU_SECONDS REQUESTS NGINX_NS"): the tool's, nginx's.
cpu_per_request() { awk '{ printf "%.4f %.4f\n", ($3 > 0 ? $2 * 1e6 / $3 : 0), ($3 > 0 ? $4 / 1e3 / $3 : 0) }' <<<"$1"; }
# The median of the numbers given (one per argument).
median() { printf "%s\n" "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
for c in $conns; do
  best_w="0 0 1 0"
  declare -A best_l=() cpu_l=() srv_l=() ratio_l=()
  cpu_w=() srv_w=()
  for e in "${engines[@]}"; do best_l[$e]="0 0 1 0"; done
  for round in $(seq "$rounds"); do
    w=$(run_wrk "$c")
    echo "  round $round, $c conns: wrk $w   (req/s cpu_s requests nginx_ns)" >&2
    [[ $(better "$w" "$best_w") == 1 ]] && best_w=$w
    read -r a b <<<"$(cpu_per_request "$w")"
    cpu_w+=("$a") srv_w+=("$b")
    for e in "${engines[@]}"; do
      l=$(run_load "$c" "$e")
      echo "  round $round, $c conns: load --engine $e $l" >&2
      [[ $(better "$l" "${best_l[$e]}") == 1 ]] && best_l[$e]=$l
      read -r a b <<<"$(cpu_per_request "$l")"
      cpu_l[$e]+="$a " srv_l[$e]+="$b "
      # its CPU per request over wrk's in the same round: the machine drifts between rounds
      ratio_l[$e]+="$(awk -v l="$a" -v w="${cpu_w[-1]}" 'BEGIN { print (w > 0 ? l / w : 0) }') "
    done
  done
  # req/s: the best round (other work only ever slows a run down). CPU per request: the median
  # over the rounds (the best round by req/s is not the cheapest, and one quiet round is luck).
  # CPU ×wrk: the median of each round's ratio to wrk's round just before it, which the
  # machine's drift over the minutes of a run moves far less than either median.
  read -r wr _ <<<"$best_w"
  for e in "${engines[@]}"; do
    read -r lr _ <<<"${best_l[$e]}"
    # shellcheck disable=SC2086  # the per-round lists split on spaces on purpose
    awk -v c="$c" -v e="$e" -v wr="$wr" -v lr="$lr" -v wc="$(median "${cpu_w[@]}")" \
        -v lc="$(median ${cpu_l[$e]})" -v wg="$(median "${srv_w[@]}")" \
        -v lg="$(median ${srv_l[$e]})" -v lw="$(median ${ratio_l[$e]})" 'BEGIN {
      printf "%-8s %-6s %12.0f %12.0f %7.2f %11.2f %11.2f %9.2f %13.2f %13.2f\n", c, e, wr, lr,
        (wr > 0 ? lr / wr : 0), wc, lc, lw, wg, lg }'
  done
  unset best_l cpu_l srv_l ratio_l
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
