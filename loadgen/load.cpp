#include "load.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <optional>
#include <thread>

#include "group.hpp"
#include "merge.hpp"
#include "netns.hpp"
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

SourceRange parse_source_range(std::string_view text) {
  auto address = [&](std::string_view a) {
    boost::system::error_code ec;
    const auto v4 = asio::ip::make_address_v4(std::string(a), ec);
    if (ec)
      throw LoadError(fmt::format(
          "bad --source '{}': '{}' is not an IPv4 address (expected ADDR or ADDR-ADDR, e.g. "
          "127.0.0.2-127.0.0.5)",
          text, a));
    return v4.to_uint();
  };
  const auto dash = text.find('-');
  SourceRange r;
  r.first = address(text.substr(0, dash));
  r.last = dash == std::string_view::npos ? r.first : address(text.substr(dash + 1));
  if (r.last < r.first)
    throw LoadError(fmt::format("bad --source '{}': the range ends before it starts", text));
  if (r.last - r.first >= 65'536)
    throw LoadError(fmt::format("bad --source '{}': at most 65,536 addresses", text));
  return r;
}

SourceRange source_share(const SourceRange& range, int rank, int ranks) {
  const std::uint32_t n = range.size(), k = static_cast<std::uint32_t>(ranks);
  if (ranks <= 1 || n < k) return range;
  const auto r = static_cast<std::uint32_t>(rank);
  const std::uint32_t first = range.first + r * (n / k) + std::min(r, n % k);
  return {first, first + n / k + (r < n % k ? 1 : 0) - 1};
}

int ephemeral_ports() {
  int low = 32768, high = 60999;  // Linux's default
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    int a = 0, b = 0;
    if (std::fscanf(f, "%d %d", &a, &b) == 2 && b >= a) low = a, high = b;
    std::fclose(f);
  }
  return high - low + 1;
}

int connections_per_source_address() { return std::max(1, ephemeral_ports() / 2); }

std::string source_port_warning(const LoadConfig& c) {
  const long addresses = c.source.empty() ? 1 : parse_source_range(c.source).size();
  const long per = (c.connections + addresses - 1) / addresses;
  const long most = connections_per_source_address();
  if (per <= most) return "";
  return fmt::format(
      "{} connections per source address use more than half of its {} ephemeral ports: "
      "connect() slows down as the kernel searches for a free port (milliseconds each near "
      "the end), and the load generator's CPU goes there; spread them with --source "
      "ADDR-ADDR (e.g. 127.0.0.2-127.0.0.{} on loopback)",
      per, ephemeral_ports(), 1 + std::min<long>(254, (c.connections + most - 1) / most));
}

namespace {

// This rank's part of the load: connections [first, first + count) of the total, and the same
// fraction of the rate and the connect rate (so every connection keeps the pace it would have
// in one process). One process: everything.
struct Share {
  int first = 0, count = 0;
};
Share share_of(int connections, int rank, int ranks) {
  const int base = connections / ranks, extra = connections % ranks;
  return {rank * base + std::min(rank, extra), base + (rank < extra ? 1 : 0)};
}

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
  if (!c.source.empty()) parse_source_range(c.source);
  if (c.engine == EngineKind::uring) {
    if (const std::string& why = uring_engine_unavailable(); !why.empty())
      throw LoadError("--engine uring cannot run here: " + why);
    const unsigned n = c.uring.buffers;
    if (n != 0 && ((n & (n - 1)) != 0 || n > 32768))
      throw LoadError("the uring engine's buffer count must be a power of two up to 32768");
  }
}

void validate_group(const LoadConfig& c, int ranks) {
  if (ranks <= 1) return;
  if (c.connections < ranks)
    throw LoadError(fmt::format("{} connections cannot be shared by {} ranks: ask for at least {}",
                                c.connections, ranks, ranks));
  if (c.timeline_max > 0)
    throw LoadError(fmt::format(
        "the per-request timeline (the stall scenario) is kept by one process only, not merged "
        "across {} ranks: run it without mpirun",
        ranks));
}

