// build/shootout-bench: the micro-benchmarks behind docs/BENCH.md.
//
// Our flags come first and are removed before Google Benchmark sees the rest:
//   --preset=full   (default) the real sizes; a few minutes
//   --preset=ci     every benchmark once, small sizes, 10 ms minimum time; seconds
// Everything else is Google Benchmark's (--benchmark_filter, --benchmark_format=json,
// --benchmark_out=FILE, --benchmark_out_format=json, --benchmark_repetitions, ...).
//
// Order matters: RLIMIT_NOFILE is raised and the clocks are calibrated before registration,
// because the poller sizes and the cycle counters depend on them.
#include <fmt/core.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "bench_util.hpp"

namespace {

using shootout::bench::Preset;

// Up to the hard limit: the poller benchmark registers 10,000 descriptors.
rlim_t raise_nofile_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  getrlimit(RLIMIT_NOFILE, &lim);
  return lim.rlim_cur;
}

void print_our_usage() {
  std::fputs(
      "shootout-bench [--preset=full|ci] [Google Benchmark flags]\n"
      "  --preset=full  the real sizes (default; a few minutes)\n"
      "  --preset=ci    every benchmark once with small sizes (seconds)\n"
      "  e.g. --benchmark_filter=ladder --benchmark_out=bench.json --benchmark_out_format=json\n\n",
      stdout);
}

}  // namespace

int main(int argc, char** argv) {
  namespace sb = shootout::bench;
  Preset preset;
  std::vector<char*> args{argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--preset=ci") {
      preset.ci = true;
    } else if (a == "--preset=full") {
      preset.ci = false;
    } else if (a.substr(0, 9) == "--preset=") {
      std::fprintf(stderr, "error: unknown preset '%s' (full or ci)\n", argv[i] + 9);
      return 2;
    } else {
      if (a == "--help" || a == "-h") print_our_usage();
      args.push_back(argv[i]);
    }
  }
  args.push_back(nullptr);

  rlim_t nofile = raise_nofile_limit();
  sb::Clocks clocks = sb::calibrate_clocks();
  sb::set_clocks(clocks);
  benchmark::AddCustomContext("preset", preset.ci ? "ci" : "full");
  benchmark::AddCustomContext("nofile_limit", std::to_string(nofile));
  benchmark::AddCustomContext("tsc_ghz", fmt::format("{:.3f}", clocks.tsc_ghz));
  benchmark::AddCustomContext("core_ghz", fmt::format("{:.3f}", clocks.core_ghz));
  benchmark::AddCustomContext("cycles_per_op",
                              "ns_per_op * core_ghz (core clock from a chain of dependent adds)");

  sb::register_switch_benchmarks(preset);
  sb::register_spawn_benchmarks(preset);
  sb::register_memory_benchmarks(preset);
  sb::register_poller_benchmarks(preset);
  sb::register_ladder_benchmarks(preset);
  sb::register_handler_benchmarks(preset);
  sb::register_trace_benchmarks(preset);

  int n = static_cast<int>(args.size()) - 1;
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
