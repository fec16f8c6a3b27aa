#pragma once
// Per-request completion timestamps and latencies, for pictures of latency over time (the
// stall scenario of `shootout run --scenario stall`): a histogram says how bad the tail is,
// a timeline says *when* it happened, e.g. every request held while an event loop burns the
// CPU for half a second.
//
// Off unless LoadConfig::timeline_max > 0; then each load thread keeps, in its WorkerStats, the
// first `timeline_max` responses completed inside the window (bounded memory: 16 bytes each),
// and run_load() merges them, sorted by completion time, into LoadResult::timeline. Not in
// LoadResult::to_json() (it can hold a million entries): the caller writes what it needs.
//
// Threads: a Timeline is filled by its worker's thread only and merged after the join.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace shootout::load {

struct TimelineEntry {
  // steady_clock time of the completion, ns since its epoch: comparable with timestamps the
  // caller takes itself with std::chrono::steady_clock (the stall's /cpu requests).
  std::int64_t done_ns = 0;
  // Latency in µs, as recorded in the histogram (rate mode: from the intended send time).
  float latency_us = 0;
  float actual_us = 0;  // from the actual send (the same as latency_us in closed mode)
};

class Timeline {
 public:
  void limit(std::size_t max) {
    max_ = max;
    entries_.reserve(std::min<std::size_t>(max, 1 << 16));
  }
  bool on() const { return max_ > 0; }
  // Hot path: one push while under the bound; `dropped` counts the rest.
  void add(std::chrono::steady_clock::time_point done, double latency_us, double actual_us) {
    if (entries_.size() >= max_) {
      ++dropped_;
      return;
    }
    entries_.push_back(
        {std::chrono::duration_cast<std::chrono::nanoseconds>(done.time_since_epoch()).count(),
         static_cast<float>(latency_us), static_cast<float>(actual_us)});
  }
  // Appends `other` (another thread's, after the join) and keeps the whole sorted by time.
  void merge(const Timeline& other);
  const std::vector<TimelineEntry>& entries() const { return entries_; }
  std::uint64_t dropped() const { return dropped_; }

 private:
  std::size_t max_ = 0;
  std::vector<TimelineEntry> entries_;
  std::uint64_t dropped_ = 0;
};

}  // namespace shootout::load