// Each source address must be one of this host's: bind a socket to it (no port) once, so a
// wrong range is one clear error before any connection is opened.
std::vector<asio::ip::address_v4> source_addresses(const SourceRange& range) {
  std::vector<asio::ip::address_v4> out;
  asio::io_context ioc;
  for (std::uint32_t a = range.first;; ++a) {
    const asio::ip::address_v4 address(a);
    tcp::socket probe(ioc, tcp::v4());
    boost::system::error_code ec;
    probe.set_option(
        asio::detail::socket_option::boolean<IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT>(true), ec);
    if (!ec) probe.bind({address, 0}, ec);
    if (ec)
      throw LoadError(
          fmt::format("--source: cannot bind {}: {}{}", address.to_string(), ec.message(),
                      ec.value() == EADDRNOTAVAIL
                          ? " (not an address of this host; 127.0.0.0/8 is all loopback on Linux)"
                          : ""));
    out.push_back(address);
    if (a == range.last) break;
  }
  return out;
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

// `c` is the whole load (every rank's), `local` this rank's share of it (threads, connect rate).
Plan make_plan(const LoadConfig& c, const LoadConfig& local, const Target& t,
               const std::string& protocol) {
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
  if (local.connect_rate > 0)
    p.connect_interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(local.threads / local.connect_rate));
  const auto secs = std::chrono::duration<double>(c.duration).count();
  p.seconds = static_cast<std::size_t>(std::ceil(secs)) + 1;
  p.timeline_max = c.timeline_max;
  p.engine = c.engine;
  p.uring = c.uring;
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
// `c` is this rank's share; its connections are numbered from `first` (their global index).
std::vector<std::unique_ptr<Worker>> make_workers(const Plan& plan, const LoadConfig& c,
                                                  int first) {
  const auto [soft, hard] = raise_fd_limit();
  std::vector<std::unique_ptr<Worker>> workers;
  int opened = 0;
  for (int i = 0; i < c.threads; ++i) {
    const int count = c.connections / c.threads + (i < c.connections % c.threads ? 1 : 0);
    try {
      workers.push_back(std::make_unique<Worker>(plan, first, count));
    } catch (const std::system_error& e) {
      if (e.code().value() == EMFILE || e.code().value() == ENFILE)
        throw LoadError(fd_message(soft, hard, opened, c.connections));
      throw LoadError(fmt::format("cannot set up load thread {}: {}", i, e.what()));
    }
    std::error_code ec;
    opened += workers.back()->open_sockets(ec);
    if (ec.value() == ENFILE || ec.value() == EMFILE)
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
  // `start`: the run's start (Plan::start), which the CPU's times are counted from.
  Window(const LoadConfig& c, Clock::time_point start) : start_at_(start) {
    if (c.server) sampler_.emplace(*c.server);
  }
  void open() {
    start_ = self_usage();
    opened_at_ = Clock::now();
    if (sampler_) sampler_->start();
  }
  // The client's CPU is read at the window's end, and the sampler's share of it then; the
  // sampler's last snapshots come after (seconds over a large process tree).
  void close(LoadResult& r) {
    const Usage end = self_usage();
    closed_at_ = Clock::now();
    if (sampler_) {
      r.client_sampler_cpu_us = sampler_->cpu_us_so_far();
      r.server = sampler_->stop();
    }
    r.client_utime_us = end.utime_us - start_.utime_us;
    r.client_stime_us = end.stime_us - start_.stime_us;
    r.client_cpu_from_s = std::chrono::duration<double>(opened_at_ - start_at_).count();
    r.client_cpu_to_s = std::chrono::duration<double>(closed_at_ - start_at_).count();
  }
  double seconds() const { return std::chrono::duration<double>(closed_at_ - opened_at_).count(); }

 private:
  std::optional<ServerSampler> sampler_;
  Usage start_;
  Clock::time_point start_at_, opened_at_, closed_at_;
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

// A count every worker keeps for any thread to read (Worker::answered_once, Worker::settled),
// summed over the workers.
using WorkerCount = int (Worker::*)() const;
int sum_over(const std::vector<std::unique_ptr<Worker>>& workers, WorkerCount count) {
  int n = 0;
  for (const auto& w : workers) n += ((*w).*count)();
  return n;
}

// Returns when `count` summed over the workers reaches `target`, or at `bound`. Closed mode's
// ramp waits for every connection's first answer (answered_once); after the ramp's release the
// window waits for the released connections' next answer (settled).
void wait_for(const std::vector<std::unique_ptr<Worker>>& workers, WorkerCount count, int target,
              Clock::time_point bound) {
  while (sum_over(workers, count) < target && Clock::now() < bound)
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

std::uint64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Several ranks: how far ahead of now rank 0 sets the common start, and how far after the last
// rank is ready a common moment (the window's opening, the hold's start) is set, so that every
// rank has heard of it before it comes.
constexpr auto kStartAhead = std::chrono::milliseconds(200);
constexpr auto kSyncMargin = std::chrono::milliseconds(50);

// The common start: rank 0 picks a CLOCK_REALTIME instant a little ahead and broadcasts it; each
// rank maps it onto its own steady clock. Across hosts this assumes their real-time clocks agree
// (NTP/PTP); the error of that agreement is the error of the common start.
Clock::time_point common_start(LoadGroup& group) {
  std::uint64_t at[1] = {group.rank() == 0
                             ? realtime_ns() + static_cast<std::uint64_t>(
                                                   std::chrono::nanoseconds(kStartAhead).count())
                             : 0};
  group.broadcast(at);
  const auto now_rt = static_cast<std::int64_t>(realtime_ns());
  const auto now = Clock::now();
  return now + std::chrono::nanoseconds(static_cast<std::int64_t>(at[0]) - now_rt);
}

// The latest of every rank's `ready` (an instant after the common start), plus the margin.
Clock::time_point latest_of_all(LoadGroup& group, Clock::time_point start,
                                Clock::time_point ready) {
  std::uint64_t since[1] = {static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, std::chrono::nanoseconds(ready - start).count()))};
  group.all_reduce(LoadGroup::Op::max, since);
  return start + std::chrono::nanoseconds(static_cast<std::int64_t>(since[0])) + kSyncMargin;
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
    r.engine_counts.add(s.engine);
  }
}

}  // namespace

