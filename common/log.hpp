#pragma once
// Diagnostics on stderr, one line each, prefixed with the program and pid. Any thread.
// RateLimit drops repeats of the same call site within a second (EMFILE storms, failed forks
// at thousands per second) and says how many it dropped.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>

namespace shootout {

template <typename... Args>
void log_line(fmt::format_string<Args...> f, Args&&... args) {
  std::string line = fmt::format("shootout[{}]: ", ::getpid());
  fmt::format_to(std::back_inserter(line), f, std::forward<Args>(args)...);
  line += '\n';
  // One write(2) so lines from several threads or processes do not interleave.
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

// Rate limiter for one call site: `static RateLimit rl; if (rl.allow()) log_line(...)`.
class RateLimit {
 public:
  // Returns true at most once per second; counts the calls it refused in between.
  bool allow(std::uint64_t* dropped = nullptr) {
    auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto last = last_.load(std::memory_order_relaxed);
    if (now - last < 1'000'000'000 || !last_.compare_exchange_strong(last, now)) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (dropped) *dropped = dropped_.exchange(0);
    return true;
  }

 private:
  std::atomic<std::int64_t> last_{-2'000'000'000};
  std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace shootout
