#pragma once
// What the fuzz targets share: the frozen clock, the handler's small limits, and how a broken
// invariant is reported. Include it from exactly one file per target (it defines time()).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string_view>

#include "handler.hpp"

// The handler's only clock is time(), read for each response's Date header (its text is cached
// per second: common/http_handler.cpp). The targets replace it with a frozen instant, so one
// input runs the same code every time: with the real clock, the cache's rebuild ran in whichever
// input a second ticked, that changed the hit counts libFuzzer takes for coverage, and so which
// inputs it kept, and a fixed seed (scripts/fuzz.sh --ci) did not give a fixed run. (libFuzzer
// itself measures time with std::chrono, not time().)
extern "C" std::time_t time(std::time_t* t) noexcept {
  constexpr std::time_t kFrozen = 1'795'000'000;  // Wed, 18 Nov 2026 11:06:40 GMT
  if (t != nullptr) *t = kFrozen;
  return kFrozen;
}

namespace shootout::fuzz {

// Small limits, so the fuzzer reaches 431, 413 and the /bytes chunking with short inputs.
constexpr std::size_t kHeaderLimit = 1024;
constexpr std::uint64_t kBodyLimit = 2048;
constexpr std::uint64_t kMaxBytes = 200'000;  // largest /bytes?n= (more than three chunks)
constexpr std::uint64_t kMaxFile = 4096;
constexpr const char* kRoot = "/fuzz-root";  // never opened: file work is faked

inline HandlerConfig config() {
  HandlerConfig c;
  c.header_limit = kHeaderLimit;
  c.body_limit = kBodyLimit;
  c.file_root = kRoot;
  c.max_bytes = kMaxBytes;
  c.max_file = kMaxFile;
  return c;
}

// Reports a broken invariant of `target` and aborts, which libFuzzer reports as a crash.
[[noreturn]] inline void fail(const char* target, const char* what, std::string_view detail) {
  std::fprintf(stderr, "%s: invariant broken: %s\n%.*s\n", target, what,
               static_cast<int>(std::min<std::size_t>(detail.size(), 2000)), detail.data());
  std::abort();
}

}  // namespace shootout::fuzz