LoadResult run_load(const LoadConfig& config) {
  SingleProcessGroup one;
  return run_load(config, one);
}

LoadResult run_load(const LoadConfig& config, LoadGroup& group) {
  const int ranks = group.size(), me = group.rank();
  // Set-up: this rank's share, its plan, its workers and sockets. With several ranks a failure
  // of any rank is agreed on before anything starts, so no rank waits for one that has gone.
  LoadConfig c = config, local;
  Target target;
  std::string protocol;
  Share share;
  Plan plan;
  std::vector<std::unique_ptr<Worker>> workers;
  std::optional<NetNamespace> netns;  // where this rank's workers open their connections
  auto set_up = [&] {
    validate(config);
    validate_group(config, ranks);
    c.threads = std::min(c.threads, c.connections);
    target = parse_target(c.url);
    protocol = probe_name(c, target);
    if (protocol == "echo" && c.echo_size == 0) c.echo_size = 64;
    share = share_of(c.connections, me, ranks);
    local = c;
    local.connections = share.count;
    local.threads = std::min(c.threads, share.count);
    const double fraction = static_cast<double>(share.count) / c.connections;
    local.rate = c.rate * fraction;
    local.connect_rate = c.connect_rate * fraction;
    plan = make_plan(c, local, target, protocol);
    if (!c.netns.empty()) netns.emplace(NetNamespace::open(c.netns[me % c.netns.size()]));
    if (!c.source.empty()) {
      const SourceRange range = source_share(parse_source_range(c.source), me, ranks);
      if (netns)  // the addresses are the namespace's
        netns->inside([&] { plan.sources = source_addresses(range); });
      else
        plan.sources = source_addresses(range);
    }
    // The workers open their sockets now (so a descriptor shortage is a set-up error): inside
    // the namespace, on a thread that entered it. Sockets they reopen later, on their own
    // threads, are made there too (below).
    if (netns)
      netns->inside([&] { workers = make_workers(plan, local, share.first); });
    else
      workers = make_workers(plan, local, share.first);
  };
  if (ranks == 1) {
    set_up();
  } else {
    std::string failure;
    try {
      set_up();
    } catch (const LoadError& e) {
      failure = e.what();
    }
    std::uint64_t failed[1] = {failure.empty() ? 0 : static_cast<std::uint64_t>(me) + 1};
    group.all_reduce(LoadGroup::Op::max, failed);
    if (!failure.empty()) throw LoadError(failure);
    if (failed[0])
      throw OtherRankFailed(
          fmt::format("rank {} could not set up (its error is on its stderr)", failed[0] - 1));
  }

  LoadResult r;
  r.config = c;
  r.config.threads = local.threads;
  r.protocol = protocol;
  WindowBounds bounds;
  plan.window = &bounds;
  if (ranks == 1) {
    plan.start = Clock::now();
  } else {
    group.barrier();  // every rank's sockets are open
    plan.start = common_start(group);
    std::this_thread::sleep_until(plan.start);
  }
  if (c.mode == Mode::idle)
    bounds.set(plan.start, Clock::time_point(Clock::duration(WindowBounds::kNever)));
  if (c.mode == Mode::rate) bounds.set(plan.start + c.warmup, plan.start + c.warmup + c.duration);
  set_deadlines(plan, c);
  const auto ramp_bound = std::max(
      plan.start + c.warmup,
      plan.start + (c.ramp_timeout.count() > 0 ? c.ramp_timeout : take_on_bound(c.connections)));
  if (c.mode == Mode::closed) plan.first_round_by = ramp_bound;

  // The server is sampled by rank 0 only (which must run on the server's host).
  LoadConfig sampled = c;
  if (me != 0) sampled.server.reset();
  Window window(sampled, plan.start);
  std::vector<std::thread> threads;
  // Each worker enters the namespace on its own thread (the main thread, and MPI's traffic,
  // stay here). open() above proved it can be entered; should a thread still fail, that worker
  // opens nothing and the run ends with the error.
  // A load thread that cannot run (its namespace, its io_uring) leaves its reason here.
  std::vector<std::string> thread_failed(workers.size());
  for (std::size_t i = 0; i < workers.size(); ++i)
    threads.emplace_back([&, i] {
      if (netns)
        if (std::string why = netns->enter(); !why.empty()) {
          thread_failed[i] = fmt::format("--netns {}: {}", netns->name(), why);
          return;
        }
      try {
        workers[i]->run();
      } catch (const std::exception& e) {
        thread_failed[i] =
            fmt::format("load thread {} ({} engine): {}", i, engine_name(c.engine), e.what());
      }
    });
  auto note_ramp = [&] {
    r.ramp_s = std::chrono::duration<double>(Clock::now() - plan.start).count();
    r.ramp_reached = static_cast<std::uint64_t>(sum_over(workers, &Worker::answered_once));
  };
  if (c.mode == Mode::idle) {
    wait_first_round(workers, plan.first_round_by);
    note_ramp();
    // Several ranks: the hold starts once every rank has finished its first round.
    const auto hold_from =
        ranks == 1 ? Clock::now() : latest_of_all(group, plan.start, Clock::now());
    std::this_thread::sleep_until(hold_from);
    window.open();
    std::this_thread::sleep_until(hold_from + c.duration);
    window.close(r);
    for (auto& w : workers) w->start_final_round();
  } else {
    if (c.mode == Mode::closed) {
      wait_for(workers, &Worker::answered_once, local.connections, ramp_bound);
      note_ramp();
      // The answered connections have held their next request (Worker::release_ramp). They
      // are released together, once every rank has ramped (or hit the bound). The window
      // opens once the released requests have been answered (or `timeout`, after which any
      // still out counts as timed out), and not before the warm-up's end: N requests sent at
      // once are a burst no closed loop of N sees again. At 100,000 connections (2026-12-04)
      // the load generator spent the first second after the release sending them, and a
      // window opened at the release counted no response in that second and read the burst's
      // cost as the server's (40 µs of CPU per request where the steady loop spends 13).
      auto release = Clock::now();
      if (ranks > 1) release = latest_of_all(group, plan.start, release);
      std::this_thread::sleep_until(release);
      const int released = sum_over(workers, &Worker::answered_once);
      for (auto& w : workers) w->release_ramp();
      wait_for(workers, &Worker::settled, released, release + c.timeout);
      auto settled = Clock::now();
      r.settle_s = std::chrono::duration<double>(settled - release).count();
      if (ranks > 1) settled = latest_of_all(group, plan.start, settled);
      std::this_thread::sleep_until(settled);
      const auto from = std::max(settled, plan.start + c.warmup);
      bounds.set(from, from + c.duration);
    } else {
      wait_for(workers, &Worker::answered_once, local.connections, bounds.from_time());
      note_ramp();
    }
    for (auto& w : workers) w->end_window_at(bounds.to_time());
    std::this_thread::sleep_until(bounds.from_time());
    window.open();
    std::this_thread::sleep_until(bounds.to_time());
    window.close(r);
  }
  for (auto& t : threads) t.join();
  std::string failure;
  for (const auto& why : thread_failed)
    if (!why.empty()) failure = why;
  if (ranks > 1) {  // agreed on, so no rank waits in the merge for one that has gone
    std::uint64_t failed[1] = {failure.empty() ? 0 : static_cast<std::uint64_t>(me) + 1};
    group.all_reduce(LoadGroup::Op::max, failed);
    if (failure.empty() && failed[0])
      throw OtherRankFailed(
          fmt::format("rank {} failed (its error is on its stderr)", failed[0] - 1));
  }
  if (!failure.empty()) throw LoadError(failure);
  r.elapsed_s =
      c.mode == Mode::idle ? window.seconds() : std::chrono::duration<double>(c.duration).count();
  merge(r, workers);
  if (c.mode == Mode::idle) r.per_second.clear();
  if (ranks > 1)
    merge_ranks(r, group, {me, group.host(), static_cast<std::uint64_t>(share.count), 0, 0, 0, ""});
  return r;
}

}  // namespace shootout::load
