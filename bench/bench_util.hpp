#pragma once
// What every benchmark family shares: the preset, the clock calibration that turns nanoseconds
// into CPU cycles, per-operation counters, memory read from /proc, and CPU pinning.
//
// Threads: calibrate_clocks()/set_clocks() are called once by main() before any benchmark runs;
// everything else may be called from any thread afterwards (it reads only what main() set).
#include <benchmark/benchmark.h>
#include <sched.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace shootout::bench {

using Clock = std::chrono::steady_clock;

// Which sizes to register. full: the real measurement (a few minutes). ci: every benchmark
// once, with small sizes and a short minimum time, so the whole run takes seconds.
struct Preset {
  bool ci = false;
};

// Registers one benchmark and applies the preset to it (the short min time under ci).
benchmark::internal::Benchmark* add(const Preset& preset, const std::string& name,
                                    void (*fn)(benchmark::State&));
// Registers a benchmark that runs exactly one iteration whatever the preset (min time and a
// fixed iteration count cannot be combined).
benchmark::internal::Benchmark* add_once(const std::string& name, void (*fn)(benchmark::State&));

// The two clocks cycles are estimated from. tsc_ghz: rdtsc ticks per ns over a 50 ms
// steady_clock interval (the TSC runs at the nominal frequency whatever the core does).
// core_ghz: a chain of dependent adds (one cycle each) timed with the thread's CPU clock, the
// best of ten trials: the core's real clock while it runs (turbo included). Cycles use it.
struct Clocks {
  double tsc_ghz = 0;
  double core_ghz = 0;
};
Clocks calibrate_clocks();
void set_clocks(const Clocks& clocks);
double core_ghz();

// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID). Benchmarks that never block measure
// with it, so time stolen by other processes on this busy machine is not counted; benchmarks
// that block (threads, processes, I/O) measure wall time with Clock.
std::chrono::nanoseconds thread_cpu_now();

// Sets the counters ns_per_op and cycles_per_op from a wall-clock total over `ops` operations
// (what one operation is, the benchmark's name says: a one-way switch, a spawn, an access...).
void report_per_op(benchmark::State& state, Clock::duration total, double ops);

// For benchmarks of two threads handing work back and forth: the CPU time both threads spent
// (user + system, the switches included) per operation, as cpu_ns_per_op and
// cpu_cycles_per_op. On a busy machine the wall clock also counts the slices other processes
// ran in between; this does not.
void report_cpu_per_op(benchmark::State& state, std::chrono::nanoseconds both_threads, double ops);

// Sets a bytes-per-unit counter (shown with binary prefixes on the console).
void report_bytes(benchmark::State& state, const char* name, double bytes);

// Memory of a process from /proc/PID/smaps_rollup, in bytes (pid 0: this process).
// All zero if the file cannot be read (the process is gone, or no permission).
struct MemInfo {
  std::uint64_t rss = 0;
  std::uint64_t pss = 0;
  std::uint64_t private_bytes = 0;  // Private_Clean + Private_Dirty
};
MemInfo smaps_rollup(pid_t pid);
// VmPTE of /proc/PID/status: the page tables of the process, which no RSS/PSS figure counts.
std::uint64_t page_table_bytes(pid_t pid);
// Size of this process's address space (first field of /proc/self/statm).
std::uint64_t virtual_bytes_self();

// Pins the calling thread to one CPU for its lifetime; restores the previous mask after.
class PinToCpu {
 public:
  explicit PinToCpu(int cpu);
  ~PinToCpu();
  PinToCpu(const PinToCpu&) = delete;
  PinToCpu& operator=(const PinToCpu&) = delete;

 private:
  cpu_set_t saved_{};
  bool restore_ = false;
};

// Reads or writes exactly one byte, retrying on EINTR. False on any other failure or EOF.
bool write_byte(int fd);
bool read_byte(int fd);

// One registration function per family (each in its own file).
void register_switch_benchmarks(const Preset& preset);
void register_spawn_benchmarks(const Preset& preset);
void register_memory_benchmarks(const Preset& preset);
void register_poller_benchmarks(const Preset& preset);
void register_ladder_benchmarks(const Preset& preset);
void register_handler_benchmarks(const Preset& preset);
void register_trace_benchmarks(const Preset& preset);

}  // namespace shootout::bench
