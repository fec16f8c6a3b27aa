#pragma once
// What one sweep measured, point by point, and how it is written to and read back from
// results.json and results.csv.
//
// A point is one server (a model or a peer) at one connection count. With --repeat N it is
// measured N times, each time on a fresh server; the figures are the medians of the runs, and
// `rps_min`/`rps_max` and `p99_min_us`/`p99_max_us` give the spread. `runs` keeps every run's
// raw figures (the load generator's and the sampler's JSON).
//
// Plain data: owned by the sweep's thread, then read by the writers.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace shootout::runner {

struct Point {
  std::string server;  // "threaded", "nginx", "apache-event", ...
  std::string kind;    // "model" or "peer"
  int connections = 0;
  std::string status = "ok";       // ok | failed | skipped
  std::string reason;              // why failed or skipped
  std::vector<std::string> notes;  // caps, unclean stops, errors: said in the report
  int repeats = 0;                 // runs that produced figures

  // closed-loop window (medians over the runs)
  double window_s = 0;
  double rps = 0, rps_min = 0, rps_max = 0;
  std::uint64_t requests = 0, errors = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0, mean_us = 0;
  double p99_min_us = 0, p99_max_us = 0;

  // Concurrency reached (medians over the runs). The point is "at N" when at least
  // kAtNShare of its N connections were served inside the window (reached); otherwise its
  // figures are kept but drawn apart and labelled "reached K of N", and never ranked.
  std::uint64_t reached = 0;  // connections with a response inside the window
  bool at_n = false;
  double ramp_s = 0;               // time until all N had been answered once (or the bound)
  std::uint64_t ramp_reached = 0;  // connections answered once by then
  bool sampler_short = false;      // the server sampler covered < 90% of the window
  bool idle_at_n = false;          // the idle hold got kAtNShare of N connections answered
  // Not at N: the limit of this host that N is past, briefly ("pid_max 32768", "20000
  // descriptors"), drawn beside the point; "" when none is (the point fell short by itself).
  std::string stops_at;

  // the server over the window
  double server_cpu_us = 0, cpu_us_per_request = 0, server_cpu_cores = 0;
  // Server capacity: requests per second of server CPU, 1e6 / cpu_us_per_request. What the
  // server's CPU could serve, whatever the load generator managed to send (a load-generator-
  // bound point's req/s is the load generator's ceiling). NaN where the CPU figure is not valid.
  double capacity_rps = 0;
  double switches_per_request = 0, voluntary_per_request = 0, involuntary_per_request = 0;
  bool switches_complete = false;
  std::uint64_t processes_peak = 0, threads_peak = 0;
  double pss_load_mb = 0;  // peak PSS during the window

  // idle hold: N idle keep-alive connections held open
  double pss_baseline_mb = 0;  // before any connection
  double pss_idle_mb = 0;      // with the N connections idle
  double mem_per_conn_kb = 0;  // (pss_idle - pss_baseline) / connections held, never < 0
  std::uint64_t idle_opened = 0, idle_alive = 0;

  // idle hold, the kernel's side: what the kernel holds for the server beside its user-space
  // pages, measured at the same two moments as PSS. Page tables (VmPTE summed over the
  // processes), kernel stacks (threads x 16 KiB) and the server's own TCP sockets (the
  // sockets on its port: their objects plus the buffer memory charged to them). Per
  // connection held, each part never < 0 (a part that fell below its baseline counts 0 and
  // sets kernel_fell); NaN where not measured (sockets of a run without sock_diag).
  std::uint64_t threads_baseline = 0, threads_idle = 0, sockets_idle = 0;
  double kernel_baseline_mb = 0, kernel_idle_mb = 0;
  double sock_per_conn_kb = 0, pte_per_conn_kb = 0, stack_per_conn_kb = 0;
  double kernel_per_conn_kb = 0;  // the three parts' sum
  double whole_per_conn_kb = 0;   // mem_per_conn_kb + kernel_per_conn_kb
  bool kernel_fell = false;

  // the load generator over the window
  double loadgen_cpu_us = 0;
  double loadgen_cpu_cores = 0;  // CPU seconds per second of window
  int loadgen_threads = 1;
  bool loadgen_bound = false;

  nlohmann::json runs = nlohmann::json::array();

  bool ok() const { return status == "ok"; }
};

// The loadgen-bound rule: the load generator used at least this share of one core per thread
// during the window, so the number measured is (at least partly) its own ceiling.
constexpr double kLoadgenBoundShare = 0.90;

// The at-N rule: a point is measured at N connections when at least this share of them got a
// response inside the window.
constexpr double kAtNShare = 0.95;

struct Results {
  nlohmann::json meta;  // command line, machine, versions, configuration, timestamps
  std::vector<Point> points;
  bool interrupted = false;  // Ctrl-C: the points so far
  // The scenarios' own results (runner/scenario.hpp), by name: "stall", "rate_sweep". Their
  // schema is theirs; an ordinary sweep has none.
  nlohmann::json scenarios = nlohmann::json::object();
};

nlohmann::json to_json(const Point& p);
Point point_from_json(const nlohmann::json& j);
nlohmann::json to_json(const Results& r);
Results results_from_json(const nlohmann::json& j);

// The CSV columns, one row per point (no `runs`, notes joined with "; ").
std::string to_csv(const Results& r);

// Writes results.json and results.csv into dir (atomically: temporary file + rename).
// Throws std::runtime_error if the folder is not writable.
void write_results(const std::string& dir, const Results& r);
// Reads dir/results.json. Throws std::runtime_error with a clear message.
Results read_results(const std::string& dir);

}  // namespace shootout::runner
