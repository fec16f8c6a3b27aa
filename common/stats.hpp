#pragma once
// Server-side counters and the self-report the load generator's sampler reads.
//
// The counters live in one MAP_SHARED anonymous page mapped before any fork, so children of
// the forked model add to the same numbers as their parent; they are relaxed atomics, written
// from any thread of any process of the server.
//
// The report (write_stats_file) carries getrusage(RUSAGE_SELF), which sums every thread of the
// process including threads that have exited, and getrusage(RUSAGE_CHILDREN), which sums every
// child that has been reaped. /proc only shows what is alive, so this is how CPU time and
// context switches of exited threads and reaped children reach the sampler. Both hold the
// scheduler's exact run time (sum_exec_runtime, in µs here), not clock ticks: measured on this
// kernel, RUSAGE_CHILDREN after reaping 30 bursty children equalled the sum of the zombies'
// /proc/PID/schedstat to the microsecond, and their context switches to the unit
// (docs/LOADGEN.md, "How precise"). So the forked model needs nothing beyond reaping.
#include <atomic>
#include <cstdint>
#include <string>

namespace shootout {

struct ServerCounters {
  std::atomic<std::uint64_t> requests{0};     // responses started (HTTP) / chunks echoed (echo)
  std::atomic<std::uint64_t> connections{0};  // connections accepted
  std::atomic<std::uint64_t> errors{0};       // accept/fork/thread-creation failures
};

// The process-wide counters. First call maps them; call it before forking (serve does).
ServerCounters& counters();

// One JSON object: pid, model, counters, rusage self and children (CPU µs, context switches,
// max RSS). Any thread.
std::string stats_json(const std::string& model);

// Writes stats_json() to `path` atomically (temporary file + rename). Any thread; returns false
// and leaves the old file on failure.
bool write_stats_file(const std::string& path, const std::string& model);

}  // namespace shootout
