#pragma once
// Scenarios of `shootout run`: behaviour over time and under a fixed rate, beside the sweep
// over connection counts (sweep.hpp). Each writes its own part of results.json
// (Results::scenarios[name]), its graphs and its section of report.md.
//
//   stall       `--scenario stall`: N clients loop on GET / while one more client sends
//               GET /cpu?us=500000 once a second, for evented inline and --offload-cpu,
//               threaded, coroutine inline and --offload-cpu, uring. Every GET / answered in
//               the window is kept with its completion time (loadgen/timeline.hpp); the graph
//               is GET / latency over time with the burns shaded, and the figure is the p99 of
//               the GET / requests in flight during a burn.
//   rate sweep  `--rate-sweep`: at one N per server, a short closed loop finds saturation,
//               then constant-rate runs from 10% to 150% of it give the coordinated-omission-
//               corrected p50/p99/p99.9 against offered load: the hockey stick.
//   wait        `--scenario wait`: an ordinary sweep of `--path /sleep?ms=20` over N = 10 ...
//               10,000 (cli.cpp sets the defaults); its extra graphs (req/s with Little's law
//               N / 20 ms, memory, threads and processes, each server's end marked with the
//               reason) come from the points (draw_wait_graphs).
//
// Threads: run_stall and run_rate_sweep run on the caller's thread (the load generator and the
// stall's burner start their own); `stop` may be set from any thread and is read between runs.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "results.hpp"
#include "sweep.hpp"
#include "timeline.hpp"

namespace shootout::runner {

class Progress;

// ---- stall -----------------------------------------------------------------------------

struct StallVariant {
  std::string label;              // "evented inline", "evented offload", ...
  std::string model;              // the --model
  std::vector<std::string> args;  // extra serve flags: {"--offload-cpu"}
};
// The variants of the models in `models` (the order above; models with no variant are left
// out, and said by the caller).
std::vector<StallVariant> stall_variants(const std::vector<std::string>& models);

struct StallOptions {
  std::chrono::microseconds burn{500'000};  // GET /cpu?us=...
  std::chrono::milliseconds every{1'000};   // one burn started per interval (none overlap)
};

// A burn as the burning client saw it: sent at `sent_ns`, answered at `done_ns` (steady_clock,
// as TimelineEntry::done_ns); done_ns 0 if no answer came back.
struct BurnRecord {
  std::int64_t sent_ns = 0, done_ns = 0;
  int status = 0;
  std::string error;
};

// The stall's figures from one variant's timeline and burns (pure; the test feeds it by hand
// too). A GET / is "during a burn" when its life [sent, done] overlaps the burn's
// [sent, answered] (a burn with no answer: to the end of the timeline). "held across": issued
// in the first half of a burn and answered after its midpoint, which no GET / can be on a
// server whose only thread burns; "answered inside": issued and answered in the second half,
// which only a server that keeps serving during the burn can do. Times in the JSON are
// seconds from the first GET / sent in the window.
nlohmann::json analyse_stall(const std::vector<load::TimelineEntry>& timeline,
                             const std::vector<BurnRecord>& burns);

void run_stall(const SweepConfig& c, const StallOptions& o, Results& results,
               const std::atomic<bool>& stop, Progress& progress,
               const std::function<void()>& on_variant);

// ---- rate sweep ------------------------------------------------------------------------

// Offered load as fractions of the closed loop's saturation.
const std::vector<double>& rate_fractions();

void run_rate_sweep(const SweepConfig& c, Results& results, const std::atomic<bool>& stop,
                    Progress& progress, const std::function<void()>& on_point);

// ---- graphs and report -----------------------------------------------------------------

// The scenarios' data files (under dir/graphs/data/) and their part of plot.gp: stall,
// rate-sweep and, for a sweep of /sleep, wait-rps, wait-memory and wait-tasks (each as .svg and
// `png_terminal`). `subtitle` goes under every title. "" when there is nothing to draw.
std::string scenario_graphs(const std::string& dir, const Results& r,
                            const std::string& png_terminal, const std::string& subtitle);
// Their sections of report.md ("" if none).
std::string scenario_report(const Results& r);
// The sleep of a /sleep?ms=N path in ms, or 0.
double sleep_ms_of(const std::string& path);

}  // namespace shootout::runner
