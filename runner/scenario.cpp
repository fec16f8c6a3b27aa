// The scenarios (scenario.hpp says what each measures): the stall and the rate sweep, run here;
// the graphs and report sections of all three (stall, rate sweep, wait).
#include "scenario.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include "process.hpp"
#include "progress.hpp"

namespace shootout::runner {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// The value at quantile q of sorted values (nearest rank), 0 if none.
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

// A file name from a label: "evented offload" -> "evented-offload".
std::string slug(std::string s) {
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '-';
  return s;
}

// One client that sends GET /cpu?us=B once per interval on one keep-alive connection and
// records when each was sent and answered. Beast over Asio with a deadline on every
// operation, so a wedged server cannot hang the scenario: an operation past its deadline ends
// the burner with the error recorded.
class Burner {
 public:
  Burner(std::uint16_t port, const StallOptions& o, Clock::time_point first, milliseconds timeout)
      : port_(port), options_(o), first_(first), timeout_(timeout) {
    thread_ = std::thread([this] { run(); });
  }
  ~Burner() { finish(); }
  // Stops after the burn in flight, if any; returns the burns. Calling thread.
  std::vector<BurnRecord> finish() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    return burns_;
  }

 private:
  void run() {
    namespace beast = boost::beast;
    namespace http = beast::http;
    boost::asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    beast::flat_buffer buffer;
    // Each step runs the io_context until its handler ran; false (with `error` set) on failure.
    auto step = [&](auto start, std::string& error) {
      beast::error_code ec;
      bool done = false;
      stream.expires_after(timeout_);
      start([&](beast::error_code e, auto&&...) {
        ec = e;
        done = true;
      });
      ioc.restart();
      ioc.run();
      if (!done || ec) error = ec ? ec.message() : "no completion";
      return done && !ec;
    };
    std::string error;
    const boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), port_);
    if (!step([&](auto h) { stream.async_connect(ep, h); }, error)) {
      burns_.push_back({now_ns(), 0, 0, "connect: " + error});
      return;
    }
    http::request<http::empty_body> req{http::verb::get,
                                        fmt::format("/cpu?us={}", options_.burn.count()), 11};
    req.set(http::field::host, fmt::format("127.0.0.1:{}", port_));
    req.keep_alive(true);
    for (auto next = first_;; next += options_.every) {
      {
        std::unique_lock lock(mutex_);
        if (wake_.wait_until(lock, next, [this] { return stopping_; })) return;
      }
      BurnRecord b;
      b.sent_ns = now_ns();
      http::response<http::string_body> res;
      const bool ok = step([&](auto h) { http::async_write(stream, req, h); }, error) &&
                      step([&](auto h) { http::async_read(stream, buffer, res, h); }, error);
      if (ok) {
        b.done_ns = now_ns();
        b.status = static_cast<int>(res.result_int());
      } else {
        b.error = error;
      }
      burns_.push_back(b);
      if (!ok) return;
      if (Clock::now() > next + options_.every) next = Clock::now() - options_.every;
    }
  }

  std::uint16_t port_;
  StallOptions options_;
  Clock::time_point first_;
  milliseconds timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<BurnRecord> burns_;  // the burner's thread's until joined
  std::thread thread_;
};

nlohmann::json failed(nlohmann::json j, const std::string& why) {
  j["status"] = "failed";
  j["reason"] = why;
  return j;
}

}  // namespace

std::vector<StallVariant> stall_variants(const std::vector<std::string>& models) {
  static const std::vector<StallVariant> all = {
      {"evented inline", "evented", {}},
      {"evented offload", "evented", {"--offload-cpu"}},
      {"threaded", "threaded", {}},
      {"coroutine inline", "coroutine", {}},
      {"coroutine offload", "coroutine", {"--offload-cpu"}},
      {"uring inline", "uring", {}},
  };
  std::vector<StallVariant> out;
  for (const auto& v : all)
    if (std::find(models.begin(), models.end(), v.model) != models.end()) out.push_back(v);
  return out;
}

