// report.md: what was run, the graphs with a sentence each, the loadgen-bound points in words,
// the table of every point, failures and caps.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "plot.hpp"
#include "scenario.hpp"

namespace shootout::runner {

namespace {

std::string fmt_num(double v, int digits = 3) {
  if (!std::isfinite(v)) return "?";  // a figure that was not measured or could not be true
  if (v == 0) return "0";
  if (v >= 1000) return fmt::format("{:.0f}", v);
  return fmt::format("{:.{}g}", v, digits);
}

std::string meta_str(const nlohmann::json& m, const char* a, const char* b = nullptr) {
  const nlohmann::json* j = &m;
  if (!j->contains(a)) return "?";
  j = &(*j)[a];
  if (b) {
    if (!j->contains(b)) return "?";
    j = &(*j)[b];
  }
  return j->is_string() ? j->get<std::string>() : j->dump();
}

std::string header(const Results& r) {
  const auto& m = r.meta;
  std::string s = "# Shootout results\n\n";
  if (r.interrupted)
    s += "**The run was interrupted (Ctrl-C): these are the points finished before it.**\n\n";
  s += fmt::format("Command: `{}`  \nStarted: {}  \n", meta_str(m, "command_line"),
                   meta_str(m, "started"));
  s += fmt::format("Machine: {} CPUs ({}), {} MiB memory, Linux {}  \n",
                   meta_str(m, "machine", "nproc"), meta_str(m, "machine", "cpu_model"),
                   meta_str(m, "machine", "memory_mib"), meta_str(m, "machine", "kernel"));
  if (m.contains("versions"))
    for (const auto& [k, v] : m["versions"].items())
      s += fmt::format("{}: {}  \n", k, v.is_string() ? v.get<std::string>() : v.dump());
  if (m.contains("config")) {
    if (m["config"].contains("left_out"))
      for (const auto& why : m["config"]["left_out"])
        s += fmt::format("\n**Left out: model {}** (this machine cannot run it)\n",
                         why.get<std::string>());
    s += fmt::format("\nSettings: `{}`\n", m["config"].dump());
  }
  s += "\nRedraw the graphs and this report from the data: "
       "`build/shootout plot <this folder>`.\n\n";
  return s;
}

std::string bound_words(const Results& r) {
  std::vector<std::string> bound;
  for (const auto& p : r.points)
    if (p.ok() && p.loadgen_bound)
      bound.push_back(fmt::format("{} at {}", p.server, p.connections));
  std::string s = fmt::format(
      "**Load-generator-bound points.** The load generator runs on this same machine; when it "
      "used at least {:.0f}% of one core per load-generator thread over the window, the number "
      "measured is (at least partly) the load generator's own ceiling, not the server's. Such "
      "points are circled in red on every graph and marked `bound` in the table: read them as "
      "\"the server did at least this much\", not as the server's limit. ",
      kLoadgenBoundShare * 100);
  if (bound.empty()) return s + "No point of this run was load-generator bound.\n\n";
  s += fmt::format("{} point(s) were: ", bound.size());
  for (std::size_t i = 0; i < bound.size(); ++i) s += (i ? ", " : "") + bound[i];
  return s + ".\n\n";
}

// A one-sentence reading of a graph at the largest connection count that has results.
std::string finding(const Results& r, const std::string& graph) {
  int top = 0;
  for (const auto& p : r.points)
    if (p.ok()) top = std::max(top, p.connections);
  const Point* best = nullptr;
  const Point* worst = nullptr;
  auto value = [&](const Point& p) {
    if (graph == "rps") return p.rps;
    if (graph == "capacity") return p.capacity_rps;
    if (graph == "memory") return p.pss_idle_mb;
    if (graph == "memory-whole") return p.whole_per_conn_kb;
    if (graph == "latency") return p.p99_us / 1000;
    if (graph == "switches") return p.switches_per_request;
    if (graph == "ramp") return p.ramp_s;
    return p.cpu_us_per_request;
  };
  // Only points measured at N are ranked: a point that reached fewer is not what its label says.
  // Nor is a figure that was not measured or could not be true (NaN).
  auto at_n = [&](const Point& p) { return graph.rfind("memory", 0) == 0 ? p.idle_at_n : p.at_n; };
  for (const auto& p : r.points) {
    if (!p.ok() || p.connections != top || !at_n(p) || !std::isfinite(value(p))) continue;
    if (!best || value(p) > value(*best)) best = &p;
    if (!worst || value(p) < value(*worst)) worst = &p;
  }
  if (!best || best == worst) return "";
  const char* unit = graph == "rps"            ? " req/s"
                     : graph == "capacity"     ? " requests per CPU-second"
                     : graph == "memory-whole" ? " KB per connection"
                     : graph == "memory"       ? " MB"
                     : graph == "latency"      ? " ms"
                     : graph == "switches"     ? " switches/request"
                     : graph == "ramp"         ? " s"
                                               : " µs/request";
  // Bound marks belong to figures of the loaded window that the load generator limited; the
  // capacity, the idle hold's memory and the ramp (over before the window opens) are not such
  // figures.
  const bool marks = graph != "capacity" && graph != "ramp" && graph.rfind("memory", 0) != 0;
  auto bound = [&](const Point& p) {
    return marks && p.loadgen_bound ? ", load-generator bound" : "";
  };
  return fmt::format(" At {} connections the highest is {} ({}{}{}) and the lowest {} ({}{}{}).",
                     top, best->server, fmt_num(value(*best)), unit, bound(*best), worst->server,
                     fmt_num(value(*worst)), unit, bound(*worst));
}

// The whole-memory figure in words: per server held at N at the largest connection count,
// what a connection costs and of what it is made. Points not held at N are left out.
std::string whole_memory_words(const Results& r) {
  int top = 0;
  for (const auto& p : r.points)
    if (p.ok() && p.idle_at_n && std::isfinite(p.whole_per_conn_kb))
      top = std::max(top, p.connections);
  if (top == 0) return "";
  std::string s = fmt::format(
      " Per idle connection at {} connections (user space + sockets + "
      "page tables + kernel stacks):",
      top);
  bool first = true;
  for (const auto& p : r.points) {
    if (!p.ok() || p.connections != top || !p.idle_at_n || !std::isfinite(p.whole_per_conn_kb))
      continue;
    s += fmt::format("{} {} {} KB ({} + {} + {} + {}){}", first ? "" : ";", p.server,
                     fmt_num(p.whole_per_conn_kb), fmt_num(p.mem_per_conn_kb),
                     fmt_num(p.sock_per_conn_kb), fmt_num(p.pte_per_conn_kb),
                     fmt_num(p.stack_per_conn_kb),
                     p.kernel_fell ? " (a kernel part fell below "
                                     "its baseline: counted 0)"
                                   : "");
    first = false;
  }
  return s + ".";
}

std::string graph_sections(const Results& r, const std::string& graph_error) {
  std::string s = "## Graphs\n\n";
  if (!graph_error.empty())
    s += fmt::format("**The graphs could not be drawn:** {}\n\n", graph_error);
  s += bound_words(r);
  for (const auto& g : graphs()) {
    s += fmt::format("### {}\n\n![{}](graphs/{}.svg)\n\n{}{}{}", g.title, g.title, g.name, g.what,
                     finding(r, g.name), g.name == "memory-whole" ? whole_memory_words(r) : "");
    // A closed loop's p99 is mostly N / throughput: the picture of latency is the rate sweep's.
    if (g.name == "latency")
      s += r.scenarios.contains("rate_sweep")
               ? " Latency against offered load, the picture to read latency from, is the rate "
                 "sweep's above; this closed-loop graph stays for the data."
               : " In a closed loop a saturated server's p99 is mostly N / throughput; for "
                 "latency against offered load (coordinated omission corrected: the hockey "
                 "stick) run `shootout run --rate-sweep`.";
    const bool circles =
        g.name != "memory" && g.name != "memory-whole" && g.name != "ramp" && g.name != "capacity";
    s += fmt::format(
        " Black crosses: points that did not reach N connections (the table says what "
        "they reached); they are never ranked.{} (PNG: `graphs/{}.png`.)\n\n",
        circles ? " Red circles: load-generator bound." : "", g.name);
  }
  return s;
}

std::string table(const Results& r) {
  std::string s =
      "## Numbers\n\nMedians over the repeats; req/s spread is min-max. CPU and switches are per "
      "request over the window; req/CPU-s is the server capacity, 10^6 / CPU µs per request; "
      "PSS idle is with N idle keep-alive connections; KB/conn is user-space PSS per connection "
      "held, kernel KB/conn what the kernel holds for it (sockets + page tables + kernel "
      "stacks; † a part fell below its baseline and counts 0), whole the two together; lg CPU "
      "is the load generator's CPU in cores.\n\n"
      "| server | conns | req/s | spread | p50 ms | p99 ms | errors | CPU µs/req | req/CPU-s "
      "| switches/req | PSS base MB | PSS idle MB | KB/conn | kernel KB/conn | whole KB/conn "
      "| procs | threads | lg CPU | bound |\n"
      "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
      "|---|\n";
  for (const auto& p : r.points) {
    if (!p.ok()) {
      s += fmt::format("| {} | {} | {} | | | | | | | | | | | | | | | | |\n", p.server,
                       p.connections, p.status);
      continue;
    }
    s += fmt::format(
        "| {} | {} | {} | {}-{} | {} | {} | {} | {} | {} | {}{} | {} | {} | {} | {}{} | {} | {} "
        "| {} | {:.2f} | {} |\n",
        p.server,
        p.at_n && p.idle_at_n ? std::to_string(p.connections)
                              : fmt::format("{} (reached {} loaded, {} idle)", p.connections,
                                            p.reached, p.idle_opened),
        fmt_num(p.rps), fmt_num(p.rps_min), fmt_num(p.rps_max), fmt_num(p.p50_us / 1000),
        fmt_num(p.p99_us / 1000), p.errors, fmt_num(p.cpu_us_per_request), fmt_num(p.capacity_rps),
        fmt_num(p.switches_per_request), p.switches_complete ? "" : "*", fmt_num(p.pss_baseline_mb),
        fmt_num(p.pss_idle_mb), fmt_num(p.mem_per_conn_kb), fmt_num(p.kernel_per_conn_kb),
        p.kernel_fell ? " †" : "", fmt_num(p.whole_per_conn_kb), p.processes_peak, p.threads_peak,
        p.loadgen_cpu_cores, p.loadgen_bound ? "**bound**" : "");
  }
  return s +
         "\n\\* switches of threads or processes that exited during the window are not "
         "counted (peers, sampled from /proc only).\n\n";
}

std::string problems(const Results& r) {
  std::string s;
  for (const auto& p : r.points)
    if (!p.ok())
      s += fmt::format("- **{}** at {} connections, {}: {}\n", p.server, p.connections, p.status,
                       p.reason);
  std::string notes;
  std::set<std::string> seen;
  for (const auto& p : r.points)
    for (const auto& n : p.notes)
      if (seen.insert(p.server + n).second)
        notes += fmt::format("- {} at {}: {}\n", p.server, p.connections, n);
  std::string out;
  if (!s.empty()) out += "## Failed and skipped points\n\n" + s + "\n";
  if (!notes.empty()) out += "## Notes (caps, errors, unclean stops)\n\n" + notes + "\n";
  return out;
}

std::string method() {
  return "## How each point was measured\n\n"
         "A fresh server process per point and per repeat; the repeats are interleaved (pass 1 "
         "runs every point once, pass 2 again, ...), so a slow spell of the machine spoils one "
         "run of several points, not every run of one. After a server listens, the runner "
         "takes its memory (PSS) with no connection, opens the connections (ramped), warms up, "
         "and measures a closed-loop window: every connection sends `GET` and sends the next "
         "request as soon as the answer arrives. Over that window it samples the server's "
         "process tree (CPU time, context switches, PSS, processes, threads). Then it opens N "
         "fresh connections, makes one request on each and holds them idle for the idle-hold "
         "time: the PSS at the end is the memory graph's figure, and the kernel's part (the "
         "server's own TCP sockets from sock_diag, page tables from VmPTE, 16 KiB of kernel "
         "stack per thread), read at the same two moments, the whole-memory graph's. Then it "
         "stops the server "
         "(SIGTERM) and checks it exited cleanly. Peers (nginx, Apache) get generated "
         "configurations (`peers/<name>-<N>/`), serve the same 13-byte `Hello, World!` (nginx "
         "from memory, Apache from a file), and are sampled from /proc; the other runtimes' "
         "peers (node, go, tokio, eventmachine and their multi-worker lines) are small servers "
         "kept in `runner/peers/`, answering it from memory (`peers/<name>-<N>/start.sh` is the "
         "exact command, environment included). Apache pre-spawns its workers for N connections, "
         "so "
         "its \"before any connection\" memory already holds them: for Apache read the absolute "
         "PSS line, not the per-connection one.\n\n";
}

}  // namespace

void write_report(const std::string& dir, const Results& r, const std::string& graph_error) {
  std::ofstream out(dir + "/report.md", std::ios::trunc);
  // A scenario's sections come first: the stall and the rate sweep are what such a run is for
  // (the rate sweep is the latency picture), the waiting-heavy graphs the point of a /sleep run.
  out << header(r);
  if (r.points.empty()) {
    if (!graph_error.empty())
      out << fmt::format("**The graphs could not be drawn:** {}\n\n", graph_error);
    out << scenario_report(r);
    return;
  }
  out << scenario_report(r) << graph_sections(r, graph_error) << table(r) << problems(r)
      << method();
}

}  // namespace shootout::runner
