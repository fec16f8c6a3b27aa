// LoadResult for machines (to_json, schema in docs/LOADGEN.md) and for people (summary).
#include <fmt/format.h>

#include "load.hpp"

namespace shootout::load {

namespace {

nlohmann::json latency_json(const LatencyHistogram& h) {
  const Percentiles p = h.summary();
  return {{"count", p.count},   {"min", p.min_us},     {"mean", p.mean_us}, {"stdev", p.stdev_us},
          {"max", p.max_us},    {"p50", p.p50_us},     {"p90", p.p90_us},   {"p99", p.p99_us},
          {"p99_9", p.p999_us}, {"p99_99", p.p9999_us}};
}

std::string time_text(double us) {
  if (us < 1e3) return fmt::format("{:.2f}us", us);
  if (us < 1e6) return fmt::format("{:.2f}ms", us / 1e3);
  return fmt::format("{:.2f}s", us / 1e6);
}

std::string bytes_text(double b) {
  if (b < 1024) return fmt::format("{:.0f}B", b);
  if (b < 1024 * 1024) return fmt::format("{:.2f}KB", b / 1024);
  if (b < 1024.0 * 1024 * 1024) return fmt::format("{:.2f}MB", b / 1024 / 1024);
  return fmt::format("{:.2f}GB", b / 1024 / 1024 / 1024);
}

void latency_lines(std::string& out, const char* title, const LatencyHistogram& h) {
  const Percentiles p = h.summary();
  out += fmt::format("  {:<22} avg {:>9}  stdev {:>9}  max {:>9}\n", title, time_text(p.mean_us),
                     time_text(p.stdev_us), time_text(p.max_us));
  out += fmt::format("  {:<22} 50% {:>9}  90% {:>9}  99% {:>9}  99.9% {:>9}  99.99% {:>9}\n", "",
                     time_text(p.p50_us), time_text(p.p90_us), time_text(p.p99_us),
                     time_text(p.p999_us), time_text(p.p9999_us));
}

void error_lines(std::string& out, const ErrorCounts& e) {
  if (e.total() == 0) {
    out += "  Errors: none\n";
    return;
  }
  out += fmt::format("  Errors: {} in total\n", e.total());
  auto line = [&](std::uint64_t n, const char* kind, const char* why) {
    if (n) out += fmt::format("    {:>10} {:<8} {}\n", n, kind, why);
  };
  line(e.connect, "connect", "connect() failed or took longer than --timeout (connection retried)");
  line(e.read, "read", "reset, or closed by the server before a whole response arrived");
  line(e.write, "write", "sending the request failed (reset or closed by the server)");
  line(e.timeout, "timeout", "no whole response within --timeout (connection closed and reopened)");
  line(e.status, "status", "HTTP status other than 2xx/3xx (still counted as a response)");
  line(e.body, "body", "unparsable response, bytes nobody asked for, or echo bytes that differ");
}

void server_lines(std::string& out, const ServerSample& s, std::uint64_t requests) {
  const double per = requests ? static_cast<double>(s.cpu_us) / static_cast<double>(requests) : 0;
  out += fmt::format("Server pid {} ({}), over {:.2f}s:\n", s.pid, s.source, s.window_s);
  out += fmt::format("  CPU {:.3f}s (user {:.3f}s, sys {:.3f}s), {:.2f}us/request\n",
                     static_cast<double>(s.cpu_us) / 1e6, static_cast<double>(s.utime_us) / 1e6,
                     static_cast<double>(s.stime_us) / 1e6, per);
  out += fmt::format("  PSS {} (peak {}), RSS {} (peak {}), {} processes, {} threads\n",
                     bytes_text(static_cast<double>(s.pss_kb) * 1024),
                     bytes_text(static_cast<double>(s.pss_kb_peak) * 1024),
                     bytes_text(static_cast<double>(s.rss_kb) * 1024),
                     bytes_text(static_cast<double>(s.rss_kb_peak) * 1024), s.processes, s.threads);
  out += fmt::format("  context switches: {} voluntary, {} involuntary{}\n", s.nvcsw, s.nivcsw,
                     s.switches_complete ? "" : " (live threads only)");
  out += fmt::format("  kernel TCP memory (system-wide): {} at start, {} at end, peak {}\n",
                     bytes_text(static_cast<double>(s.tcp_mem_bytes_start)),
                     bytes_text(static_cast<double>(s.tcp_mem_bytes)),
                     bytes_text(static_cast<double>(s.tcp_mem_bytes_peak)));
  if (s.server_requests)
    out += fmt::format("  server's own request count: {}\n", *s.server_requests);
}

// A histogram's raw state: its non-empty bins as [index, count] pairs, and its exact sums.
nlohmann::json raw_json(const LatencyHistogram& h) {
  std::vector<std::uint64_t> bins(LatencyHistogram::kStorageBins);
  h.export_bins(bins);
  nlohmann::json pairs = nlohmann::json::array();
  for (std::size_t i = 0; i < bins.size(); ++i)
    if (bins[i]) pairs.push_back({i, bins[i]});
  const auto r = h.raw();
  return {{"bins", pairs},      {"count", r.count}, {"sum", r.sum},
          {"sum_sq", r.sum_sq}, {"min", r.min},     {"max", r.max}};
}

void from_raw_json(LatencyHistogram& h, const nlohmann::json& j) {
  std::vector<std::uint64_t> bins(LatencyHistogram::kStorageBins);
  for (const auto& p : j.at("bins"))
    bins.at(p.at(0).get<std::size_t>()) = p.at(1).get<std::uint64_t>();
  h.import_raw(
      bins, {j.at("count").get<std::uint64_t>(), j.at("sum").get<double>(),
             j.at("sum_sq").get<double>(), j.at("min").get<double>(), j.at("max").get<double>()});
}

}  // namespace

LoadResult load_result_from_json(const nlohmann::json& j) {
  if (!j.contains("raw"))
    throw LoadError("the load's JSON has no \"raw\" histograms (shootout load --json-raw)");
  LoadResult r;
  LoadConfig& c = r.config;
  auto ms = [&](const char* key) {
    return std::chrono::milliseconds(std::llround(j.at(key).get<double>() * 1e3));
  };
  c.url = j.at("target").get<std::string>();
  const std::string mode = j.at("mode").get<std::string>();
  c.mode = mode == "rate" ? Mode::rate : mode == "idle" ? Mode::idle : Mode::closed;
  c.threads = j.at("threads").get<int>();
  c.connections = j.at("connections").get<int>();
  c.pipeline = j.at("pipeline").get<int>();
  c.duration = ms("duration_s");
  c.warmup = ms("warmup_s");
  c.timeout = ms("timeout_s");
  c.open_timeout = ms("open_timeout_s");
  c.rate = j.at("rate").get<double>();
  c.connect_rate = j.at("connect_rate").get<double>();
  c.echo_size = j.at("echo_size").get<std::size_t>();
  c.engine = parse_engine(j.value("engine", "asio"));  // absent before the uring engine
  r.protocol = j.at("protocol").get<std::string>();
  r.elapsed_s = j.at("elapsed_s").get<double>();
  r.requests = j.at("requests").get<std::uint64_t>();
  r.bytes_read = j.at("bytes_read").get<std::uint64_t>();
  r.responses_total = j.at("responses_total").get<std::uint64_t>();
  r.sent_total = j.at("sent_total").get<std::uint64_t>();
  const auto& e = j.at("errors");
  r.errors = {e.at("connect").get<std::uint64_t>(), e.at("read").get<std::uint64_t>(),
              e.at("write").get<std::uint64_t>(),   e.at("timeout").get<std::uint64_t>(),
              e.at("status").get<std::uint64_t>(),  e.at("body").get<std::uint64_t>()};
  from_raw_json(r.latency, j.at("raw").at("latency"));
  from_raw_json(r.latency_uncorrected, j.at("raw").at("latency_uncorrected"));
  r.per_second = j.at("per_second").get<std::vector<std::uint64_t>>();
  r.client_utime_us = j.at("client_cpu").at("utime_us").get<double>();
  r.client_stime_us = j.at("client_cpu").at("stime_us").get<double>();
  r.client_cpu_from_s = j.at("client_cpu").value("from_s", 0.0);
  r.client_cpu_to_s = j.at("client_cpu").value("to_s", 0.0);
  if (!j.at("server").is_null()) r.server = ServerSample::from_json(j.at("server"));
  // Absent before 2026-12-04 (the sampler's CPU was then the server sample's sampler_cpu_us).
  r.client_sampler_cpu_us =
      j.at("client_cpu").value("sampler_us", r.server ? r.server->sampler_cpu_us : 0.0);
  const auto& k = j.at("concurrency");
  r.ramp_s = k.at("ramp_s").get<double>();
  r.settle_s = k.value("settle_s", 0.0);  // absent before 2026-12-04
  r.ramp_reached = k.at("answered_by_ramp_end").get<std::uint64_t>();
  r.connections_in_window = k.at("served_in_window").get<std::uint64_t>();
  if (j.contains("idle")) {
    r.idle_opened = j.at("idle").at("opened").get<std::uint64_t>();
    r.idle_alive = j.at("idle").at("alive_after_hold").get<std::uint64_t>();
  }
  r.ranks = j.value("ranks", 1);
  if (j.contains("per_rank"))
    for (const auto& p : j.at("per_rank"))
      r.per_rank.push_back(
          {p.at("rank").get<int>(), p.at("host").get<std::string>(),
           p.at("connections").get<std::uint64_t>(), p.at("requests").get<std::uint64_t>(),
           p.at("responses_total").get<std::uint64_t>(), p.at("errors").get<std::uint64_t>(),
           p.value("cpus", "")});  // cpus: absent before 2026-12-04
  return r;
}

nlohmann::json LoadResult::to_json(bool raw) const {
  const LoadConfig& c = config;
  const double cpu = load_cpu_us();
  nlohmann::json j = {
      {"schema", "shootout-load/1"},
      {"target", c.url},
      {"protocol", protocol},
      {"mode", mode_name(c.mode)},
      {"engine", engine_name(c.engine)},
      {"threads", c.threads},
      {"connections", c.connections},
      {"pipeline", c.pipeline},
      {"duration_s", std::chrono::duration<double>(c.duration).count()},
      {"warmup_s", std::chrono::duration<double>(c.warmup).count()},
      {"timeout_s", std::chrono::duration<double>(c.timeout).count()},
      {"open_timeout_s", std::chrono::duration<double>(c.open_timeout).count()},
      {"rate", c.rate},
      {"connect_rate", c.connect_rate},
      {"echo_size", c.echo_size},
      {"elapsed_s", elapsed_s},
      {"requests", requests},
      {"requests_per_s", requests_per_s()},
      {"bytes_read", bytes_read},
      {"bytes_per_s", elapsed_s > 0 ? static_cast<double>(bytes_read) / elapsed_s : 0},
      {"responses_total", responses_total},
      {"sent_total", sent_total},
      {"errors",
       {{"connect", errors.connect},
        {"read", errors.read},
        {"write", errors.write},
        {"timeout", errors.timeout},
        {"status", errors.status},
        {"body", errors.body},
        {"total", errors.total()}}},
      {"latency_us", latency_json(latency)},
      {"latency_corrected", c.mode == Mode::rate},
      {"latency_uncorrected_us", latency_json(latency_uncorrected)},
      {"per_second", per_second},
      {"client_cpu",
       {{"utime_us", client_utime_us},
        {"stime_us", client_stime_us},
        {"cpu_us", cpu},
        {"sampler_us", client_sampler_cpu_us},
        {"from_s", client_cpu_from_s},
        {"to_s", client_cpu_to_s},
        {"cores", client_cores()},
        {"cpu_us_per_request", requests ? cpu / static_cast<double>(requests) : 0}}},
      {"server", server ? server->to_json() : nlohmann::json(nullptr)},
      {"concurrency",
       {{"asked", c.connections},
        {"ramp_s", ramp_s},
        {"settle_s", settle_s},
        {"answered_by_ramp_end", ramp_reached},
        {"served_in_window", connections_in_window}}},
  };
  if (c.mode == Mode::idle)
    j["idle"] = {{"connections", c.connections},
                 {"opened", idle_opened},
                 {"alive_after_hold", idle_alive},
                 {"hold_s", elapsed_s}};
  // Several load processes (mpirun): how many, and each one's share. Absent with one process.
  if (ranks > 1) {
    j["ranks"] = ranks;
    nlohmann::json list = nlohmann::json::array();
    for (const RankSummary& p : per_rank)
      list.push_back({{"rank", p.rank},
                      {"host", p.host},
                      {"connections", p.connections},
                      {"requests", p.requests},
                      {"responses_total", p.responses_total},
                      {"errors", p.errors},
                      {"cpus", p.cpus}});
    j["per_rank"] = list;
  }
  if (raw)
    j["raw"] = {{"latency", raw_json(latency)},
                {"latency_uncorrected", raw_json(latency_uncorrected)}};
  if (server && requests)
    j["server"]["cpu_us_per_request"] =
        static_cast<double>(server->cpu_us) / static_cast<double>(requests);
  return j;
}

std::string LoadResult::summary() const {
  const LoadConfig& c = config;
  std::string out;
  const char* how = c.mode == Mode::closed ? "closed loop"
                    : c.mode == Mode::rate ? "constant rate"
                                           : "idle hold";
  out += fmt::format("Running {} test @ {} ({}, {})\n",
                     time_text(std::chrono::duration<double, std::micro>(c.duration).count()),
                     c.url, how, protocol);
  if (ranks > 1)
    out += fmt::format("  {} ranks of {} threads and {} connections in total", ranks, c.threads,
                       c.connections);
  else
    out += fmt::format("  {} threads and {} connections", c.threads, c.connections);
  if (c.engine != EngineKind::asio) out += fmt::format(", {} engine", engine_name(c.engine));
  if (c.pipeline > 1) out += fmt::format(", pipeline {}", c.pipeline);
  if (c.mode == Mode::rate) out += fmt::format(", {:.0f} requests/s asked", c.rate);
  out += "\n";
  for (const RankSummary& p : per_rank)
    out += fmt::format("    rank {} on {} (CPUs {}): {} connections, {} requests, {} errors\n",
                       p.rank, p.host, p.cpus, p.connections, p.requests, p.errors);
  if (c.mode == Mode::rate) {
    latency_lines(out, "Latency (corrected)", latency);
    latency_lines(out, "Latency (uncorrected)", latency_uncorrected);
  } else {
    latency_lines(out, "Latency", latency);
  }
  out += fmt::format("  {} requests in {:.2f}s, {} read\n", requests, elapsed_s,
                     bytes_text(static_cast<double>(bytes_read)));
  if (c.mode == Mode::idle)
    out += fmt::format(
        "  Idle hold: {} of {} connections opened and answered, {} still alive after {:.2f}s\n",
        idle_opened, c.connections, idle_alive, elapsed_s);
  if (c.mode != Mode::idle) {
    if (ramp_reached < static_cast<std::uint64_t>(c.connections))
      out += fmt::format(
          "  Ramp: only {} of {} connections answered after {:.2f}s; the window "
          "opened anyway\n",
          ramp_reached, c.connections, ramp_s);
    if (c.mode == Mode::closed)
      out += fmt::format(
          "  Window opened {:.2f}s after the ramp's release, once its requests were answered\n",
          settle_s);
    out += fmt::format("  Connections served in the window: {} of {}\n", connections_in_window,
                       c.connections);
  }
  error_lines(out, errors);
  out += fmt::format("Requests/sec: {:>12.2f}\n", requests_per_s());
  out += fmt::format("Transfer/sec: {:>12}\n",
                     bytes_text(elapsed_s > 0 ? static_cast<double>(bytes_read) / elapsed_s : 0));
  const double cpu = load_cpu_us();
  out += fmt::format("Load generator CPU: {:.3f}s over {:.2f}s ({:.2f} cores, {:.2f}us/request)\n",
                     cpu / 1e6, client_cpu_s(), client_cores(),
                     requests ? cpu / static_cast<double>(requests) : 0.0);
  if (server) server_lines(out, *server, requests);
  return out;
}

}  // namespace shootout::load