nlohmann::json analyse_stall(const std::vector<load::TimelineEntry>& timeline,
                             const std::vector<BurnRecord>& burns) {
  nlohmann::json j;
  if (timeline.empty()) return failed(j, "no GET / was answered in the window");
  // Time zero: the first GET / of the window was sent.
  std::int64_t t0 = timeline.front().done_ns;
  for (const auto& e : timeline)
    t0 = std::min(t0, e.done_ns - static_cast<std::int64_t>(double(e.actual_us) * 1000));
  const std::int64_t end = timeline.back().done_ns;
  auto secs = [t0](std::int64_t ns) { return double(ns - t0) / 1e9; };

  struct Span {
    std::int64_t from, to;
    bool answered;
  };
  std::vector<Span> spans;
  nlohmann::json burns_json = nlohmann::json::array();
  for (const auto& b : burns) {
    // A burn that began after the last GET / of the window says nothing about it.
    if (b.sent_ns >= end) continue;
    const bool answered = b.done_ns > 0;
    spans.push_back({b.sent_ns, answered ? b.done_ns : end, answered});
    burns_json.push_back({{"sent_s", secs(b.sent_ns)},
                          {"done_s", answered ? nlohmann::json(secs(b.done_ns)) : nullptr},
                          {"latency_ms", answered ? double(b.done_ns - b.sent_ns) / 1e6 : NAN},
                          {"status", b.status},
                          {"error", b.error}});
  }
  std::vector<double> all, during, calm;
  std::uint64_t held_across = 0, answered_inside = 0;
  for (const auto& e : timeline) {
    const double us = e.latency_us;
    const std::int64_t sent = e.done_ns - static_cast<std::int64_t>(double(e.actual_us) * 1000);
    all.push_back(us);
    bool in_burn = false;
    for (const auto& s : spans) {
      if (sent <= s.to && e.done_ns >= s.from) in_burn = true;
      const std::int64_t mid = s.from + (s.to - s.from) / 2;
      if (!s.answered) continue;
      if (sent >= s.from && sent < mid && e.done_ns > mid) ++held_across;
      if (sent > mid && e.done_ns < s.to) ++answered_inside;
    }
    (in_burn ? during : calm).push_back(us);
  }
  for (auto* v : {&all, &during, &calm}) std::sort(v->begin(), v->end());
  j["status"] = "ok";
  j["requests"] = all.size();
  j["window_s"] = secs(end);
  j["p50_us"] = quantile(all, 0.5);
  j["p99_us"] = quantile(all, 0.99);
  j["max_us"] = all.empty() ? 0 : all.back();
  j["burn_requests"] = during.size();
  j["p50_burn_us"] = quantile(during, 0.5);
  j["p99_burn_us"] = quantile(during, 0.99);
  j["max_burn_us"] = during.empty() ? 0 : during.back();
  j["p99_calm_us"] = quantile(calm, 0.99);
  j["held_across"] = held_across;
  j["answered_inside"] = answered_inside;
  j["burns"] = burns_json;
  // The graph's series: per 10 ms of completion time, the median and the largest latency.
  constexpr double kBucket = 0.010;
  std::map<long, std::vector<double>> buckets;
  for (const auto& e : timeline)
    buckets[static_cast<long>(secs(e.done_ns) / kBucket)].push_back(e.latency_us / 1000.0);
  nlohmann::json series = nlohmann::json::array();
  for (auto& [k, v] : buckets) {
    std::sort(v.begin(), v.end());
    series.push_back({(double(k) + 0.5) * kBucket, quantile(v, 0.5), v.back(), v.size()});
  }
  j["series"] = series;
  return j;
}

