#include "load.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/resource.h>

#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <thread>

#include "worker.hpp"

namespace shootout::load {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

void ErrorCounts::add(const ErrorCounts& o) {
  connect += o.connect;
  read += o.read;
  write += o.write;
  timeout += o.timeout;
  status += o.status;
  body += o.body;
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::closed:
      return "closed";
    case Mode::rate:
      return "rate";
    case Mode::idle:
      return "idle";
  }
  return "?";
}

std::pair<std::uint64_t, std::uint64_t> raise_fd_limit() {
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur < r.rlim_max) {
    rlimit raised = r;
    raised.rlim_cur = r.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) r = raised;
  }
  return {r.rlim_cur, r.rlim_max};
}

Target parse_target(std::string_view url) {
  Target t;
  std::string_view rest = url;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("tcp://")) {
    rest.remove_prefix(6);
    t.echo_scheme = true;
  } else {
    throw LoadError(
        fmt::format("bad target '{}': expected http://HOST:PORT/PATH or tcp://HOST:PORT", url));
  }
  const auto slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) t.path = std::string(rest.substr(slash));
  const auto colon = hostport.rfind(':');
  t.host = std::string(hostport.substr(0, colon));
  if (colon != std::string_view::npos) {
    auto port = hostport.substr(colon + 1);
    unsigned v = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || end != port.data() + port.size() || v == 0 || v > 65535)
      throw LoadError(fmt::format("bad port '{}' in target '{}'", port, url));
    t.port = static_cast<std::uint16_t>(v);
  } else if (t.echo_scheme) {
    throw LoadError(fmt::format("target '{}' needs a port", url));
  }
  if (t.host.empty()) throw LoadError(fmt::format("target '{}' has no host", url));
  return t;
}

std::chrono::milliseconds parse_duration(std::string_view text) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || !(value >= 0))
    throw LoadError(fmt::format("bad duration '{}': expected e.g. 500ms, 5s, 2m, 1h", text));
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  double ms = 0;
  if (unit == "ms")
    ms = value;
  else if (unit.empty() || unit == "s")
    ms = value * 1e3;
  else if (unit == "m")
    ms = value * 60e3;
  else if (unit == "h")
    ms = value * 3600e3;
  else
    throw LoadError(fmt::format("bad duration unit in '{}': use ms, s, m or h", text));
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

namespace {

void validate(const LoadConfig& c) {
  if (c.threads < 1) throw LoadError("--threads must be at least 1");
  if (c.connections < 1) throw LoadError("--connections must be at least 1");
  if (c.pipeline < 1 || c.pipeline > 1024) throw LoadError("--pipeline must be 1..1024");
  if (c.mode == Mode::rate && !(c.rate > 0)) throw LoadError("rate mode needs -R/--rate > 0");
  if (c.mode != Mode::closed && c.pipeline != 1)
    throw LoadError("--pipeline applies to the closed-loop mode only");
  if (c.timeout.count() <= 0) throw LoadError("--timeout must be positive");
  if (c.open_timeout.count() <= 0) throw LoadError("--open-timeout must be positive");
  if (c.ramp_timeout.count() < 0) throw LoadError("--ramp-timeout must not be negative");
  if (c.connect_rate < 0) throw LoadError("--connect-rate must not be negative");
  if (c.echo_size > (64u << 20)) throw LoadError("--echo SIZE must be at most 64 MiB");
}

// The probe named by --handler; without it, HTTP for http:// and echo for tcp:// or --echo.
std::string probe_name(const LoadConfig& c, const Target& t) {
  if (!c.handler.empty()) return c.handler;
  return t.echo_scheme || c.echo_size > 0 ? "echo" : "http";
}

std::shared_ptr<const Probe> make_probe_for(const std::string& name, const LoadConfig& c,
                                            const Target& t) {
  ProbeConfig pc{t.host, t.port, t.path, c.headers, c.echo_size, c.pipeline};
  std::unique_ptr<Probe> probe;
  try {
    probe = make_probe(name, pc);
  } catch (const std::invalid_argument& e) {
    throw LoadError(e.what());
  }
  if (!probe)
    throw LoadError(
        fmt::format("no probe for handler '{}': the load generator speaks {} (a plug-in's with "
                    "--handler-lib)",
                    name, fmt::join(probe_names(), ", ")));
  return probe;
}

tcp::endpoint resolve(const Target& t) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address_v4(t.host == "localhost" ? "127.0.0.1" : t.host, ec);
  if (!ec) return {address, t.port};
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(tcp::v4(), t.host, std::to_string(t.port), ec);
  if (ec || results.empty())
    throw LoadError(
        fmt::format("cannot resolve '{}': {}", t.host, ec ? ec.message() : "no address"));
  return results.begin()->endpoint();
}

