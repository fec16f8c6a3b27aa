#pragma once
// What every blocking-accept model does when accept(2) fails for want of resources (EMFILE,
// ENFILE, ENOBUFS, ENOMEM): leave the connection in the kernel's backlog, log (at most once a
// second), count an error, and wait before trying again. The wait doubles from 10 ms to 500 ms
// while the failures go on and starts again at 10 ms after an accept succeeds: a fixed 10 ms
// made a pool of 256 accepting threads try 25,600 times a second (15% of a core) while out of
// descriptors. The evented model does not wait at all: it sheds with a spare descriptor and
// pauses the listener on its timer (models/evented).
//
// Threads: any thread may call every member; one object is shared by all the accepters of a
// server. The caller does the waiting (a thread sleep, or a fiber sleep that lets the thread
// serve its connections meanwhile), for the time next_wait() returns.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "log.hpp"
#include "stats.hpp"

namespace shootout {

// True if accept(2) failed for want of descriptors or memory: worth waiting for, not an end.
inline bool accept_starved(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

class AcceptBackoff {
 public:
  // After a failed accept with errno `err` (accept_starved(err)): logs, counts, and returns how
  // long to wait before the next try.
  std::chrono::milliseconds next_wait(int err) {
    int wait = wait_ms_.load(std::memory_order_relaxed);
    wait = wait == 0 ? kFirstMs : std::min(wait * 2, kMostMs);
    wait_ms_.store(wait, std::memory_order_relaxed);
    std::uint64_t dropped = 0;
    if (log_.allow(&dropped))
      log_line("accept: {}; retrying in {} ms ({} more not logged)", std::strerror(err), wait,
               dropped);
    counters().errors.fetch_add(1, std::memory_order_relaxed);
    return std::chrono::milliseconds(wait);
  }
  // After a successful accept.
  void reset() {
    if (wait_ms_.load(std::memory_order_relaxed) != 0) wait_ms_.store(0, std::memory_order_relaxed);
  }

 private:
  static constexpr int kFirstMs = 10, kMostMs = 500;
  std::atomic<int> wait_ms_{0};
  RateLimit log_;
};

}  // namespace shootout
