#include "results.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace shootout::runner {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(
    Point, server, kind, connections, status, reason, notes, repeats, window_s, rps, rps_min,
    rps_max, requests, errors, p50_us, p90_us, p99_us, p999_us, max_us, mean_us, p99_min_us,
    p99_max_us, reached, at_n, ramp_s, ramp_reached, sampler_short, idle_at_n, stops_at,
    server_cpu_us, cpu_us_per_request, server_cpu_cores, capacity_rps, switches_per_request,
    voluntary_per_request, involuntary_per_request, switches_complete, processes_peak, threads_peak,
    pss_load_mb, pss_baseline_mb, pss_idle_mb, mem_per_conn_kb, idle_opened, idle_alive,
    threads_baseline, threads_idle, sockets_idle, kernel_baseline_mb, kernel_idle_mb,
    sock_per_conn_kb, pte_per_conn_kb, stack_per_conn_kb, kernel_per_conn_kb, whole_per_conn_kb,
    kernel_fell, loadgen_cpu_us, loadgen_cpu_cores, loadgen_threads, loadgen_bound, runs)

namespace {

// CSV column order: what people compare first comes first. Every Point field but `runs`.
const std::vector<std::string>& csv_columns() {
  static const std::vector<std::string> cols = {"server",
                                                "kind",
                                                "connections",
                                                "status",
                                                "reason",
                                                "repeats",
                                                "reached",
                                                "at_n",
                                                "idle_at_n",
                                                "stops_at",
                                                "ramp_s",
                                                "ramp_reached",
                                                "sampler_short",
                                                "rps",
                                                "rps_min",
                                                "rps_max",
                                                "p50_us",
                                                "p90_us",
                                                "p99_us",
                                                "p999_us",
                                                "max_us",
                                                "mean_us",
                                                "p99_min_us",
                                                "p99_max_us",
                                                "requests",
                                                "errors",
                                                "window_s",
                                                "server_cpu_us",
                                                "cpu_us_per_request",
                                                "server_cpu_cores",
                                                "capacity_rps",
                                                "switches_per_request",
                                                "voluntary_per_request",
                                                "involuntary_per_request",
                                                "switches_complete",
                                                "processes_peak",
                                                "threads_peak",
                                                "pss_baseline_mb",
                                                "pss_load_mb",
                                                "pss_idle_mb",
                                                "mem_per_conn_kb",
                                                "idle_opened",
                                                "idle_alive",
                                                "threads_baseline",
                                                "threads_idle",
                                                "sockets_idle",
                                                "kernel_baseline_mb",
                                                "kernel_idle_mb",
                                                "sock_per_conn_kb",
                                                "pte_per_conn_kb",
                                                "stack_per_conn_kb",
                                                "kernel_per_conn_kb",
                                                "whole_per_conn_kb",
                                                "kernel_fell",
                                                "loadgen_cpu_us",
                                                "loadgen_cpu_cores",
                                                "loadgen_threads",
                                                "loadgen_bound",
                                                "notes"};
  return cols;
}

std::string csv_cell(const nlohmann::json& v) {
  std::string s;
  if (v.is_string())
    s = v.get<std::string>();
  else if (v.is_array()) {
    for (const auto& e : v) {
      if (!s.empty()) s += "; ";
      s += e.get<std::string>();
    }
  } else if (v.is_number_float())
    s = fmt::format("{:.6g}", v.get<double>());
  else
    s = v.dump();
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void write_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

nlohmann::json to_json(const Point& p) {
  nlohmann::json j = p;
  return j;
}

// A figure that was not measured or could not be true is NaN in a Point and null in JSON
// (nlohmann writes NaN as null); read back, null is NaN again.
Point point_from_json(const nlohmann::json& j) {
  nlohmann::json copy = j;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (auto& [key, value] : copy.items())
    if (value.is_null() && key != "runs") value = nan;
  // Results written before these figures existed: capacity follows from the CPU figure; the
  // kernel's memory was not measured ("?", not 0).
  Point p = copy.get<Point>();
  if (!j.contains("capacity_rps"))
    p.capacity_rps = p.cpu_us_per_request > 0 ? 1e6 / p.cpu_us_per_request : nan;
  if (!j.contains("kernel_per_conn_kb"))
    p.kernel_baseline_mb = p.kernel_idle_mb = p.sock_per_conn_kb = p.pte_per_conn_kb =
        p.stack_per_conn_kb = p.kernel_per_conn_kb = p.whole_per_conn_kb = nan;
  return p;
}

nlohmann::json to_json(const Results& r) {
  nlohmann::json j;
  j["meta"] = r.meta;
  j["interrupted"] = r.interrupted;
  j["loadgen_bound_rule"] = fmt::format(
      "a point is load-generator bound when the load generator's CPU time over the window is at "
      "least {:.0f}% of one core per load-generator thread",
      kLoadgenBoundShare * 100);
  j["points"] = nlohmann::json::array();
  for (const auto& p : r.points) j["points"].push_back(to_json(p));
  if (!r.scenarios.empty()) j["scenarios"] = r.scenarios;
  return j;
}

Results results_from_json(const nlohmann::json& j) {
  Results r;
  r.meta = j.value("meta", nlohmann::json::object());
  r.interrupted = j.value("interrupted", false);
  for (const auto& p : j.at("points")) r.points.push_back(point_from_json(p));
  r.scenarios = j.value("scenarios", nlohmann::json::object());
  return r;
}

std::string to_csv(const Results& r) {
  std::string out;
  for (const auto& c : csv_columns()) {
    if (!out.empty()) out += ',';
    out += c;
  }
  out += '\n';
  for (const auto& p : r.points) {
    nlohmann::json j = to_json(p);
    std::string row;
    bool first = true;
    for (const auto& c : csv_columns()) {
      if (!first) row += ',';
      row += csv_cell(j.at(c));
      first = false;
    }
    out += row + '\n';
  }
  return out;
}

void write_results(const std::string& dir, const Results& r) {
  write_atomic(dir + "/results.json", to_json(r).dump(2) + "\n");
  write_atomic(dir + "/results.csv", to_csv(r));
}

Results read_results(const std::string& dir) {
  std::string path = dir + "/results.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path + " (is it a results folder?)");
  try {
    return results_from_json(nlohmann::json::parse(in));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + " is not a shootout results file: " + e.what());
  }
}

}  // namespace shootout::runner
