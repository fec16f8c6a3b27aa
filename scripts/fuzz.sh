#!/usr/bin/env bash
# Builds the libFuzzer target fuzz/http_session_fuzz with clang (build-fuzz/) and runs it for a
# bounded time on the seed corpus fuzz/corpus/ with the dictionary fuzz/http.dict.
# Usage: scripts/fuzz.sh [SECONDS]      (default 60; FUZZ_SECONDS works too)
# Exits non-zero on a crash, a broken invariant, a hang (-timeout) or running out of memory;
# the input is then in build-fuzz/artifacts/ (docs/SANITIZERS.md: how it becomes a test).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-60}}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }

cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSHOOTOUT_FUZZ=ON -DSHOOTOUT_TESTS=OFF -DSHOOTOUT_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target http_session_fuzz

# New inputs go to build-fuzz/corpus (the first directory), never into the repository's seeds.
mkdir -p build-fuzz/corpus build-fuzz/artifacts
rm -f build-fuzz/artifacts/*
export UBSAN_OPTIONS=print_stacktrace=1
rc=0
build-fuzz/fuzz/http_session_fuzz -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=4096 -dict=fuzz/http.dict -artifact_prefix=build-fuzz/artifacts/ \
  -print_final_stats=1 build-fuzz/corpus fuzz/corpus 2>build-fuzz/fuzz.log || rc=$?
grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::new_units_added' build-fuzz/fuzz.log || true
if [ "$rc" -ne 0 ]; then
  tail -n 80 build-fuzz/fuzz.log
  echo "fuzz: FAILED (exit $rc); the input is in build-fuzz/artifacts/:"
  ls -l build-fuzz/artifacts/
  exit 1
fi
echo "fuzz: ran ${seconds}s, no crash"
