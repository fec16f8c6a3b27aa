// The scenarios' graphs (their data files and their part of plot.gp) and their sections of
// report.md; scenario.hpp says what each scenario measures.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "scenario.hpp"

namespace shootout::runner {

namespace {

std::string num(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : "?"; }

// Milliseconds for a title: whole ones from 100 up, three digits below.
std::string ms_text(double ms) {
  return ms >= 100 ? fmt::format("{:.0f}", ms) : fmt::format("{:.3g}", ms);
}

std::string slug(std::string s) {
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '-';
  return s;
}

double dbl(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

// Text for a gnuplot single-quoted string.
std::string quoted(std::string s) {
  std::string out;
  for (char ch : s) out += ch == '\'' ? std::string("''") : std::string(1, ch);
  return out;
}

// Both terminals for one graph body.
std::string both(const std::string& name, const std::string& size, const std::string& png,
                 const std::string& body) {
  return fmt::format(
      "\nset terminal svg size {} dynamic background '#ffffff' font 'sans,12'\n"
      "set output 'graphs/{}.svg'\n{}"
      "set terminal {} size {} font 'sans,10' background '#ffffff'\n"
      "set output 'graphs/{}.png'\n{}",
      size, name, body, png, size, name, body);
}

// ---- stall -------------------------------------------------------------------------------

std::string stall_graph(const std::string& dir, const nlohmann::json& st, const std::string& png,
                        const std::string& sub) {
  std::vector<const nlohmann::json*> ok;
  double xmax = 0;
  for (const auto& v : st["variants"])
    if (v.value("status", "") == "ok") {
      ok.push_back(&v);
      xmax = std::max(xmax, dbl(v, "window_s"));
    }
  if (ok.empty()) return "";
  std::string body = fmt::format(
      "reset\nset multiplot layout {},1 title \"GET / latency over time while one client burns "
      "{} ms of CPU a second ({} connections loop on GET /)\\n{}\" noenhanced\n"
      "set grid\nset logscale y 10\nset xrange [0:{}]\nset key top right opaque noenhanced\n"
      "set ylabel 'latency (ms)'\nset format y '%g'\n",
      ok.size(), st.value("burn_us", 0) / 1000, st.value("connections", 0), sub, num(xmax));
  for (std::size_t i = 0; i < ok.size(); ++i) {
    const auto& v = *ok[i];
    const std::string file = "graphs/data/stall-" + slug(v.value("label", "")) + ".dat";
    std::ofstream out(dir + "/" + file, std::ios::trunc);
    out << "# t_s p50_ms max_ms count  (per 10 ms of completion time)\n";
    // A blank line where no GET / completed for more than a bucket (the loop was burning): the
    // line breaks there instead of drawing a latency nobody had across the gap.
    double last_t = -1;
    for (const auto& row : v["series"]) {
      const double t = row[0].get<double>();
      if (last_t >= 0 && t - last_t > 0.015) out << '\n';
      last_t = t;
      out << num(t) << ' ' << num(row[1].get<double>()) << ' ' << num(row[2].get<double>()) << ' '
          << row[3].get<long>() << '\n';
    }
    int obj = 1;
    for (const auto& b : v["burns"]) {
      const double from = b["sent_s"].get<double>();
      const double to = b["done_s"].is_number() ? b["done_s"].get<double>() : xmax;
      body += fmt::format(
          "set object {} rect from {},graph 0 to {},graph 1 fc rgb '#f4b6b6' fs solid 0.5 "
          "noborder behind\n",
          obj++, num(from), num(std::min(to, xmax)));
    }
    body += fmt::format(
        "set title '{}: p99 during burns {} ms, outside {} ms' noenhanced\n"
        "set xlabel '{}'\n"
        "plot '{}' using 1:3 with steps lw 1.5 lc rgb '#d62728' title 'largest per 10 ms', "
        "'' using 1:2 with steps lw 1.5 lc rgb '#1f77b4' title 'median per 10 ms'\n",
        quoted(v.value("label", "")), ms_text(dbl(v, "p99_burn_us") / 1000),
        ms_text(dbl(v, "p99_calm_us") / 1000),
        i + 1 == ok.size() ? "seconds (shaded: a /cpu burn, from its send to its answer)" : "",
        file);
    for (int k = 1; k < obj; ++k) body += fmt::format("unset object {}\n", k);
  }
  body += "unset multiplot\n";
  const int height = 150 + 170 * static_cast<int>(ok.size());
  return both("stall", fmt::format("960,{}", height), png, body);
}

std::string stall_report(const nlohmann::json& st) {
  std::string s = fmt::format(
      "## The stall\n\n![GET / latency over time](graphs/stall.svg)\n\n"
      "{} connections loop on `GET /` for {:.1f} s while one more client sends "
      "`GET /cpu?us={}` once a second (shaded on the graph, from its send to its answer). A "
      "GET / is *during a burn* when its life overlaps a burn's. *Held across*: GET / issued in "
      "the first half of a burn and answered after its middle (no server whose only thread is "
      "burning can answer them sooner); *answered inside*: issued and answered within a burn's "
      "second half (only a server that keeps serving can). The raw timestamps are in "
      "`stall/<variant>.tsv`.\n\n"
      "| variant | GET / answered | p50 ms | p99 ms outside burns | p99 ms during burns | max "
      "ms | held across | answered inside | burns | /cpu answer ms |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
      st.value("connections", 0), st.value("duration_ms", 0) / 1000.0, st.value("burn_us", 0));
  for (const auto& v : st["variants"]) {
    if (v.value("status", "") != "ok") {
      s += fmt::format("| {} | failed: {} | | | | | | | | |\n", v.value("label", ""),
                       v.value("reason", std::string{}).substr(0, 200));
      continue;
    }
    std::string burns;
    for (const auto& b : v["burns"])
      burns += (burns.empty() ? "" : ", ") +
               (b["latency_ms"].is_number() ? fmt::format("{:.0f}", b["latency_ms"].get<double>())
                                            : std::string("none"));
    s += fmt::format("| {} | {} | {:.3f} | {:.3f} | {:.1f} | {:.1f} | {} | {} | {} | {} |\n",
                     v.value("label", ""), v.value("requests", 0), dbl(v, "p50_us") / 1000,
                     dbl(v, "p99_calm_us") / 1000, dbl(v, "p99_burn_us") / 1000,
                     dbl(v, "max_us") / 1000, v.value("held_across", 0),
                     v.value("answered_inside", 0), v["burns"].size(), burns);
  }
  return s + "\n";
}

// ---- rate sweep --------------------------------------------------------------------------

std::string rate_graph(const std::string& dir, const nlohmann::json& rs, const std::string& png,
                       const std::string& sub) {
  struct Line {
    std::string file, title;
    bool peer;
  };
  std::vector<Line> lines;
  for (const auto& s : rs["servers"]) {
    if (s.value("status", "") != "ok") continue;
    const std::string name = s.value("server", "");
    const std::string file = "graphs/data/rate-" + slug(name) + ".dat";
    std::ofstream out(dir + "/" + file, std::ios::trunc);
    out << "# offered_rps achieved_rps p50_ms p99_ms p999_ms delivered(achieved>=95% offered)\n";
    int rows = 0;
    for (const auto& p : s["points"]) {
      if (p.value("status", "") != "ok") continue;
      const double offered = dbl(p, "offered_rps"), achieved = dbl(p, "achieved_rps");
      out << num(offered) << ' ' << num(achieved) << ' ' << num(dbl(p, "p50_us") / 1000) << ' '
          << num(dbl(p, "p99_us") / 1000) << ' ' << num(dbl(p, "p999_us") / 1000) << ' '
          << (achieved >= 0.95 * offered ? 1 : 0) << '\n';
      ++rows;
    }
    if (rows) lines.push_back({file, name, s.value("kind", "") == "peer"});
  }
  if (lines.empty()) return "";
  std::string body = fmt::format(
      "reset\nset multiplot layout 1,3 title \"Latency under a fixed offered load, {} "
      "connections (coordinated omission corrected)\\n{}\" noenhanced\n"
      "set grid\nset logscale y 10\nset key top left noenhanced\nset format y '%g'\n"
      "set xlabel 'offered load (requests/s)'\nset ylabel 'latency (ms)'\nset xrange [0:*]\n",
      rs.value("connections", 0), sub);
  const std::pair<int, const char*> panels[] = {{3, "p50"}, {4, "p99"}, {5, "p99.9"}};
  for (const auto& [col, what] : panels) {
    body += fmt::format("set title '{}'\nplot ", what);
    for (std::size_t i = 0; i < lines.size(); ++i)
      body += fmt::format("'{}' using 1:{} with linespoints lt {} dt {} pt {} lw 2 title '{}', ",
                          lines[i].file, col, i + 1, lines[i].peer ? 2 : 1, i + 4,
                          quoted(lines[i].title));
    for (std::size_t i = 0; i < lines.size(); ++i)  // after the lines: the key lists them first
      body += fmt::format(
          "'{}' using 1:($6 > 0 ? 1/0 : ${}) with points pt 6 ps 2.5 lc rgb '#000000' {}, ",
          lines[i].file, col, i == 0 ? "title 'under 95% delivered'" : "notitle");
    body.resize(body.size() - 2);
    body += '\n';
  }
  body += "unset multiplot\n";
  return both("rate-sweep", "1500,560", png, body);
}

std::string rate_report(const nlohmann::json& rs) {
  std::string s = fmt::format(
      "## Latency under a fixed rate (the hockey stick)\n\n"
      "![p50, p99, p99.9 against offered load](graphs/rate-sweep.svg)\n\n"
      "The latency picture of this run. At {} connections a 1 s closed loop finds each server's "
      "saturation (its req/s); then constant-rate runs of {:.1f} s offer {} of it, each "
      "connection sending on a fixed schedule, and latency is taken from when each request "
      "*should* have been sent (coordinated omission corrected, as wrk2): below saturation it "
      "is the service time, past it the queue grows for the whole window and latency climbs "
      "with it. A black circle: the load generator delivered under 95% of the offered rate (it "
      "or the server could not keep the schedule). The closed-loop p99 of an ordinary sweep "
      "(graphs/latency.svg there) is mostly N / throughput; this is the picture to read latency "
      "from.\n\n"
      "| server | saturation req/s | ",
      rs.value("connections", 0), rs.value("duration_ms", 0) / 1000.0, [&] {
        std::string f;
        for (const auto& x : rs["fractions"])
          f += (f.empty() ? "" : ", ") + fmt::format("{:.0f}%", x.get<double>() * 100);
        return f;
      }());
  std::string sep = "|---|---:|";
  for (const auto& x : rs["fractions"]) {
    s += fmt::format("p99 ms at {:.0f}% | ", x.get<double>() * 100);
    sep += "---:|";
  }
  s += "\n" + sep + "\n";
  for (const auto& sv : rs["servers"]) {
    if (sv.value("status", "") != "ok") {
      s += fmt::format("| {} | failed: {} |\n", sv.value("server", ""),
                       sv.value("reason", std::string{}).substr(0, 200));
      continue;
    }
    s += fmt::format("| {} | {:.0f}{} | ", sv.value("server", ""), dbl(sv, "saturation_rps"),
                     sv.value("saturation_loadgen_bound", false) ? " (bound)" : "");
    for (const auto& p : sv["points"])
      s += p.value("status", "") == "ok"
               ? fmt::format("{:.2f}{} | ", dbl(p, "p99_us") / 1000,
                             dbl(p, "achieved_rps") < 0.95 * dbl(p, "offered_rps") ? "°" : "")
               : std::string("failed | ");
    s += "\n";
  }
  return s +
         "\n(bound): the load generator used ≥ 90% of its core while finding saturation, so the "
         "saturation is partly its own ceiling. °: under 95% of the offered rate was delivered."
         "\n\n";
}

// ---- wait --------------------------------------------------------------------------------

// A few words for where a server's sweep ended: what the point reached, or why it failed.
std::string end_words(const Point& p) {
  if (p.ok()) return fmt::format("reached {} of {}", p.reached, p.connections);
  const std::string& r = p.reason;
  auto has = [&r](const char* w) { return r.find(w) != std::string::npos; };
  if (p.status == "skipped" && has("RLIMIT_NOFILE")) return "out of file descriptors";
  if (has("pid_max")) return "pid_max";
  if (has("Resource temporarily unavailable") || has("EAGAIN") || has("pthread_create"))
    return "EAGAIN: no more threads/processes";
  if (has("fork")) return "fork failed";
  if (has("no response completed")) return "answered nothing";
  return p.status + ": " + r.substr(0, 32);
}

std::string wait_graphs(const std::string& dir, const Results& r, const std::string& png,
                        const std::string& sub, double sleep_ms) {
  std::vector<std::string> order;
  for (const auto& p : r.points)
    if (std::find(order.begin(), order.end(), p.server) == order.end()) order.push_back(p.server);
  struct Line {
    std::string file, name;
    bool peer;
    const Point* end = nullptr;   // the first point not measured at N (ok or not)
    const Point* last = nullptr;  // the last point at N before it
  };
  std::vector<Line> lines;
  int nmax = 1;
  for (const auto& name : order) {
    std::vector<const Point*> pts;
    for (const auto& p : r.points)
      if (p.server == name) pts.push_back(&p);
    std::sort(pts.begin(), pts.end(),
              [](const Point* a, const Point* b) { return a->connections < b->connections; });
    Line l{"graphs/data/wait-" + slug(name) + ".dat", name, false};
    std::ofstream out(dir + "/" + l.file, std::ios::trunc);
    out << "# connections rps pss_idle_mb threads_peak processes_peak at_n\n";
    for (const Point* p : pts) {
      nmax = std::max(nmax, p->connections);
      l.peer = p->kind == "peer";
      if (!l.end && !(p->ok() && p->at_n)) l.end = p;
      if (!l.end) l.last = p;
      if (!p->ok() || l.end) continue;  // the line stops where the server did
      out << p->connections << ' ' << num(p->rps) << ' '
          << (p->pss_idle_mb > 0 ? num(p->pss_idle_mb) : "?") << ' ' << p->threads_peak << ' '
          << p->processes_peak << " 1\n";
    }
    lines.push_back(std::move(l));
  }
  if (lines.empty()) return "";
  // The end markers: at the N where a server stopped, at the height of what it measured there
  // (or of its last point at N), with the reason beside it.
  auto markers = [&](auto value) {
    std::string m;
    int k = 100;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const Line& l = lines[i];
      if (!l.end) continue;
      double y = l.end->ok() ? value(*l.end) : (l.last ? value(*l.last) : NAN);
      if (!(y > 0)) continue;
      m += fmt::format(
          "set label {} '{}: {}' at {},{} point pt 12 ps 2.5 lw 2 lc rgb '#000000' offset "
          "1.2,{} font ',9' noenhanced\n",
          k++, quoted(l.name), quoted(end_words(*l.end)), l.end->connections, num(y),
          (i % 2) ? "-0.8" : "0.8");
    }
    return m;
  };
  auto plot = [&](int col, const std::string& extra) {
    std::string c = "plot ";
    for (std::size_t i = 0; i < lines.size(); ++i)
      c += fmt::format(
          "'{}' using 1:(${} > 0 ? ${} : 1/0) with linespoints lt {} dt {} pt {} lw 2 title '{}', ",
          lines[i].file, col, col, i + 1, lines[i].peer ? 2 : 1, i + 4, quoted(lines[i].name));
    c += extra;
    if (extra.empty()) c.resize(c.size() - 2);
    return c + "\n";
  };
  const std::string setup = fmt::format(
      "reset\nset grid\nset logscale x 10\nset logscale y 10\nset key outside right top "
      "noenhanced\nset xlabel 'concurrent connections, each request waiting {} ms'\n"
      "set format x '%.0f'\nset format y '%g'\nset datafile missing '?'\nset xrange [*:{}]\n",
      num(sleep_ms), nmax * 3);
  std::string g;
  {
    std::string b =
        setup +
        fmt::format(
            "set title \"Requests per second when every request waits {} ms\\n{}\" noenhanced\n"
            "set ylabel 'requests/s'\n",
            num(sleep_ms), sub) +
        markers([](const Point& p) { return p.rps; }) +
        plot(2, fmt::format("[1:{}] x * 1000 / {} with lines dt 3 lw 2 lc rgb '#000000' "
                            "title \"Little's law: N / {} ms\"",
                            nmax, num(sleep_ms), num(sleep_ms)));
    g += both("wait-rps", "1100,600", png, b);
  }
  {
    std::string b =
        setup +
        fmt::format(
            "set title \"Server memory (PSS) with N idle connections\\n{}\" noenhanced\n"
            "set ylabel 'PSS (MB)'\n",
            sub) +
        markers([](const Point& p) { return p.pss_idle_mb; }) + plot(3, "");
    g += both("wait-memory", "1100,600", png, b);
  }
  {
    std::string pid_max = "";
    if (r.meta.contains("machine") && r.meta["machine"].contains("pid_max") &&
        r.meta["machine"]["pid_max"].is_number())
      pid_max = fmt::format("{} with lines dt 2 lw 1 lc rgb '#7f7f7f' title 'pid_max {}'",
                            r.meta["machine"]["pid_max"].get<long>(),
                            r.meta["machine"]["pid_max"].get<long>());
    std::string b =
        setup +
        fmt::format(
            "set title \"Threads + processes of the server under load (peak)\\n{}\" noenhanced\n"
            "set ylabel 'threads (solid: threads, points: processes)'\n",
            sub) +
        markers([](const Point& p) { return double(p.threads_peak); }) + plot(4, pid_max);
    g += both("wait-tasks", "1100,600", png, b);
  }
  return g;
}

std::string wait_report(const Results& r, double sleep_ms) {
  std::string s = fmt::format(
      "## Waiting-heavy work: every request waits {} ms\n\n"
      "![req/s when requests wait](graphs/wait-rps.svg)\n\n"
      "Each request waits {} ms (the stand-in for a database call) and uses almost no CPU, so "
      "a server that keeps N requests waiting at once answers N / {} ms requests a second "
      "(Little's law, the dotted line) until something else runs out. A line stops where its "
      "server stopped being measured at N; the marker there says why (what it reached, or the "
      "failure: no more threads or processes, pid_max, descriptors).\n\n"
      "![memory](graphs/wait-memory.svg)\n\n![threads and processes](graphs/wait-tasks.svg)\n\n"
      "| server | conns | req/s | Little's law req/s | share | threads | processes | PSS idle MB "
      "| at N |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
      num(sleep_ms), num(sleep_ms), num(sleep_ms));
  for (const auto& p : r.points) {
    const double little = p.connections * 1000.0 / sleep_ms;
    if (!p.ok()) {
      s += fmt::format("| {} | {} | {}: {} | {:.0f} | | | | | no |\n", p.server, p.connections,
                       p.status, end_words(p), little);
      continue;
    }
    s += fmt::format("| {} | {} | {:.0f} | {:.0f} | {:.0f}% | {} | {} | {:.1f} | {} |\n", p.server,
                     p.connections, p.rps, little, 100 * p.rps / little, p.threads_peak,
                     p.processes_peak, p.pss_idle_mb,
                     p.at_n ? "yes" : fmt::format("reached {}", p.reached));
  }
  return s + "\n";
}

double path_sleep(const Results& r) {
  if (!r.meta.contains("config") || !r.meta["config"].contains("path")) return 0;
  return sleep_ms_of(r.meta["config"]["path"].get<std::string>());
}

}  // namespace

std::string scenario_graphs(const std::string& dir, const Results& r,
                            const std::string& png_terminal, const std::string& subtitle) {
  std::string g;
  if (r.scenarios.contains("stall"))
    g += stall_graph(dir, r.scenarios["stall"], png_terminal, subtitle);
  if (r.scenarios.contains("rate_sweep"))
    g += rate_graph(dir, r.scenarios["rate_sweep"], png_terminal, subtitle);
  if (double ms = path_sleep(r); ms > 0 && !r.points.empty())
    g += wait_graphs(dir, r, png_terminal, subtitle, ms);
  return g;
}

std::string scenario_report(const Results& r) {
  std::string s;
  if (r.scenarios.contains("stall")) s += stall_report(r.scenarios["stall"]);
  if (r.scenarios.contains("rate_sweep")) s += rate_report(r.scenarios["rate_sweep"]);
  if (double ms = path_sleep(r); ms > 0 && !r.points.empty()) s += wait_report(r, ms);
  return s;
}

}  // namespace shootout::runner
