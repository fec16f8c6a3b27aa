#!/usr/bin/env bash
# The main command: set up (packages + Release build into build/), run the default shootout —
# our five models, the real nginx and Apache (prefork, worker, event), node.js and Go's net/http
# at 1 to 10,000 connections, server pinned to CPU 0 and load generator to CPU 1 — and print
# where the report is. Takes about 15 minutes on a 2-core machine (docs/RUNNER.md says why).
# The other runtimes' peers are one flag away: a --peers given here adds to the default list
# (`bash scripts/shootout.sh --peers node-cluster,go-2,tokio,tokio-mt,eventmachine`).
#
# Usage: scripts/shootout.sh [extra `shootout run` flags, e.g. --quick or --out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# The results folder: the caller's --out DIR (or --out=DIR) if given, else a new timestamped one.
out="" prev=""
for a in "$@"; do
  [ "$prev" = --out ] && out=$a
  case $a in --out=*) out=${a#--out=} ;; esac
  prev=$a
done
ours=()
[ -z "$out" ] && out="results/$(date +%Y%m%d-%H%M%S)" && ours=(--out "$out")
pin=()
[ "$(nproc)" -ge 2 ] && pin=(--pin)
status=0
build/shootout run --peers nginx,apache-prefork,apache-worker,apache-event,node,go "${pin[@]}" \
  "${ours[@]}" "$@" || status=$?
if [ -f "$out/report.md" ]; then
  echo
  echo "shootout: report at $out/report.md (graphs in $out/graphs/, data in $out/results.csv)"
fi
exit "$status"