void run_stall(const SweepConfig& c, const StallOptions& o, Results& results,
               const std::atomic<bool>& stop, Progress& progress,
               const std::function<void()>& on_variant) {
  const int n = c.connections.front();
  nlohmann::json& out = results.scenarios["stall"];
  out = {{"connections", n},
         {"burn_us", o.burn.count()},
         {"every_ms", o.every.count()},
         {"duration_ms", c.duration.count()},
         {"variants", nlohmann::json::array()}};
  std::filesystem::create_directories(c.out_dir + "/stall");
  for (const auto& v : stall_variants(c.models)) {
    if (stop) return;
    progress.begin(v.label, 1.0 + (c.warmup + c.duration).count() / 1000.0);
    nlohmann::json j{{"label", v.label}, {"model", v.model}, {"args", v.args}};
    progress.phase("starting server");
    StartedServer s = start_server(c, v.model, false, n, "stall-" + slug(v.label), v.args);
    if (!s.error.empty()) {
      j = failed(j, s.error);
    } else {
      load::LoadConfig lc;
      lc.url = fmt::format("http://127.0.0.1:{}/", s.port);
      lc.threads = std::min(c.threads, n);
      lc.engine = c.load_engine;
      lc.connections = n;
      lc.duration = c.duration;
      lc.warmup = c.warmup;
      lc.timeout = c.timeout;
      lc.ramp_timeout = c.warmup + milliseconds(5'000);
      lc.timeline_max = 4'000'000;  // 64 MB at most; ~100,000 a second here
      progress.phase("GET / with a burn a second");
      // The first burn a quarter second into the window (the ramp of a few connections is
      // immediate), then one a second until the window ends.
      Burner burner(s.port, o, Clock::now() + c.warmup + milliseconds(250), c.timeout);
      std::optional<load::LoadResult> r;
      std::string error;
      try {
        r = run_load_with_limit(lc);
      } catch (const load::LoadError& e) {
        error = e.what();
      }
      std::vector<BurnRecord> burns = burner.finish();
      if (!r) {
        j = failed(j, error.empty() ? "the load run did not come back and was abandoned" : error);
      } else {
        nlohmann::json a = analyse_stall(r->timeline.entries(), burns);
        j.update(a);
        j["errors"] = r->errors.total();
        j["timeline_dropped"] = r->timeline.dropped();
        // Every GET / of the window, for whoever wants more than the graph's 10 ms buckets.
        std::string file = "stall/" + slug(v.label) + ".tsv";
        std::ofstream tsv(c.out_dir + "/" + file, std::ios::trunc);
        tsv << "# done_ns (steady_clock)\tlatency_us\n";
        for (const auto& e : r->timeline.entries())
          tsv << e.done_ns << '\t' << e.latency_us << '\n';
        tsv << "# burns: sent_ns done_ns status\n";
        for (const auto& b : burns)
          tsv << "# " << b.sent_ns << ' ' << b.done_ns << ' ' << b.status << '\n';
        j["timeline_file"] = file;
      }
      progress.phase("stopping");
      if (std::string note = stop_server(s); !note.empty() && !stop) j["notes"].push_back(note);
    }
    if (stop) return;
    progress.end(j.value("status", "") == "ok"
                     ? fmt::format("p99 during burns {:.1f} ms, outside {:.2f} ms",
                                   j.value("p99_burn_us", 0.0) / 1000,
                                   j.value("p99_calm_us", 0.0) / 1000)
                     : "failed: " + j.value("reason", std::string{}).substr(0, 200));
    out["variants"].push_back(std::move(j));
    on_variant();
  }
}

const std::vector<double>& rate_fractions() {
  static const std::vector<double> f = {0.1, 0.25, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5};
  return f;
}

void run_rate_sweep(const SweepConfig& c, Results& results, const std::atomic<bool>& stop,
                    Progress& progress, const std::function<void()>& on_point) {
  const int n = c.connections.front();
  nlohmann::json& out = results.scenarios["rate_sweep"];
  out = {{"connections", n},
         {"fractions", rate_fractions()},
         {"duration_ms", c.duration.count()},
         {"warmup_ms", c.warmup.count()},
         {"servers", nlohmann::json::array()}};
  std::vector<std::pair<std::string, bool>> servers;
  for (const auto& m : c.models) servers.emplace_back(m, false);
  for (const auto& p : c.peers) servers.emplace_back(p, true);
  const int cores = c.pin ? 1 : static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  for (const auto& [name, peer] : servers) {
    if (stop) return;
    nlohmann::json j{
        {"server", name}, {"kind", peer ? "peer" : "model"}, {"points", nlohmann::json::array()}};
    progress.begin(name + " saturation", 2.0);
    progress.phase("starting server");
    StartedServer s = start_server(c, name, peer, n, fmt::format("rate-{}-{}", name, n));
    auto base = [&] {
      load::LoadConfig lc;
      lc.url = fmt::format("http://127.0.0.1:{}{}", s.port, c.path);
      lc.threads = std::min(c.threads, n);
      lc.engine = c.load_engine;
      lc.connections = n;
      lc.timeout = c.timeout;
      return lc;
    };
    // Stops the server and records the server's part; `outcome` ends the current item.
    auto finish = [&](const std::string& outcome) {
      if (std::string note = stop_server(s); !note.empty() && !stop) j["notes"].push_back(note);
      if (!outcome.empty()) progress.end(outcome);
      if (stop) return;
      out["servers"].push_back(j);
      on_point();
    };
    if (!s.error.empty()) {
      j = failed(j, s.error);
      progress.forgo(static_cast<int>(rate_fractions().size()), 0);
      finish("failed: " + s.error.substr(0, 200));
      continue;
    }
    // Saturation: a short closed loop at N.
    load::LoadConfig sat = base();
    sat.duration = milliseconds(1'000);
    sat.warmup = milliseconds(300);
    std::optional<load::LoadResult> r;
    std::string error;
    progress.phase("closed loop");
    try {
      r = run_load_with_limit(sat);
    } catch (const load::LoadError& e) {
      error = e.what();
    }
    if (!r || r->requests == 0) {
      j = failed(j, error.empty() ? "the closed loop answered nothing" : error);
      progress.forgo(static_cast<int>(rate_fractions().size()), 0);
      finish("failed: " + j["reason"].get<std::string>().substr(0, 200));
      continue;
    }
    const double saturation = r->requests_per_s();
    const double lg_cores = r->client_cores();
    j["saturation_rps"] = saturation;
    j["saturation_p99_us"] = r->latency.summary().p99_us;
    j["saturation_loadgen_bound"] = lg_cores >= kLoadgenBoundShare * std::min(sat.threads, cores);
    j["status"] = "ok";
    progress.end(fmt::format("saturation {:.0f} req/s", saturation));
    for (double f : rate_fractions()) {
      if (stop) break;
      progress.begin(fmt::format("{} at {:.0f}%", name, f * 100),
                     (c.warmup + c.duration).count() / 1000.0);
      load::LoadConfig lc = base();
      lc.mode = load::Mode::rate;
      lc.rate = std::max(1.0, f * saturation);
      lc.duration = c.duration;
      lc.warmup = c.warmup;
      nlohmann::json p{{"fraction", f}, {"offered_rps", lc.rate}};
      progress.phase("constant rate");
      try {
        r = run_load_with_limit(lc);
        error.clear();
      } catch (const load::LoadError& e) {
        r.reset();
        error = e.what();
      }
      if (!r) {
        p["status"] = "failed";
        p["reason"] = error.empty() ? "the load run did not come back" : error;
        progress.end("failed");
      } else {
        const load::Percentiles q = r->latency.summary();
        p.update({{"status", "ok"},
                  {"achieved_rps", r->requests_per_s()},
                  {"p50_us", q.p50_us},
                  {"p99_us", q.p99_us},
                  {"p999_us", q.p999_us},
                  {"max_us", q.max_us},
                  {"p99_uncorrected_us", r->latency_uncorrected.summary().p99_us},
                  {"errors", r->errors.total()}});
        progress.end(fmt::format("{:.0f} of {:.0f} req/s, p99 {:.2f} ms", r->requests_per_s(),
                                 lc.rate, q.p99_us / 1000));
      }
      j["points"].push_back(p);
    }
    finish("");
  }
}

double sleep_ms_of(const std::string& path) {
  const auto q = path.find('?');
  if (path.substr(0, q) != "/sleep" || q == std::string::npos) return 0;
  const auto at = path.find("ms=", q);
  if (at == std::string::npos) return 0;
  try {
    return std::stod(path.substr(at + 3));
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace shootout::runner
