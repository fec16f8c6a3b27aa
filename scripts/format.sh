#!/usr/bin/env bash
# The project's C++ style (.clang-format: Google's, at 100 columns), applied or checked with
# Debian's clang-format (installed by scripts/setup.sh).
#
#   scripts/format.sh          rewrites every C++ file git tracks, in place
#   scripts/format.sh --check  changes nothing; prints where each file differs and exits 1 if any
#                              does (CI's stage "format")
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
case "${1:-}" in
  --check) check=true ;;
  '') ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
command -v clang-format >/dev/null || bash scripts/setup.sh --no-build

mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h')
if ! $check; then
  clang-format -i "${files[@]}"
  echo "format: ${#files[@]} files formatted ($(clang-format --version))"
  exit 0
fi
if clang-format --dry-run --Werror "${files[@]}" 2>"${TMPDIR:-/tmp}/format-check.$$"; then
  rm -f "${TMPDIR:-/tmp}/format-check.$$"
  echo "format: ${#files[@]} files follow .clang-format"
  exit 0
fi
head -60 "${TMPDIR:-/tmp}/format-check.$$"
mapfile -t bad < <(grep -oE '^[^:]+\.(cpp|hpp|h):' "${TMPDIR:-/tmp}/format-check.$$" | sort -u | tr -d :)
rm -f "${TMPDIR:-/tmp}/format-check.$$"
echo "format: ${#bad[@]} files differ from .clang-format: ${bad[*]}"
echo "format: run 'bash scripts/format.sh' and commit the result"
exit 1
