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
// (docs/LOADGEN.md, "How precise").
//
// The reap log. The sampler reads the tree's live processes from /proc and then asks for the
// report, so a child reaped in between was read in /proc and is in RUSAGE_CHILDREN too. With a
// child exiting every millisecond (forked, Connection: close) a pass with no reap in it was
// rarely found, and a pass that counted a child twice (or, in the other order, not at all)
// made the window's CPU more than the CPUs could give. So whoever reaps uses wait4() and hands
// the child's own rusage to note_reaped(); the report lists the reaps of the last
// kReapLogSeconds with their time, and the sampler takes each child the log says was reaped
// after its /proc pass began from the report alone (docs/LOADGEN.md, "How precise").
#include <sys/resource.h>
#include <sys/types.h>

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

// Records a child just reaped by wait4() with its rusage. Takes a mutex, allocates nothing (a
// fixed ring of kReapLogSize). The caller must not reap while a report is being made
// (stats_json) on another thread: the forked model reaps and reports on its control thread
// under one mutex, the --workers master on its loop thread.
void note_reaped(pid_t pid, const rusage& usage);
inline constexpr std::size_t kReapLogSize = 4096;
inline constexpr int kReapLogSeconds = 10;

// One JSON object: pid, model, counters, rusage self and children (CPU µs, context switches,
// max RSS), and "reaped": {"total", "complete_since_ns", "recent": [[pid, monotonic_ns,
// utime_us, stime_us, nvcsw, nivcsw], ...]}, every reap at or after complete_since_ns (the
// last kReapLogSeconds, or since the ring last overwrote an entry). Any thread.
std::string stats_json(const std::string& model);

// Writes stats_json() to `path` atomically (temporary file + rename). Any thread; returns false
// and leaves the old file on failure.
bool write_stats_file(const std::string& path, const std::string& model);

}  // namespace shootout
