#include "plot.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <stdexcept>

#include "process.hpp"
#include "scenario.hpp"

extern char** environ;

namespace shootout::runner {

const std::vector<Graph>& graphs() {
  static const std::vector<Graph> g = {
      {"rps", "Requests per second",
       "Closed-loop throughput: requests completed per second of the measurement window, with "
       "every connection sending its next request as soon as the previous answer arrived. A red "
       "circle marks a load-generator-bound point: the load generator, sharing the machine, was "
       "the limit, so its req/s is the load generator's ceiling, not the server's (the server "
       "did at least this much); the server-capacity graph compares servers there."},
      {"capacity", "Server capacity (requests per server CPU-second)",
       "10^6 / the server's CPU µs per request: how many requests per second one core of server "
       "CPU answers at this load. It compares servers fairly whatever the load generator did, "
       "so it has no red circles; a server that was not saturated (a bound point) spent what "
       "it spent at that load, and an event loop gets cheaper per request as it gets busier, "
       "so there its capacity is a floor. Points whose CPU figure is not valid are not drawn."},
      {"memory", "Server memory (PSS)",
       "Left: the server's whole process tree (PSS, shared pages split between the processes "
       "that map them) while holding N idle keep-alive connections; right: what one connection "
       "adds, (PSS with N idle connections - PSS before any connection) / the connections held. "
       "Measured with no load running, so no point of it is load-generator bound."},
      {"memory-whole", "Whole memory per connection (user space + kernel)",
       "Left: what one idle connection costs in all, the user-space PSS per connection plus "
       "what the kernel holds for it: the server's own TCP sockets (each socket's kernel "
       "objects and the buffer memory charged to it; the load generator's ends are not "
       "counted), page tables (VmPTE of every process) and kernel stacks (16 KiB per thread), "
       "each (with N idle connections - before any connection) / the connections held. Right: "
       "the same four parts stacked, per server, at the largest connection count held at N "
       "(points that did not hold N are not in the bars). Not counted: task_struct and other "
       "per-thread or per-process kernel objects, epoll entries."},
      {"latency", "p99 latency",
       "The 99th-percentile response time under closed-loop load: one request in a hundred "
       "waited at least this long."},
      {"switches", "Context switches per request",
       "Voluntary plus involuntary context switches of the server's threads and processes, "
       "divided by the requests completed in the window."},
      {"cpu", "CPU time per request",
       "User plus system CPU time the server used over the window, divided by the requests it "
       "answered: the cost of one request to the machine."},
      {"ramp", "Time to take on N connections",
       "From the first connect of the closed loop until every one of the N connections had had "
       "its first answer: what accepting costs per connection (a fork, a thread, a fiber, a "
       "struct). The measurement window opens only then; a point that never got there is "
       "marked at its bound."},
  };
  return g;
}

namespace {

// Per-server series: the ok points, sorted by connections.
std::map<std::string, std::vector<const Point*>> series(const Results& r,
                                                        std::vector<std::string>& order) {
  std::map<std::string, std::vector<const Point*>> s;
  for (const auto& p : r.points) {
    if (std::find(order.begin(), order.end(), p.server) == order.end()) order.push_back(p.server);
    if (p.ok()) s[p.server].push_back(&p);
  }
  for (auto& [name, pts] : s)
    std::sort(pts.begin(), pts.end(),
              [](const Point* a, const Point* b) { return a->connections < b->connections; });
  return s;
}

std::string num(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : "?"; }

// Columns: 1 connections, 2 rps, 3 p99 ms, 4 PSS idle MB, 5 KB/conn, 6 switches/req,
// 7 CPU us/req, 8 loadgen bound (0/1), 9 rps min, 10 rps max, 11 closed window at N (0/1),
// 12 idle hold at N (0/1), 13 seconds to take on N connections, 14 requests per server
// CPU-second, 15 whole KB/conn (user + kernel), 16 kernel KB/conn, 17 sockets KB/conn,
// 18 page tables KB/conn, 19 kernel stacks KB/conn, 20 connections served in the window,
// 21 idle connections answered, 22 the host's limit the point is past ("-" if none; quoted).
// Columns 1 to 21 of a point's row, as numbers: NaN where the file has "?" (no figure).
std::array<double, 21> data_row(const Point& p) {
  const double none = std::numeric_limits<double>::quiet_NaN();
  const bool have_mem = p.pss_idle_mb > 0;
  auto mem = [&](double v) { return have_mem ? v : none; };
  return {double(p.connections),
          p.rps,
          p.p99_us / 1000,
          mem(p.pss_idle_mb),
          mem(p.mem_per_conn_kb),
          p.switches_per_request,
          p.cpu_us_per_request,
          p.loadgen_bound ? 1.0 : 0.0,
          p.rps_min,
          p.rps_max,
          p.at_n ? 1.0 : 0.0,
          p.idle_at_n ? 1.0 : 0.0,
          p.ramp_s,
          p.capacity_rps,
          mem(p.whole_per_conn_kb),
          mem(p.kernel_per_conn_kb),
          mem(p.sock_per_conn_kb),
          mem(p.pte_per_conn_kb),
          mem(p.stack_per_conn_kb),
          double(p.reached),
          double(p.idle_opened)};
}

void write_data(const std::string& path, const std::vector<const Point*>& pts) {
  std::ofstream out(path, std::ios::trunc);
  out << "# connections rps p99_ms pss_idle_mb kb_per_conn switches_per_req cpu_us_per_req "
         "loadgen_bound rps_min rps_max at_n idle_at_n ramp_s capacity_rps whole_kb_per_conn "
         "kernel_kb_per_conn sock_kb_per_conn pte_kb_per_conn stack_kb_per_conn reached "
         "idle_opened stops_at\n";
  for (const Point* p : pts) {
    const auto row = data_row(*p);
    out << p->connections;
    for (std::size_t i = 1; i < 19; ++i) out << ' ' << num(row[i]);  // "?" for NaN
    out << ' ' << p->reached << ' ' << p->idle_opened << " \""
        << (p->stops_at.empty() ? "-" : p->stops_at) << "\"\n";
  }
}

// The largest connection count at which some server held N idle connections with every part
// of its memory measured: the stacked bars compare the servers there. 0 if none.
int breakdown_connections(const Results& r) {
  int top = 0;
  for (const auto& p : r.points)
    if (p.ok() && p.idle_at_n && std::isfinite(p.whole_per_conn_kb) && p.pss_idle_mb > 0)
      top = std::max(top, p.connections);
  return top;
}

// graphs/data/breakdown.dat: a row per server held at N at `top` connections, its memory per
// connection in four parts (KB): user-space PSS, sockets, page tables, kernel stacks.
void write_breakdown(const std::string& path, const Results& r, int top,
                     const std::vector<std::string>& order) {
  std::ofstream out(path, std::ios::trunc);
  out << fmt::format("# memory per idle connection at {} connections, KB\n", top)
      << "# server user_pss sockets page_tables kernel_stacks\n";
  for (const auto& name : order)
    for (const auto& p : r.points)
      if (p.server == name && p.ok() && p.connections == top && p.idle_at_n &&
          std::isfinite(p.whole_per_conn_kb) && p.pss_idle_mb > 0)
        out << name << ' ' << num(p.mem_per_conn_kb) << ' ' << num(p.sock_per_conn_kb) << ' '
            << num(p.pte_per_conn_kb) << ' ' << num(p.stack_per_conn_kb) << '\n';
}

struct Style {
  std::string file, title;
  int index = 0;
  bool peer = false;
  // Its points: a label plot is drawn for a column only if one of them is not at N (in the
  // closed window / the idle hold) and has a figure there, since gnuplot 5.4 crashes on a
  // `with labels` plot none of whose points is defined (2026-12-04: the memory graph of a run
  // whose Apache event point at 100,000 held too few sockets for a memory figure).
  std::vector<const Point*> points;
  bool labelled(int col, int at_n_col, bool positive_only) const {
    return std::any_of(points.begin(), points.end(), [&](const Point* p) {
      const auto row = data_row(*p);
      const double v = row[static_cast<std::size_t>(col - 1)];
      return row[static_cast<std::size_t>(at_n_col - 1)] == 0 && std::isfinite(v) &&
             (!positive_only || v > 0);
    });
  }
};

// A line's colour: gnuplot's eight default line types first (the graphs of up to eight servers
// look as they always did), then colours of their own — gnuplot repeats its eight from the
// ninth line on, which drew the default shootout's node and go in forked's and threaded's.
std::string line_colour(int index) {
  static const char* const extra[] = {"#8c564b", "#7f7f7f", "#bcbd22", "#17becf",
                                      "#ff9896", "#98df8a", "#c5b0d5", "#393b79"};
  constexpr int kDefaults = 8, kExtra = sizeof extra / sizeof extra[0];
  if (index < kDefaults) return fmt::format("lt {}", index + 1);
  return fmt::format("lt {} lc rgb '{}'", index % kDefaults + 1,
                     extra[(index - kDefaults) % kExtra]);
}

// One `plot` command: a line per server on column `col`; black crosses on the points that did
// not reach N connections (column `at_n_col` is 0: their label's N is not what was measured);
// and, for graphs of the loaded window, red circles on the load-generator-bound points.
std::string plot_command(const std::vector<Style>& styles, int col, bool positive_only,
                         int at_n_col, bool bound_circles) {
  std::string y =
      positive_only ? fmt::format("(${0} > 0 ? ${0} : 1/0)", col) : fmt::format("{}", col);
  std::string cmd = "plot ";
  for (const auto& s : styles) {
    cmd += fmt::format(
        "'{}' using 1:{} with linespoints {} dt {} pt {} ps 1.2 lw 2 title '{}', \\\n  ", s.file, y,
        line_colour(s.index), s.peer ? 2 : 1, s.index + 4, s.title);
  }
  bool first = true;
  for (const auto& s : styles) {
    cmd += fmt::format(
        "'{}' using 1:(${} > 0 ? 1/0 : ${}) with points pt 2 ps 3 lw 3 lc rgb "
        "'#000000' {}, \\\n  ",
        s.file, at_n_col, col, first ? "title 'did not reach N (see table)'" : "notitle");
    first = false;
  }
  // Beside each such cross: what it reached, and the limit of this host that N is past (the
  // end of that server's line here, with its reason).
  const bool idle = at_n_col == 12;
  const int reached_col = idle ? 21 : 20;
  // Each label names its server, and the labels of successive servers are staggered up and
  // down a line, so that two crosses at one point (Apache worker and event at 10,000) do not
  // print their labels over each other.
  int labelled = 0;
  for (const auto& s : styles) {
    if (!s.labelled(col, at_n_col, positive_only)) continue;
    const int dy = (labelled % 3 == 1) ? -1 : (labelled % 3 == 2) ? 1 : 0;
    ++labelled;
    cmd += fmt::format(
        "'{}' using 1:(${} > 0 || !({}) ? 1/0 : ${}):(strcol(22) eq '-' ? sprintf('{}: reached "
        "%d', ${}) : sprintf('{}: reached %d: %s', ${}, strcol(22))) with labels left offset "
        "char 1,{} font ',8' tc rgb '#000000' noenhanced notitle, \\\n  ",
        s.file, at_n_col, positive_only ? fmt::format("${} > 0", col) : "1", col, s.title,
        reached_col, s.title, reached_col, dy);
  }
  first = true;
  for (const auto& s : styles) {
    if (!bound_circles) break;
    cmd += fmt::format(
        "'{}' using 1:($8 > 0 ? ${} : 1/0) with points pt 6 ps 3 lw 2 lc rgb "
        "'#d62728' {}, \\\n  ",
        s.file, col, first ? "title 'load-generator bound'" : "notitle");
    first = false;
  }
  cmd.resize(cmd.size() - 6);  // the last ", \\\n  "
  return cmd + "\n";
}

std::string common_setup() {
  return "set grid\nset logscale x 10\nset key outside right top noenhanced\n"
         "set xlabel 'concurrent connections'\nset format x '%.0f'\n"
         "set datafile missing '?'\nset pointintervalbox 0\n"
         // A margin left and right, so the points at the smallest and largest N are not on the
         // border (gnuplot clips their labels there).
         "set offsets graph 0.04, graph 0.04, 0, 0\n";
}

// The stacked bars of the whole-memory figure: one per server at `top` connections.
std::string breakdown_plot(int top) {
  return fmt::format(
      "set title 'Memory per idle connection at {} connections, by part'\n"
      "set offsets 0, 0, 0, 0\nunset logscale x\nset xlabel ''\nset ylabel 'KB per "
      "connection'\nset yrange [0:*]\n"
      "set style data histograms\nset style histogram rowstacked\n"
      "set style fill solid 0.85 border -1\nset boxwidth 0.7\nset xtics rotate by -30\n"
      "plot 'graphs/data/breakdown.dat' using 2:xtic(1) title 'user space (PSS)' lc rgb "
      "'#1f77b4', '' using 3 title 'sockets' lc rgb '#ff7f0e', '' using 4 title 'page tables' "
      "lc rgb '#2ca02c', '' using 5 title 'kernel stacks' lc rgb '#d62728'\n"
      "set logscale x 10\nset xlabel 'concurrent connections'\nset xtics norotate autofreq\n"
      "set style fill empty\nset style data points\nset offsets graph 0.04, graph 0.04, 0, 0\n",
      top);
}

// An empty frame that says why: gnuplot fails ("x range is invalid") on a plot none of whose
// points is defined, which would lose every graph after it (results written before a figure
// existed, or a sweep where no point has it).
std::string placeholder(const std::string& why) {
  return fmt::format(
      "set label 1 '{}' at graph 0.5,0.5 center\nplot [1:10] [1:10] 1/0 notitle\n"
      "unset label 1\n",
      why);
}

// What the graphs can draw: each flag says whether any ok point has that figure (finite and
// above 0: every figure is drawn on a log scale, where gnuplot can place neither 0 nor a
// missing value, and a plot with no point fails and loses every graph after it: a small sweep
// whose PSS fell during every idle hold has no memory per connection anywhere);
// `breakdown_top` the connection count of the whole-memory figure's bars (0: no bars).
struct Drawable {
  bool capacity = false, whole = false, ramp = false;
  bool pss = false, per_conn = false, latency = false, switches = false, cpu = false;
  int breakdown_top = 0;
};

bool positive(double v) { return std::isfinite(v) && v > 0; }

std::string graph_body(const std::string& name, const std::vector<Style>& st, const Drawable& can) {
  std::string g;
  if (name == "capacity") {
    g = "set title 'Server capacity: requests per server CPU-second'\n"
        "set ylabel 'requests per CPU-second'\nset logscale y 10\n" +
        (can.capacity ? plot_command(st, 14, true, 11, false)
                      : placeholder("no point has a valid CPU figure")) +
        "unset logscale y\n";
  } else if (name == "memory-whole") {
    const int breakdown_top = can.breakdown_top;
    g = fmt::format("set multiplot layout 1,{}\n", breakdown_top > 0 ? 2 : 1) +
        "set title 'Whole memory per idle connection (user + kernel)'\n"
        "set ylabel 'KB per connection'\nset logscale y 10\n" +
        (can.whole ? plot_command(st, 15, true, 12, false)
                   : placeholder("kernel memory was not measured in these results")) +
        "unset logscale y\n" + (breakdown_top > 0 ? breakdown_plot(breakdown_top) : std::string{}) +
        "unset multiplot\n";
  } else if (name == "rps") {
    g = "set title 'Requests per second (closed loop)'\nset ylabel 'requests/s'\n"
        "set yrange [0:*]\n" +
        plot_command(st, 2, false, 11, true);
  } else if (name == "memory") {
    g = "set multiplot layout 1,2\nset title 'Server PSS with N idle connections'\n"
        "set ylabel 'PSS (MB)'\nset logscale y 10\n" +
        (can.pss ? plot_command(st, 4, true, 12, false)
                 : placeholder("no point has a PSS figure")) +
        "set title 'Memory per connection'\nset ylabel 'KB per connection'\n" +
        (can.per_conn
             ? plot_command(st, 5, true, 12, false)
             : placeholder("no point has a memory growth per connection above 0 (see report)")) +
        "unset multiplot\nunset logscale y\n";
  } else if (name == "latency") {
    g = "set title 'p99 latency (closed loop)'\nset ylabel 'p99 latency (ms)'\n"
        "set logscale y 10\n" +
        (can.latency ? plot_command(st, 3, true, 11, true)
                     : placeholder("no point has a latency figure")) +
        "unset logscale y\n";
  } else if (name == "switches") {
    g = "set title 'Context switches per request'\nset ylabel 'switches/request'\n"
        "set logscale y 10\n" +
        (can.switches ? plot_command(st, 6, true, 11, true)
                      : placeholder("no point has context switches above 0 per request")) +
        "unset logscale y\n";
  } else if (name == "ramp") {
    g = "set title 'Time until all N connections were answered once'\nset ylabel 'seconds'\n"
        "set logscale y 10\n" +
        (can.ramp ? plot_command(st, 13, true, 11, false)
                  : placeholder("the time to take on N was not measured in these results")) +
        "unset logscale y\n";
  } else {
    g = "set title 'Server CPU time per request'\nset ylabel 'CPU us/request'\n"
        "set logscale y 10\n" +
        (can.cpu ? plot_command(st, 7, true, 11, true)
                 : placeholder("no point has a valid CPU figure")) +
        "unset logscale y\n";
  }
  return g + "set yrange [*:*]\n";
}

bool have_terminal(const std::string& term) {
  std::string cmd = "gnuplot -e 'set terminal' 2>&1 | grep -qw " + term;
  return std::system(cmd.c_str()) == 0;
}

// Runs `gnuplot graphs/plot.gp` in `dir`, its output into graphs/gnuplot.log.
std::string run_gnuplot(const std::string& dir) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addchdir_np(&fa, dir.c_str());
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "graphs/gnuplot.log",
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  std::string a0 = "gnuplot", a1 = "graphs/plot.gp";
  char* argv[] = {a0.data(), a1.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "gnuplot", &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return "gnuplot could not be started (install gnuplot-nox)";
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return "";
  return "gnuplot failed: " + file_tail(dir + "/graphs/gnuplot.log", 400);
}

// Where and when the numbers were measured, under every graph's title: a graph copied out of
// its report still says which machine, which day and which build drew it.
std::string subtitle(const Results& r) {
  auto str = [&](std::initializer_list<const char*> path) -> std::string {
    const nlohmann::json* j = &r.meta;
    for (const char* k : path) {
      if (!j->is_object() || !j->contains(k)) return "?";
      j = &(*j)[k];
    }
    return j->is_string() ? j->get<std::string>() : j->dump();
  };
  std::string s = fmt::format("{} ({} CPUs), {}, commit {}", str({"machine", "cpu_model"}),
                              str({"machine", "nproc"}), str({"started"}).substr(0, 10),
                              str({"versions", "commit"}));
  std::string out;  // inside a gnuplot double-quoted string (set noenhanced: no markup)
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Every `set title 'T'` of a graph becomes a two-line title: T, then the subtitle.
std::string with_subtitle(const std::string& body, const std::string& sub) {
  std::string out;
  const std::string key = "set title '";
  std::size_t at = 0;
  for (std::size_t hit; (hit = body.find(key, at)) != std::string::npos;) {
    const std::size_t end = body.find('\'', hit + key.size());
    if (end == std::string::npos) break;
    out += body.substr(at, hit - at);
    out += "set title \"" + body.substr(hit + key.size(), end - hit - key.size()) + "\\n" + sub +
           "\" noenhanced";
    at = end + 1;
  }
  return out + body.substr(at);
}

}  // namespace

std::string draw_graphs(const std::string& dir, const Results& r) {
  std::filesystem::create_directories(dir + "/graphs/data");
  std::vector<std::string> order;
  auto s = series(r, order);
  std::vector<Style> styles;
  Drawable can;
  can.breakdown_top = breakdown_connections(r);
  write_breakdown(dir + "/graphs/data/breakdown.dat", r, can.breakdown_top, order);
  for (const auto& p : r.points) {
    if (!p.ok()) continue;
    can.capacity = can.capacity || (std::isfinite(p.capacity_rps) && p.capacity_rps > 0);
    can.whole = can.whole || (p.pss_idle_mb > 0 && std::isfinite(p.whole_per_conn_kb) &&
                              p.whole_per_conn_kb > 0);
    can.ramp = can.ramp || (std::isfinite(p.ramp_s) && p.ramp_s > 0);
    can.pss = can.pss || positive(p.pss_idle_mb);
    can.per_conn = can.per_conn || (positive(p.pss_idle_mb) && positive(p.mem_per_conn_kb));
    can.latency = can.latency || positive(p.p99_us);
    can.switches = can.switches || positive(p.switches_per_request);
    can.cpu = can.cpu || positive(p.cpu_us_per_request);
  }
  for (const auto& name : order) {
    if (!s.count(name)) continue;  // no ok point: nothing to draw
    write_data(dir + "/graphs/data/" + name + ".dat", s[name]);
    bool peer = !s[name].empty() && s[name].front()->kind == "peer";
    styles.push_back(
        {"graphs/data/" + name + ".dat", name, static_cast<int>(styles.size()), peer, s[name]});
  }
  std::string png = have_terminal("pngcairo") ? "pngcairo" : "png";
  const std::string sub = subtitle(r);
  // A scenario's graphs (the stall, the rate sweep, the waiting-heavy sweep's), after the
  // sweep's own; a scenario alone has no sweep points.
  const std::string scenarios = scenario_graphs(dir, r, png, sub);
  if (styles.empty() && scenarios.empty()) return "no point succeeded: nothing to draw";
  std::string script =
      "# Generated by shootout; run from the results folder: gnuplot graphs/plot.gp\n" +
      common_setup();
  for (const auto& g : graphs()) {
    if (styles.empty()) break;
    std::string size = g.name.rfind("memory", 0) == 0 ? "1400,560" : "960,560";
    const std::string body = with_subtitle(graph_body(g.name, styles, can), sub);
    script += fmt::format(
        "\nset terminal svg size {} dynamic background '#ffffff' font 'sans,12'\n"
        "set output 'graphs/{}.svg'\n{}",
        size, g.name, body);
    script += fmt::format(
        "set terminal {} size {} font 'sans,10' background '#ffffff'\n"
        "set output 'graphs/{}.png'\n{}",
        png, size, g.name, body);
  }
  script += scenarios + "set output\n";
  std::ofstream(dir + "/graphs/plot.gp", std::ios::trunc) << script;
  return run_gnuplot(dir);
}

}  // namespace shootout::runner