Plan make_plan(const LoadConfig& c, const Target& t, const std::string& protocol) {
  Plan p;
  p.mode = c.mode;
  p.pipeline = c.pipeline;
  p.probe = make_probe_for(protocol, c, t);
  p.endpoint = resolve(t);
  p.timeout = c.timeout;
  if (c.mode == Mode::rate) {
    p.rate_step =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / c.rate));
    p.send_interval = p.rate_step * c.connections;
  }
  if (c.connect_rate > 0)
    p.connect_interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(c.threads / c.connect_rate));
  const auto secs = std::chrono::duration<double>(c.duration).count();
  p.seconds = static_cast<std::size_t>(std::ceil(secs)) + 1;
  p.timeline_max = c.timeline_max;
  return p;
}

std::string fd_message(std::uint64_t soft, std::uint64_t hard, int opened, int wanted) {
  return fmt::format(
      "out of file descriptors: RLIMIT_NOFILE is {} (hard limit {}), and only {} of the {} "
      "connections could be opened. Raise the limit (ulimit -n {} or more; prlimit; "
      "/etc/security/limits.conf) or ask for fewer connections.",
      soft, hard, opened, wanted, wanted + 64);
}

// Workers and their sockets, built on this thread before any load thread starts.
std::vector<std::unique_ptr<Worker>> make_workers(const Plan& plan, const LoadConfig& c) {
  const auto [soft, hard] = raise_fd_limit();
  std::vector<std::unique_ptr<Worker>> workers;
  int first = 0, opened = 0;
  for (int i = 0; i < c.threads; ++i) {
    const int count = c.connections / c.threads + (i < c.connections % c.threads ? 1 : 0);
    try {
      workers.push_back(std::make_unique<Worker>(plan, first, count));
    } catch (const std::system_error& e) {
      if (e.code().value() == EMFILE || e.code().value() == ENFILE)
        throw LoadError(fd_message(soft, hard, opened, c.connections));
      throw LoadError(fmt::format("cannot set up load thread {}: {}", i, e.what()));
    }
    boost::system::error_code ec;
    opened += workers.back()->open_sockets(ec);
    if (ec == asio::error::no_descriptors || ec.value() == ENFILE || ec.value() == EMFILE)
      throw LoadError(fd_message(soft, hard, opened, c.connections));
    if (ec) throw LoadError(fmt::format("cannot open a socket: {}", ec.message()));
    first += count;
  }
  return workers;
}

struct Usage {
  double utime_us = 0, stime_us = 0;
};
Usage self_usage() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto us = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec);
  };
  return {us(u.ru_utime), us(u.ru_stime)};
}

// The measurement window seen from the main thread: client CPU and the server sampler.
class Window {
 public:
  explicit Window(const LoadConfig& c) {
    if (c.server) sampler_.emplace(*c.server);
  }
  void open() {
    start_ = self_usage();
    opened_at_ = Clock::now();
    if (sampler_) sampler_->start();
  }
  void close(LoadResult& r) {
    if (sampler_) r.server = sampler_->stop();
    const Usage end = self_usage();
    closed_at_ = Clock::now();
    r.client_utime_us = end.utime_us - start_.utime_us;
    r.client_stime_us = end.stime_us - start_.stime_us;
  }
  double seconds() const { return std::chrono::duration<double>(closed_at_ - opened_at_).count(); }

 private:
  std::optional<ServerSampler> sampler_;
  Usage start_;
  Clock::time_point opened_at_, closed_at_;
};

// Idle: the ramp (N / connect_rate), then open_timeout for the connects and first responses.
void set_deadlines(Plan& plan, const LoadConfig& c) {
  const double ramp_s = c.connect_rate > 0 ? c.connections / c.connect_rate : 0;
  const auto ramp =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(ramp_s));
  plan.first_round_by = plan.start + ramp + c.open_timeout;
  if (c.mode == Mode::idle)
    plan.deadline = plan.first_round_by + c.duration + c.timeout + std::chrono::seconds(10);
}

