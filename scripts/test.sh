#!/usr/bin/env bash
# The README's test command: installs any missing Debian packages, builds Release with the tests
# into build/, and runs every test (one ctest entry per test). Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSHOOTOUT_TESTS=ON >/dev/null
cmake --build build -j"$(nproc)"
# Tests hold thousands of connections: use the hard open-file limit.
ulimit -n "$(ulimit -Hn)"
cd build
ctest --output-on-failure -j2 --timeout 900
