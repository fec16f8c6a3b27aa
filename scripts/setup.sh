#!/usr/bin/env bash
# Installs the Debian packages shootout needs (only those missing, after one apt-get update),
# then configures and builds Release into build/.
# Usage: scripts/setup.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake g++ pkg-config git ca-certificates
  libboost1.74-dev libboost-context1.74-dev libboost-fiber1.74-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libfmt-dev
  gnuplot-nox procps util-linux iproute2
  nginx-light apache2 wrk
  clang libclang-rt-dev llvm  # scripts/fuzz.sh (clang, libFuzzer) and sanitizer symbolizing
  clang-format                # scripts/format.sh (the style CI checks)
  liburing-dev                # the uring model (io_uring) and build/shootout-floor-uring
  openmpi-bin libopenmpi-dev  # several load processes: mpirun and build/shootout-mpi.so
  # The other runtimes' peers of `shootout run --peers` (runner/peers/): node.js, Go, hyper on
  # Tokio (built offline from Debian's packaged crates) and Ruby EventMachine.
  nodejs golang-go ruby ruby-eventmachine
  cargo rustc librust-hyper-dev librust-tokio-dev librust-libc-dev
  # The peer of --handler resp (runner/peers/redis.cpp), and redis-tools' redis-benchmark and
  # redis-cli (docs/RESULTS.md checks the load generator against redis-benchmark).
  redis-server redis-tools
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # policy-rc.d keeps the packaged nginx/apache services from starting: shootout starts its own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#PACKAGES[@]} packages present"
fi

[ "${1:-}" = "--no-build" ] && exit 0
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
# The programs only (and the compiled peers, unless -DSHOOTOUT_PEERS=OFF); scripts/test.sh
# builds the tests.
targets=(shootout shootout-bench)
grep -q '^SHOOTOUT_PEERS:BOOL=ON$' build/CMakeCache.txt && targets+=(peers)
cmake --build build -j"$(nproc)" --target "${targets[@]}"
echo "setup: built ${targets[*]} in build/"
