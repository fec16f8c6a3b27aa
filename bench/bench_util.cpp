#include "bench_util.hpp"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <string_view>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define SHOOTOUT_BENCH_HAVE_RDTSC 1
#endif

namespace shootout::bench {

namespace {

Clocks g_clocks;

// A short min time under ci: enough for a number, far too short for a good one.
constexpr double kCiMinTime = 0.01;

double measure_tsc_ghz() {
#ifdef SHOOTOUT_BENCH_HAVE_RDTSC
  auto t0 = Clock::now();
  std::uint64_t c0 = __rdtsc();
  while (Clock::now() - t0 < std::chrono::milliseconds(50)) {
  }
  std::uint64_t c1 = __rdtsc();
  auto ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  return static_cast<double>(c1 - c0) / ns;
#else
  return 0;
#endif
}

// 100 dependent adds per round: each needs the previous result, so a round takes 100 cycles
// on any core that adds in one cycle (every x86 since the Pentium 4).
double measure_core_ghz() {
#if defined(__x86_64__)
  constexpr int kRounds = 200'000;
  double best = 0;
  for (int trial = 0; trial < 10; ++trial) {
    std::uint64_t x = 0;
    auto t0 = thread_cpu_now();
    for (int i = 0; i < kRounds; ++i) asm volatile(".rept 100\n\taddq $1, %0\n\t.endr" : "+r"(x));
    auto ns = std::chrono::duration<double, std::nano>(thread_cpu_now() - t0).count();
    best = std::max(best, 100.0 * kRounds / ns);
  }
  return best;
#else
  return measure_tsc_ghz();
#endif
}

// The value of "Key:   123 kB" in a /proc file, in bytes; 0 if absent.
std::uint64_t proc_kb_field(const std::string& text, std::string_view key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0 || line.size() <= key.size() ||
        line[key.size()] != ':')
      continue;
    return std::stoull(line.substr(key.size() + 1)) * 1024;
  }
  return 0;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string proc_path(pid_t pid, const char* file) {
  return (pid == 0 ? std::string("/proc/self/") : "/proc/" + std::to_string(pid) + "/") + file;
}

}  // namespace

benchmark::internal::Benchmark* add(const Preset& preset, const std::string& name,
                                    void (*fn)(benchmark::State&)) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), fn);
  if (preset.ci) b->MinTime(kCiMinTime);
  return b;
}

benchmark::internal::Benchmark* add_once(const std::string& name, void (*fn)(benchmark::State&)) {
  return benchmark::RegisterBenchmark(name.c_str(), fn)->Iterations(1);
}

Clocks calibrate_clocks() { return Clocks{measure_tsc_ghz(), measure_core_ghz()}; }
void set_clocks(const Clocks& clocks) { g_clocks = clocks; }
double core_ghz() { return g_clocks.core_ghz; }

std::chrono::nanoseconds thread_cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

void report_per_op(benchmark::State& state, Clock::duration total, double ops) {
  if (ops <= 0) return;
  double ns = std::chrono::duration<double, std::nano>(total).count() / ops;
  state.counters["ns_per_op"] = benchmark::Counter(ns);
  state.counters["cycles_per_op"] = benchmark::Counter(ns * g_clocks.core_ghz);
}

void report_cpu_per_op(benchmark::State& state, std::chrono::nanoseconds both_threads, double ops) {
  if (ops <= 0) return;
  double ns = std::chrono::duration<double, std::nano>(both_threads).count() / ops;
  state.counters["cpu_ns_per_op"] = benchmark::Counter(ns);
  state.counters["cpu_cycles_per_op"] = benchmark::Counter(ns * g_clocks.core_ghz);
}

void report_bytes(benchmark::State& state, const char* name, double bytes) {
  state.counters[name] =
      benchmark::Counter(bytes, benchmark::Counter::kDefaults, benchmark::Counter::OneK::kIs1024);
}

MemInfo smaps_rollup(pid_t pid) {
  std::string text = slurp(proc_path(pid, "smaps_rollup"));
  MemInfo m;
  m.rss = proc_kb_field(text, "Rss");
  m.pss = proc_kb_field(text, "Pss");
  m.private_bytes = proc_kb_field(text, "Private_Clean") + proc_kb_field(text, "Private_Dirty");
  return m;
}

std::uint64_t page_table_bytes(pid_t pid) {
  return proc_kb_field(slurp(proc_path(pid, "status")), "VmPTE");
}

std::uint64_t virtual_bytes_self() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t pages = 0;
  in >> pages;
  return pages * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

PinToCpu::PinToCpu(int cpu) {
  restore_ = sched_getaffinity(0, sizeof saved_, &saved_) == 0;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(static_cast<std::size_t>(cpu), &one);
  sched_setaffinity(0, sizeof one, &one);
}

PinToCpu::~PinToCpu() {
  if (restore_) sched_setaffinity(0, sizeof saved_, &saved_);
}

bool write_byte(int fd) {
  char c = 'x';
  for (;;) {
    ssize_t n = ::write(fd, &c, 1);
    if (n == 1) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

bool read_byte(int fd) {
  char c;
  for (;;) {
    ssize_t n = ::read(fd, &c, 1);
    if (n == 1) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

}  // namespace shootout::bench
