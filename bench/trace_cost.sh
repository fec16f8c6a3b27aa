#!/usr/bin/env bash
# What `serve --trace` costs a loaded evented server: req/s and server CPU per request at 100
# connections, without and with --trace, alternating for ROUNDS rounds. Server on core 0, load
# generator on core 1 (docs/RESULTS.md's convention). Loopback only; each load run is bounded
# by -d.
# Usage: bash bench/trace_cost.sh [BUILD_DIR] [ROUNDS] [DURATION]
set -euo pipefail
build=${1:-build}
rounds=${2:-3}
duration=${3:-10s}
bin=$build/shootout
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

one() {  # one() LABEL [serve args...]: prints "LABEL req/s cpu_us_per_request"
  local label=$1
  shift
  taskset -c 0 "$bin" serve --model evented --port 0 --stats-file "$tmp/stats.json" "$@" \
    >"$tmp/out" 2>"$tmp/err" &
  local pid=$!
  local port=""
  for _ in $(seq 100); do
    port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$tmp/out" 2>/dev/null | sed 's/.*://') || true
    [[ -n $port ]] && break
    sleep 0.1
  done
  taskset -c 1 "$bin" load -c 100 -t 1 -d "$duration" "http://127.0.0.1:$port/" >"$tmp/load"
  kill -TERM "$pid"
  wait "$pid"
  python3 - "$label" "$tmp/stats.json" "$tmp/load" <<'PY'
import json, re, sys
label, stats, load = sys.argv[1:]
s = json.load(open(stats))
cpu = s["self"]["utime_us"] + s["self"]["stime_us"]
text = open(load).read()
m = re.search(r"Requests/sec:\s*([0-9.]+)", text)
rps = float(m.group(1)) if m else float("nan")
print(f"{label:8} {rps:10.0f} req/s  {cpu / max(s['requests'], 1):6.2f} us CPU/request  "
      f"({s['requests']} requests)")
PY
}

for r in $(seq "$rounds"); do
  one off
  one trace --trace "$tmp/trace.json" --trace-events 1000000
  ls -l "$tmp/trace.json" | awk '{print "         trace file " $5 " bytes"}'
done
