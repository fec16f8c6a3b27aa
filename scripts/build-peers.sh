#!/usr/bin/env bash
# Builds the compiled peers of `shootout run --peers` (runner/peers/go, runner/peers/tokio) with
# Debian's toolchains, into OUTDIR (the CMake target `peers` calls it with build/peers):
#
#   OUTDIR/go-hello     runner/peers/go/hello.go, with /usr/bin/go (golang-go)
#   OUTDIR/tokio-hello  runner/peers/tokio, with /usr/bin/cargo and /usr/bin/rustc (cargo,
#                       rustc), OFFLINE, from the crates Debian installs under
#                       /usr/share/cargo/registry (librust-hyper-dev, librust-tokio-dev)
#
# Each binary has a NAME.version beside it: the toolchain (and crates) it was built with, which
# `shootout run` records with the results.
#
# Usage: scripts/build-peers.sh OUTDIR [go|tokio ...]   (default: both)
#
# A missing toolchain or crate is a message and a skip (exit 0), never a failed build: the
# runner then reports that peer as not built, naming the package. Everything the toolchains
# write (GOCACHE, GOPATH, CARGO_HOME, CARGO_TARGET_DIR, Cargo.lock) stays in OUTDIR/../peers-work:
# HOME may be unset or read-only (CI), and the source tree is left as it is. Debian's binaries
# are named by path on purpose: a rustup cargo earlier on PATH is not what a fresh Debian 12
# machine has, nor what its registry's crates are packaged for.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)/runner/peers
[ $# -ge 1 ] || { echo "usage: $0 OUTDIR [go|tokio ...]" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
work=$(dirname "$out")/peers-work
shift
peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(go tokio)
mkdir -p "$work"

skip() {  # $1 = peer, $2 = why
  echo "peers: $1 not built: $2 (scripts/setup.sh installs it; then rebuild: cmake --build build)"
}

# Copies a file only when its content changed, so the toolchains' own up-to-date checks (file
# times) see an unchanged source as unchanged.
sync_file() {  # $1 = from, $2 = to
  mkdir -p "$(dirname "$2")"
  cmp -s "$1" "$2" 2>/dev/null || cp "$1" "$2"
}

build_go() {
  local go=/usr/bin/go
  [ -x "$go" ] || { skip go "golang-go is not installed ($go missing)"; return 0; }
  local dir=$work/go
  mkdir -p "$dir/cache" "$dir/path"
  sync_file "$src/go/go.mod" "$dir/src/go.mod"
  sync_file "$src/go/hello.go" "$dir/src/hello.go"
  # `go build` relinks every time; skip it when the binary is newer than its sources.
  # Touched when up to date, so a build system comparing times with the sources is satisfied.
  if [ -x "$out/go-hello" ] && [ -f "$out/go-hello.version" ] &&
    [ -z "$(find "$dir/src" -newer "$out/go-hello" -type f)" ]; then
    touch "$out/go-hello"
    return 0
  fi
  echo "peers: building go-hello with $($go version)"
  (cd "$dir/src" &&
    env GOCACHE="$dir/cache" GOPATH="$dir/path" GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local \
      GO111MODULE=on "$go" build -o "$out/go-hello.tmp" .) &&
    mv -f "$out/go-hello.tmp" "$out/go-hello" &&
    "$go" version >"$out/go-hello.version"
}

build_tokio() {
  local cargo=/usr/bin/cargo rustc=/usr/bin/rustc registry=/usr/share/cargo/registry
  [ -x "$cargo" ] || { skip tokio "cargo is not installed ($cargo missing)"; return 0; }
  [ -x "$rustc" ] || { skip tokio "rustc is not installed ($rustc missing)"; return 0; }
  local crate
  for crate in hyper-0.14 tokio-1 libc-0.2; do
    compgen -G "$registry/$crate.*" >/dev/null ||
      { skip tokio "librust-${crate%%-*}-dev is not installed (no $registry/$crate.*)"; return 0; }
  done
  local dir=$work/tokio
  mkdir -p "$dir/cargo-home"
  sync_file "$src/tokio/Cargo.toml" "$dir/src/Cargo.toml"
  sync_file "$src/tokio/src/main.rs" "$dir/src/src/main.rs"
  # crates-io replaced by Debian's directory registry; nothing is fetched.
  cat >"$dir/cargo-home/config.toml.new" <<EOF
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "$registry"

[net]
offline = true
EOF
  sync_file "$dir/cargo-home/config.toml.new" "$dir/cargo-home/config.toml"
  # The lock is against the registry's versions at the time: redone when Debian updates a crate.
  if [ -f "$dir/src/Cargo.lock" ] && [ "$registry" -nt "$dir/src/Cargo.lock" ]; then
    rm -f "$dir/src/Cargo.lock"
  fi
  (cd "$dir/src" &&
    env -u RUSTFLAGS -u CARGO_BUILD_TARGET -u RUSTUP_TOOLCHAIN PATH="/usr/bin:/bin:$PATH" \
      CARGO_HOME="$dir/cargo-home" CARGO_TARGET_DIR="$dir/target" RUSTC="$rustc" \
      RUSTDOC=/usr/bin/rustdoc "$cargo" build --release --offline --quiet) &&
    sync_file "$dir/target/release/tokio-hello" "$out/tokio-hello" &&
    chmod +x "$out/tokio-hello" && touch "$out/tokio-hello" || return 1
  local crates
  crates=$(awk '/^name = "(hyper|tokio)"$/ { n = $3; getline; gsub(/"/, "", n); gsub(/"/, "", $3);
                printf "%s%s %s", sep, n, $3; sep = ", " }' "$dir/src/Cargo.lock")
  echo "$("$rustc" --version), $("$cargo" --version); $crates" >"$out/tokio-hello.version.new"
  sync_file "$out/tokio-hello.version.new" "$out/tokio-hello.version"
  rm -f "$out/tokio-hello.version.new"
}

status=0
for p in "${peers[@]}"; do
  case $p in
    go) build_go || { echo "peers: go-hello failed to build" >&2; status=1; } ;;
    tokio) build_tokio || { echo "peers: tokio-hello failed to build" >&2; status=1; } ;;
    *) echo "$0: unknown peer $p (go, tokio)" >&2; exit 2 ;;
  esac
done
exit "$status"