int answered_once(const std::vector<std::unique_ptr<Worker>>& workers) {
  int n = 0;
  for (const auto& w : workers) n += w->answered_once();
  return n;
}

// Closed mode's ramp: returns when every connection has had a response or at `bound`.
void wait_ramp(const std::vector<std::unique_ptr<Worker>>& workers, int connections,
               Clock::time_point bound) {
  while (answered_once(workers) < connections && Clock::now() < bound)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
}

// Idle mode: every worker has finished its first round, or the deadline has passed.
void wait_first_round(const std::vector<std::unique_ptr<Worker>>& workers,
                      Clock::time_point deadline) {
  for (;;) {
    bool all = true;
    for (const auto& w : workers) all = all && w->first_round_done();
    if (all || Clock::now() >= deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void merge(LoadResult& r, const std::vector<std::unique_ptr<Worker>>& workers) {
  for (const auto& w : workers) {
    const WorkerStats& s = w->stats;
    r.requests += s.requests;
    r.bytes_read += s.bytes_read;
    r.responses_total += s.responses_total;
    r.sent_total += s.sent_total;
    r.idle_opened += s.idle_opened;
    r.idle_alive += s.idle_alive;
    r.connections_in_window += s.connections_in_window;
    r.errors.add(s.errors);
    r.latency.add(s.latency);
    r.timeline.merge(s.timeline);
    r.latency_uncorrected.add(r.config.mode == Mode::rate ? s.uncorrected : s.latency);
    if (r.per_second.size() < s.per_second.size()) r.per_second.resize(s.per_second.size());
    for (std::size_t i = 0; i < s.per_second.size(); ++i) r.per_second[i] += s.per_second[i];
  }
}

}  // namespace

LoadResult run_load(const LoadConfig& config) {
  validate(config);
  LoadConfig c = config;
  c.threads = std::min(c.threads, c.connections);
  const Target target = parse_target(c.url);
  const std::string protocol = probe_name(c, target);
  if (protocol == "echo" && c.echo_size == 0) c.echo_size = 64;
  Plan plan = make_plan(c, target, protocol);
  auto workers = make_workers(plan, c);

  LoadResult r;
  r.config = c;
  r.protocol = protocol;
  WindowBounds bounds;
  plan.window = &bounds;
  plan.start = Clock::now();
  if (c.mode == Mode::idle)
    bounds.set(plan.start, Clock::time_point(Clock::duration(WindowBounds::kNever)));
  if (c.mode == Mode::rate) bounds.set(plan.start + c.warmup, plan.start + c.warmup + c.duration);
  set_deadlines(plan, c);
  const auto ramp_bound = std::max(
      plan.start + c.warmup,
      plan.start + (c.ramp_timeout.count() > 0 ? c.ramp_timeout : take_on_bound(c.connections)));
  if (c.mode == Mode::closed) plan.first_round_by = ramp_bound;

  Window window(c);
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->run(); });
  auto note_ramp = [&] {
    r.ramp_s = std::chrono::duration<double>(Clock::now() - plan.start).count();
    r.ramp_reached = static_cast<std::uint64_t>(answered_once(workers));
  };
  if (c.mode == Mode::idle) {
    wait_first_round(workers, plan.first_round_by);
    note_ramp();
    window.open();
    std::this_thread::sleep_for(c.duration);
    window.close(r);
    for (auto& w : workers) w->start_final_round();
  } else {
    if (c.mode == Mode::closed) {
      wait_ramp(workers, c.connections, ramp_bound);
      note_ramp();
      const auto from = std::max(Clock::now(), plan.start + c.warmup);
      bounds.set(from, from + c.duration);
    } else {
      wait_ramp(workers, c.connections, bounds.from_time());
      note_ramp();
    }
    for (auto& w : workers) w->end_window_at(bounds.to_time());
    std::this_thread::sleep_until(bounds.from_time());
    window.open();
    std::this_thread::sleep_until(bounds.to_time());
    window.close(r);
  }
  for (auto& t : threads) t.join();
  r.elapsed_s =
      c.mode == Mode::idle ? window.seconds() : std::chrono::duration<double>(c.duration).count();
  merge(r, workers);
  if (c.mode == Mode::idle) r.per_second.clear();
  return r;
}

}  // namespace shootout::load
