#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs each on the seed corpus
# fuzz/corpus/ with the dictionary fuzz/http.dict: fuzz/http_session_fuzz (the session against an
# independent parse) and fuzz/connection_fuzz (a whole connection through serve_connection()).
# Two modes:
#
#   scripts/fuzz.sh [SECONDS]   find new bugs: a random seed, for SECONDS per target (default 60;
#                               FUZZ_SECONDS works too). New inputs accumulate in
#                               build-fuzz/corpus/, so each run goes on from the last one.
#   scripts/fuzz.sh --ci        CI's verdict (also what CI=true with no SECONDS selects): every
#                               input in fuzz/corpus/ replayed, then a FIXED seed for a FIXED number
#                               of runs, starting from fuzz/corpus/ alone. The same commit always
#                               gets the same verdict, whatever the host's speed or load (a
#                               time-bounded or random-seed run fails at random). FUZZ_SEED,
#                               FUZZ_RUNS and FUZZ_CONN_RUNS override the defaults below (for a
#                               one-off run, not CI).
#
# Exits non-zero on a crash, a broken invariant, a hang (-timeout) or running out of memory;
# the input is then in build-fuzz/artifacts/ (docs/SANITIZERS.md: how it becomes a corpus entry
# and a regression test).
set -euo pipefail
cd "$(dirname "$0")/.."

# CI's fixed run: about 100 s of CPU, 100-110 s on this 2-vCPU host when idle (docs/SANITIZERS.md).
ci_seed=${FUZZ_SEED:-15}
ci_runs=${FUZZ_RUNS:-500000}
ci_conn_runs=${FUZZ_CONN_RUNS:-100000}  # fuzz/connection_fuzz: the whole connection

mode=random seconds=
case "${1:-}" in
  --ci) mode=ci ;;
  '') seconds=${FUZZ_SECONDS:-}
      if [ -z "$seconds" ] && [ "${CI:-}" = true ]; then mode=ci; fi ;;
  *) seconds=$1 ;;
esac
if [ "$mode" = random ]; then
  seconds=${seconds:-60}
  [[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS] | --ci" >&2; exit 2; }
fi
[[ $ci_seed =~ ^[1-9][0-9]*$ && $ci_runs =~ ^[1-9][0-9]*$ && $ci_conn_runs =~ ^[1-9][0-9]*$ ]] ||
  { echo "fuzz: FUZZ_SEED and FUZZ_RUNS must be positive numbers" >&2; exit 2; }

cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSHOOTOUT_FUZZ=ON -DSHOOTOUT_TESTS=OFF -DSHOOTOUT_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target http_session_fuzz connection_fuzz

mkdir -p build-fuzz/corpus build-fuzz/artifacts
rm -f build-fuzz/artifacts/*
export UBSAN_OPTIONS=print_stacktrace=1
common=(-timeout=10 -rss_limit_mb=2048 -max_len=65536 -len_control=0 -dict=fuzz/http.dict
        -artifact_prefix=build-fuzz/artifacts/ -print_final_stats=1)
# One target: NAME RUNS (CI mode) or NAME (random mode, for $seconds). Returns its exit status;
# its log is build-fuzz/NAME.log.
fuzz_target() {
  local name=$1 runs=${2:-} rc=0
  if [ "$mode" = ci ]; then
    rm -rf "build-fuzz/ci-corpus-$name" && mkdir -p "build-fuzz/ci-corpus-$name"
    echo "fuzz: CI mode, $name: the corpus, then seed $ci_seed for $runs runs"
    "${pin[@]}" "build-fuzz/fuzz/$name" -seed="$ci_seed" -runs="$runs" -reload=0 \
      "${common[@]}" "build-fuzz/ci-corpus-$name" fuzz/corpus 2>"build-fuzz/$name.log" || rc=$?
  else
    # New inputs go to build-fuzz/corpus (the first directory), never into the repository's seeds.
    "build-fuzz/fuzz/$name" -max_total_time="$seconds" "${common[@]}" \
      build-fuzz/corpus fuzz/corpus 2>"build-fuzz/$name.log" || rc=$?
  fi
  grep -E '^INFO: Seed:|^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs' "build-fuzz/$name.log" ||
    true
  grep -E '^stat::(number_of_executed_units|new_units_added)' "build-fuzz/$name.log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 80 "build-fuzz/$name.log"
    echo "fuzz: $name FAILED (exit $rc); the input is in build-fuzz/artifacts/:"
    ls -l build-fuzz/artifacts/
    echo "fuzz: replay it with: build-fuzz/fuzz/$name build-fuzz/artifacts/FILE"
    if [ "$mode" = ci ]; then
      echo "fuzz: 'bash scripts/fuzz.sh --ci' fails the same way again (seed $ci_seed, $runs runs)"
    fi
  fi
  return "$rc"
}

t0=$SECONDS
if [ "$mode" = ci ]; then
  # A fixed seed alone does not make a fixed run; what else libFuzzer's choices depend on is
  # pinned too (docs/SANITIZERS.md, "Fuzzing in CI"):
  # - new inputs go to a directory emptied first (libFuzzer writes to the first one), never
  #   into the repository's seeds and never carried over from an earlier run; -reload=0: no
  #   timed rescans of it;
  # - addresses: UBSan's vptr check hashes each object's vtable address into a small cache, so
  #   which checks miss (coverage) and the values compared (libFuzzer's compare tables) follow
  #   the address layout. setarch -R turns address randomisation off for the fuzzer, and env -i
  #   gives it the same environment (the top of its stack) on every host and shell;
  # - time: the targets freeze the handler's clock (fuzz/http_session_fuzz.cpp).
  pin=(env -i PATH=/usr/bin:/bin LANG=C UBSAN_OPTIONS=print_stacktrace=1)
  if setarch "$(uname -m)" -R true 2>/dev/null; then
    pin+=(setarch "$(uname -m)" -R)
  else
    echo "fuzz: WARNING: cannot turn address randomisation off here (setarch -R);" \
         "this run may differ from another run of the same commit" >&2
  fi
  fuzz_target http_session_fuzz "$ci_runs" || exit 1
  fuzz_target connection_fuzz "$ci_conn_runs" || exit 1
  echo "fuzz: CI mode, seed $ci_seed, $ci_runs + $ci_conn_runs runs in $((SECONDS - t0)) s: no crash"
else
  fuzz_target http_session_fuzz || exit 1
  fuzz_target connection_fuzz || exit 1
  echo "fuzz: ran ${seconds}s per target (random seed), no crash"
fi
