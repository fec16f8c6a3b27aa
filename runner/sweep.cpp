// The sweep (sweep.hpp says what it measures and in what order), in four parts:
//   plan       run_sweep(): every server at every connection count, a point each, with why it
//              cannot run at all (skip_reason); the passes of --repeat run every point once
//   launch     launch_model() / launch_peer(): a fresh server process per run, waited for until
//              it listens (and a peer's workers are spawned)
//   measure    measure(): the baseline snapshot, the closed loop, the idle hold, each a load
//              run bounded in time (run_load_bounded); run_once() adds the start and the stop
//   summarize  summarize(): a point's figures from its runs so far, medians over the runs that
//              did not fail, mostly as tables of "this figure of a run into that field of the
//              point" (fill); the runs are read in place, never copied
//
// Threads: everything here runs on run_sweep's calling thread, except each load run, which
// runs on a thread of its own (run_load_bounded; the load generator starts its threads from
// there) so that one that never returns can be abandoned. `stop` is read between phases.
#include "sweep.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>

#include "load.hpp"
#include "mpi_load.hpp"
#include "peers/peers.hpp"
#include "process.hpp"
#include "progress.hpp"
#include "sampler.hpp"

namespace shootout::runner {

namespace {

using std::chrono::milliseconds;
constexpr milliseconds kStartTimeout{15'000};
constexpr milliseconds kModelStopTimeout{15'000};  // above serve's default 10 s grace
constexpr milliseconds kPeerStopTimeout{15'000};
constexpr int kRampAbove = 100;  // connections opened all at once up to this many

// A started server: the process, where it listens, how to sample it.
struct Launched {
  std::unique_ptr<Child> child;
  std::uint16_t port = 0;
  std::string stats_file;  // ours only
  std::vector<std::string> notes;
  std::string error;  // set if it did not start
};

// The outcome of one run of one point.
struct Run {
  std::string failure;  // empty: ok
  std::vector<std::string> notes;
  std::optional<load::LoadResult> closed, idle;
  std::uint64_t baseline_pss_kb = 0;
  load::TreeSnapshot baseline;  // the server before any connection: PSS and kernel parts
};

std::string run_tag(const std::string& server, int connections, int repeat) {
  return fmt::format("{}-{}-r{}", server, connections, repeat);
}

double ramp_seconds(const SweepConfig& c, int n) {
  return n > kRampAbove && c.connect_rate > 0 ? n / c.connect_rate : 0.0;
}

// Descriptors a process needs beyond its connections: listener, logs, /proc files, the sampler.
constexpr rlim_t kSpareDescriptors = 128;

// `serve --workers` for this model at n connections: 1 (no master) for threaded and forked, and
// unless asked; 0 asks for what n needs with the descriptor limit the server inherits (ours).
int model_workers(const SweepConfig& c, const std::string& model, int n) {
  if (model != "evented" && model != "coroutine" && model != "uring") return 1;
  if (c.workers > 0) return c.workers;
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return processes_for(n, rl.rlim_cur == RLIM_INFINITY ? 0 : static_cast<long>(rl.rlim_cur));
}

Launched launch_model(const SweepConfig& c, const std::string& model, const std::string& tag, int n,
                      const std::vector<std::string>& extra_args = {}) {
  Launched l;
  l.stats_file = fmt::format("{}/servers/{}.stats.json", c.out_dir, tag);
  std::string log = fmt::format("{}/servers/{}.log", c.out_dir, tag);
  std::vector<std::string> argv{c.binary,    "serve",   "--model",      model,
                                "--handler", c.handler, "--host",       "127.0.0.1",
                                "--port",    "0",       "--stats-file", l.stats_file};
  argv.insert(argv.end(), c.server_args.begin(), c.server_args.end());
  if (const int workers = model_workers(c, model, n); workers > 1) {
    argv.insert(argv.end(), {"--workers", std::to_string(workers)});
    l.notes.push_back(
        fmt::format("--workers {}: {} worker processes under a master", workers, workers));
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  // threaded and forked take at most 10,000 live connections by default (--max-threads,
  // --max-procs). Past that the cap is raised, unless given, to N or to the tasks this host
  // can spare (HostLimits::task_budget: pid_max less what runs and a margin for the load
  // generator), so that what stops them is this host, which is what the point is there to
  // show. Not all of pid_max: a server that took every free process id would leave the load
  // processes no thread and mpirun no process, and the point would end for a reason that is
  // not the server's.
  if (n > 10'000 && (model == "threaded" || model == "forked")) {
    const std::string flag = model == "threaded" ? "--max-threads" : "--max-procs";
    const bool given = std::any_of(argv.begin(), argv.end(),
                                   [&](const std::string& a) { return a.rfind(flag, 0) == 0; });
    if (!given) {
      const HostLimits h = host_limits();
      const long cap = std::min<long>(n, h.task_budget());
      argv.insert(argv.end(), {flag, std::to_string(cap)});
      l.notes.push_back(
          cap == n ? fmt::format("{} {}: the default cap of 10,000 raised to N", flag, n)
                   : fmt::format("{} {}: the default cap of 10,000 raised to what this host can "
                                 "spare (pid_max {}, {} tasks running, {} kept for the load "
                                 "generator and the machine)",
                                 flag, cap, h.pid_max, h.tasks_now, HostLimits::kTaskMargin));
    }
  }
  l.child = std::make_unique<Child>(argv, log, c.pin ? 0 : -1);
  auto line = l.child->wait_for_line("listening on ", kStartTimeout);
  if (!line) {
    auto st = l.child->poll();
    l.error =
        st ? fmt::format("exited with status {} before listening: {}", *st, l.child->log_tail())
           : fmt::format("no `listening on` line within {} s: {}", kStartTimeout.count() / 1000,
                         l.child->log_tail());
    return l;
  }
  l.port = static_cast<std::uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
  return l;
}

// Waits until the peer's process tree has spawned its workers (Apache pre-spawns thousands),
// or stopped growing for a second, or the time is up.
void wait_for_workers(pid_t pid, int expected, milliseconds timeout) {
  load::SamplerConfig sc;
  sc.pid = pid;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::uint64_t last = 0;
  auto last_change = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    auto s = load::snapshot_tree(sc, false, false);
    if (s.processes >= static_cast<std::uint64_t>(expected)) return;
    auto now = std::chrono::steady_clock::now();
    if (s.processes != last) {
      last = s.processes;
      last_change = now;
    } else if (now - last_change > std::chrono::seconds(2)) {
      return;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
}

Launched launch_peer(const SweepConfig& c, const std::string& peer, int n, const std::string& tag) {
  Launched l;
  if (std::string missing = peer_missing(peer); !missing.empty()) {
    l.error = fmt::format("{} is not available: {}", peer, missing);
    return l;
  }
  std::string dir = fmt::format("{}/peers/{}", c.out_dir, tag);
  l.port = free_port();
  PeerSetup s = write_peer_config(peer, dir, l.port, n, host_limits(), c.nginx_workers);
  l.notes = s.notes;
  if (c.pin && s.parallelism > 1)
    l.notes.push_back(fmt::format("--pin: its {} workers share CPU 0", s.parallelism));
  milliseconds timeout = kStartTimeout + milliseconds(n * 2);  // thousands of processes to fork
  l.child = start_peer(s, dir + "/stdout.log", c.pin ? 0 : -1, timeout, l.error);
  return l;
}

}  // namespace

std::unique_ptr<Child> start_peer(const PeerSetup& s, const std::string& log_path, int cpu,
                                  milliseconds timeout, std::string& error) {
  auto child = std::make_unique<Child>(s.argv, log_path, cpu, s.env);
  if (s.port == 0 || !wait_for_port(s.port, timeout, child.get())) {
    auto st = child->poll();
    error = fmt::format("{} did not start{}: {} {}", s.name,
                        st ? fmt::format(" (exit status {})", *st) : std::string{},
                        s.error_log.empty() ? std::string{} : file_tail(s.error_log, 400),
                        child->log_tail(300));
    return child;
  }
  wait_for_workers(child->pid(), s.expected_processes, timeout);
  return child;
}

namespace {

// The longest the measurement holds an answered connection idle (the closed loop's ramp, the
// idle hold's first round): under the keep-alive timeout of every server it runs, 120 s (ours:
// serve's --idle-timeout; nginx, Apache, node and go as configured in runner/peers/). Past it
// the server closes the connections answered first, and what follows measures reconnects: at
// 100,000 connections (2026-12-04) the ramp's bound was 206 s and the idle round's 505 s, and
// forked, with 30,689 connections answered by the ramp's end, served none of them in the
// window, and held 586 sockets of the 34,787 answered in the idle round.
constexpr milliseconds kLongestHold{100'000};

// 5 s + ms_each per connection, at most kLongestHold.
milliseconds take_on_time(int n, long ms_each) {
  return std::min(milliseconds(5'000 + ms_each * static_cast<long>(n)), kLongestHold);
}

load::LoadConfig load_config(const SweepConfig& c, std::uint16_t port, int n, pid_t pid,
                             const std::string& stats_file) {
  load::LoadConfig lc;
  lc.handler = c.handler;  // the probe (common/probe.hpp)
  if (c.handler == "echo") {
    lc.url = fmt::format("tcp://127.0.0.1:{}", port);
    lc.echo_size = 64;
  } else if (c.handler == "http") {
    lc.url = fmt::format("http://127.0.0.1:{}{}", port, c.path);
  } else {  // another protocol: the path may choose its workload (resp: / mixes SET, GET, INCR)
    lc.url = fmt::format("tcp://127.0.0.1:{}{}", port, c.path);
  }
  lc.threads = std::min(c.threads, n);
  lc.engine = c.load_engine;
  lc.connections = n;
  lc.duration = c.duration;
  lc.timeout = c.timeout;
  lc.connect_rate = n > kRampAbove ? c.connect_rate : 0;
  lc.warmup = c.warmup + milliseconds(static_cast<long>(ramp_seconds(c, n) * 1000));
  // Past half of one source address's ephemeral ports towards the one server port: several
  // loopback addresses, each rank its own (mpi_load.hpp).
  lc.source = loopback_sources_for(n, load_ranks_for(n));
  // How long N connections may take to be taken on, beyond the connect ramp: before the window
  // opens (closed loop), 5 s + 2 ms each (25 s at 10,000); before the hold begins (idle), 5 s +
  // 5 ms each (55 s). Until 2026-12-02 both were 5 s + 10 ms each (105 s), which bought
  // nothing: that day, after 105 s, forked, threaded and Apache prefork had served 775, 1,588
  // and 1,893 of 10,000 connections in the window, and forked and prefork held 4,086 and 5,796
  // idle ones (forking about 40 a second by then), while every other server held 10,000 within
  // 4 s. A point that does not get to N is measured at what it reached and marked. Both at
  // most kLongestHold (100 s from 47,500 connections for the ramp and 19,000 for the idle
  // round): past the servers' keep-alive timeout a longer wait loses connections, not gains.
  lc.ramp_timeout = lc.warmup + take_on_time(n, 2);
  lc.open_timeout = take_on_time(n, 5);
  load::SamplerConfig sc;
  sc.pid = pid;
  sc.stats_file = stats_file;
  sc.port = port;
  sc.interval = milliseconds(500);
  lc.server = sc;
  return lc;
}

// run_load on a thread of its own, waited for at most `limit`. A load run that does not come
// back (a load-generator bug must not wedge the whole sweep) is abandoned: its thread stays
// blocked on state it owns (the shared State and run_load's own frame), nothing it uses is
// destroyed, and the process exits normally at the end. Returns nullopt when abandoned;
// rethrows what run_load threw.
std::optional<load::LoadResult> run_load_bounded(const load::LoadConfig& lc, milliseconds limit) {
  // --load-ranks K (or 0 and more connections than one process may open): the load through
  // mpirun, bounded by the same limit (mpi_load.hpp).
  if (const int ranks = load_ranks_for(lc.connections); ranks > 1)
    return run_load_through_mpirun(lc, limit, ranks);
  struct State {
    load::LoadConfig config;
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    std::optional<load::LoadResult> result;
    std::exception_ptr error;
  };
  auto st = std::make_shared<State>();
  st->config = lc;
  std::thread([st] {
    std::optional<load::LoadResult> r;
    std::exception_ptr error;
    try {
      r = load::run_load(st->config);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard lock(st->mutex);
    st->result = std::move(r);
    st->error = error;
    st->done = true;
    st->done_cv.notify_all();
  }).detach();
  std::unique_lock lock(st->mutex);
  if (!st->done_cv.wait_for(lock, limit, [&] { return st->done; })) return std::nullopt;
  if (st->error) std::rethrow_exception(st->error);
  return std::move(st->result);
}

// The longest a load run may take: its own plan plus a generous margin. It is only the
// backstop against a load run that never comes back (the load generator keeps its own hard
// deadline), so the margin grows with the plan: 30 s and a quarter of the plan. A fixed 30 s
// was too little for forked at 100,000 connections (2026-12-03): its 6 ranks under mpirun,
// beside 5,000 busy children, wrote their merged result 1 s after the 260 s bound had passed,
// and the point was lost as "did not finish". The closed loop's plan has one `timeout` more:
// after the ramp's release the window waits up to that long for the released requests. And
// 1 ms per connection for what grows with the server's size outside the plan: the sampler
// reads every server process's memory (~0.1 ms each for a small process here, and a prefork
// server has one per connection), and the load processes close every socket. Apache prefork
// at 100,000 connections (2026-12-04), with 23,324 children, overran the 198 s the rest
// allows and its point was lost.
milliseconds load_limit(const load::LoadConfig& lc) {
  const long ramp_ms =
      lc.connect_rate > 0 ? static_cast<long>(lc.connections / lc.connect_rate * 1000) : 0;
  const milliseconds plan = lc.warmup + lc.duration + 2 * lc.timeout + lc.ramp_timeout +
                            (lc.mode == load::Mode::idle ? lc.open_timeout : lc.timeout) +
                            milliseconds(ramp_ms);
  return plan + milliseconds(30'000) + plan / 4 + milliseconds(lc.connections);
}

std::pair<std::string, std::string> host_stop(const std::string& server, bool peer, int n,
                                              const SweepConfig& c);

// Phases 2 to 4 on a started server. Sets run.failure when the server died or answered nothing,
// unless `past_limit` (n is past what this host lets it hold: host_stop): then a window in
// which it served nothing is where it ends, measured at 0 and labelled, not a failure.
void measure(const SweepConfig& c, Launched& l, int n, bool past_limit, Run& run,
             Progress& progress, const std::atomic<bool>& stop) {
  load::SamplerConfig base;
  base.pid = l.child->pid();
  base.stats_file = l.stats_file;
  base.port = l.port;
  // Before any connection means the listener alone: the start-up check's connect (a peer's
  // readiness probe) leaves a server-side socket, with a page of buffer, until the server
  // closes it; counted in the baseline it made a 1-connection point's sockets "fall" by 4 KB.
  // So wait for it to go, up to 2 s (then the baseline is taken as it is, and a fall is said).
  const auto settle = std::chrono::steady_clock::now() + milliseconds(2000);
  while (load::server_sockets(l.port).connected_sockets > 0 &&
         std::chrono::steady_clock::now() < settle)
    std::this_thread::sleep_for(milliseconds(20));
  run.baseline = load::snapshot_tree(base, true, false);
  run.baseline_pss_kb = run.baseline.pss_kb;

  progress.phase("closed loop");
  auto lc = load_config(c, l.port, n, l.child->pid(), l.stats_file);
  run.closed = run_load_bounded(lc, load_limit(lc));
  if (!run.closed) {
    run.failure = fmt::format(
        "the closed-loop load run did not finish within {} s and was "
        "abandoned (server log: {})",
        load_limit(lc).count() / 1000, l.child->log_tail(200));
    return;
  }
  if (auto st = l.child->poll()) {
    run.failure =
        fmt::format("server exited with status {} during the load: {}", *st, l.child->log_tail());
    return;
  }
  if (run.closed->requests == 0) {
    const std::string what = fmt::format(
        "no response completed in the {} s window ({} errors: {})", c.duration.count() / 1000.0,
        run.closed->errors.total(), run.closed->to_json().value("errors", nlohmann::json{}).dump());
    // Past what this host lets the server hold (host_stop), serving nothing is where it ends:
    // measured at 0 and labelled with the limit, not a failure and not a missing point.
    if (!past_limit) {
      run.failure = what;
      return;
    }
    run.notes.push_back(what);
  }
  if (stop) return;

  progress.phase("idle hold");
  lc.mode = load::Mode::idle;
  lc.duration = c.idle_hold;
  lc.warmup = milliseconds(0);
  run.idle = run_load_bounded(lc, load_limit(lc));
  if (!run.idle) {
    run.failure = fmt::format("the idle-hold load run did not finish within {} s and was abandoned",
                              load_limit(lc).count() / 1000);
    return;
  }
  if (auto st = l.child->poll())
    run.failure = fmt::format("server exited with status {} while holding idle connections: {}",
                              *st, l.child->log_tail());
}

// How long the runner waits for a stopped server's process group to be gone.
constexpr milliseconds kGroupGoneWait{60'000};

Run run_once(const SweepConfig& c, const std::string& server, bool peer, int n, int repeat,
             Progress& progress, const std::atomic<bool>& stop) {
  Run run;
  std::string tag = run_tag(server, n, repeat);
  progress.phase("starting server");
  Launched l = peer ? launch_peer(c, server, n, tag) : launch_model(c, server, tag, n);
  run.notes = l.notes;
  if (!l.error.empty()) {
    run.failure = l.error;
    return run;
  }
  try {
    measure(c, l, n, !host_stop(server, peer, n, c).first.empty(), run, progress, stop);
  } catch (const load::LoadError& e) {
    run.failure = fmt::format("load generator: {}", e.what());
  }
  progress.phase("stopping");
  auto status = l.child->stop(SIGTERM, peer ? kPeerStopTimeout : kModelStopTimeout);
  if (!status)
    run.notes.push_back(fmt::format("did not exit within {} s of SIGTERM: killed",
                                    (peer ? kPeerStopTimeout : kModelStopTimeout).count() / 1000));
  else if (*status != 0 && !stop)
    run.notes.push_back(fmt::format("exited with status {} after SIGTERM", *status));
  // The next point sizes itself by the tasks running (HostLimits): this server's processes must
  // be gone first. A killed Apache master left 23,000 prefork children exiting (2026-12-04), and
  // the Apache worker point after it was capped at 111 of its 464 processes.
  if (!l.child->await_group_gone(kGroupGoneWait))
    run.notes.push_back(fmt::format("processes of its group still ran {} s after the stop",
                                    kGroupGoneWait.count() / 1000));
  return run;
}

// ---- summarize: a point's figures from its runs ------------------------------------------
//
// The runs are taken by pointer (Runs), never copied: a Run holds two load results, each with
// two latency histograms of 18,000 bins.

using Runs = std::vector<const Run*>;

// Of the runs that have the figure: NaN (not measured, or not true) is left out, and is the
// answer when no run has it.
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::erase_if(v, [](double x) { return std::isnan(x); });
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// Median of `f` over the runs.
template <typename F>
double med(const Runs& runs, F f) {
  std::vector<double> v;
  v.reserve(runs.size());
  for (const Run* r : runs) v.push_back(f(*r));
  return median(std::move(v));
}

// The smallest and the largest of `f` over `items` (not empty): the spread beside a median.
template <typename Items, typename F>
std::pair<double, double> spread(const Items& items, F f) {
  double lo = f(items.front()), hi = lo;
  for (const auto& x : items) {
    const double v = f(x);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  return {lo, hi};
}

// A figure of one run.
using Figure = double (*)(const Run&);

// A field of the point: a figure (double), or a count (the median truncated to an integer).
// Implicit, so that a table entry names the field alone.
class Into {
 public:
  constexpr Into(double Point::*figure) : figure_(figure) {}
  constexpr Into(std::uint64_t Point::*count) : count_(count) {}
  void set(Point& p, double v) const {
    if (figure_)
      p.*figure_ = v;
    else
      p.*count_ = static_cast<std::uint64_t>(v);
  }

 private:
  double Point::*figure_ = nullptr;
  std::uint64_t Point::*count_ = nullptr;
};

// "The point's field `into` is the median of `of` over the runs": the summary's tables.
struct Median {
  Figure of;
  Into into;
};

void fill(Point& p, const Runs& runs, std::initializer_list<Median> table) {
  for (const Median& m : table) m.into.set(p, med(runs, m.of));
}

// The parts of a run the figures are read off: the closed loop's result and its server
// sample (over the window), the idle hold's result and its server sample (with the
// connections held).
const load::LoadResult& closed_loop(const Run& r) { return *r.closed; }
const load::ServerSample& window_server(const Run& r) { return *r.closed->server; }
const load::LoadResult& idle_hold(const Run& r) { return *r.idle; }
const load::ServerSample& held_server(const Run& r) { return *r.idle->server; }

// The connections the server held when its memory was read: those answered in the idle hold,
// or fewer when the server's own sockets (listeners included, where the sampler counted them)
// were fewer then: a server that dropped connections during the hold (threaded at 100,000 here
// held 1 socket of 22,940 answered) must not have its memory divided by the ones it dropped.
// But never fewer than the connections answered again after the hold (alive_after_hold): the
// memory is read between the hold and that last round, so those were held. The socket count is
// a lower bound at scale: the kernel's sock_diag dump, read in batches, skipped sockets of
// 100,000 held connections (41,068 to 97,166 counted while every one of the 100,000 answered
// after the hold; 2026-12-04). NaN when it held under half of them: no per-connection figure
// is then honest.
double held_connections(const Run& r) {
  const double opened = static_cast<double>(r.idle->idle_opened);
  const double alive = static_cast<double>(r.idle->idle_alive);
  const auto sockets = static_cast<double>(held_server(r).sockets);  // 0: not measured
  const double held = sockets > 0 ? std::min(opened, std::max(sockets, alive)) : opened;
  return held < 0.5 * opened ? std::numeric_limits<double>::quiet_NaN() : held;
}

// A figure read straight off a part of the run: `Field` (a data member or a const member
// function) of `Part(r)`.
template <auto Part, auto Field>
double figure(const Run& r) {
  return static_cast<double>(std::invoke(Field, Part(r)));
}

// `v` per request of the run's window; NaN (no figure) when the window had no response: a
// point past this host's limits may end there, and 0 per request would be a number that cannot
// be true.
double per_request(const Run& r, double v) {
  return r.closed->requests ? v / static_cast<double>(r.closed->requests)
                            : std::numeric_limits<double>::quiet_NaN();
}

// The server's CPU over the sampler's window, in cores.
double server_cores(const load::ServerSample& s) {
  return s.cpu_us / 1e6 / std::max(1e-9, s.window_s);
}

// The sampler's window may be shorter than the load's when its first snapshot is slow (a
// tree of thousands of threads): the share of the load's window it covered.
double sampler_covered(const Run& r) {
  const double load_s = r.closed->elapsed_s;
  return load_s > 0 ? std::min(1.0, window_server(r).window_s / load_s) : 1.0;
}

int loadgen_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

void fill_latency(Point& p, const Runs& ok) {
  std::vector<load::Percentiles> pct;  // each run's that had a response, computed once
  pct.reserve(ok.size());
  for (const Run* r : ok)
    if (r->closed->requests) pct.push_back(r->closed->latency.summary());
  if (pct.empty()) {  // no latency at all (an end at 0 served): no figures, not zeros
    const double nan = std::numeric_limits<double>::quiet_NaN();
    p.p50_us = p.p90_us = p.p99_us = p.p999_us = p.max_us = p.mean_us = nan;
    p.p99_min_us = p.p99_max_us = nan;
    return;
  }
  static constexpr std::pair<double load::Percentiles::*, double Point::*> kMedians[] = {
      {&load::Percentiles::p50_us, &Point::p50_us}, {&load::Percentiles::p90_us, &Point::p90_us},
      {&load::Percentiles::p99_us, &Point::p99_us}, {&load::Percentiles::p999_us, &Point::p999_us},
      {&load::Percentiles::max_us, &Point::max_us}, {&load::Percentiles::mean_us, &Point::mean_us},
  };
  for (const auto& [of, into] : kMedians) {
    std::vector<double> v;
    for (const auto& s : pct) v.push_back(s.*of);
    p.*into = median(std::move(v));
  }
  std::tie(p.p99_min_us, p.p99_max_us) =
      spread(pct, [](const load::Percentiles& s) { return s.p99_us; });
}

void fill_server(Point& p, const Runs& ok) {
  // CPU per request is taken over the requests of the part of the window the sampler covered
  // (evenly spread), and the point says so when that was short.
  p.sampler_short =
      std::any_of(ok.begin(), ok.end(), [](const Run* r) { return sampler_covered(*r) < 0.9; });
  if (p.sampler_short)
    p.notes.push_back(
        fmt::format("the server sampler covered only {:.0f}% of the window (its "
                    "snapshots of the process tree are slow): CPU per request is "
                    "over that part",
                    100 * med(ok, sampler_covered)));
  // Longer: its snapshots at both ends took time (a second or more over tens of thousands of
  // tasks), and the CPU of that time is in the figure, not scaled away: an upper bound, said.
  auto sampler_over = [](const Run& r) {
    const double load_s = r.closed->elapsed_s;
    return load_s > 0 ? window_server(r).window_s / load_s : 1.0;
  };
  if (std::any_of(ok.begin(), ok.end(), [&](const Run* r) { return sampler_over(*r) > 1.25; }))
    p.notes.push_back(fmt::format(
        "the server's CPU was read over {:.1f} s against the load's {:.1f} s window (its "
        "snapshots of the process tree are slow): CPU per request is an upper bound",
        med(ok, [](const Run& r) { return window_server(r).window_s; }),
        med(ok, [](const Run& r) { return r.closed->elapsed_s; })));
  // A CPU figure that cannot be true (more than the CPUs over the window, or a snapshot that
  // could not be taken at one instant) is not used: said, and left out of the medians.
  const double cpus = static_cast<double>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  Runs cpu_ok;
  for (const Run* r : ok) {
    const load::ServerSample& s = window_server(*r);
    if (s.cpu_consistent && server_cores(s) <= cpus) {
      cpu_ok.push_back(r);
      continue;
    }
    p.notes.push_back(fmt::format(
        "a run's server CPU was not used: {:.2f} s over a {:.2f} s window on {:.0f} CPUs{}",
        s.cpu_us / 1e6, s.window_s, cpus,
        s.cpu_consistent ? " (more than the CPUs can give)"
                         : " (children were reaped under every snapshot pass)"));
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Over the runs whose CPU figure is used; NaN when there is none.
  static constexpr Median kCpu[] = {
      {figure<window_server, &load::ServerSample::cpu_us>, &Point::server_cpu_us},
      {[](const Run& r) {
         return per_request(r, double(window_server(r).cpu_us)) / sampler_covered(r);
       },
       &Point::cpu_us_per_request},
      {[](const Run& r) { return server_cores(window_server(r)); }, &Point::server_cpu_cores},
  };
  for (const Median& m : kCpu) m.into.set(p, cpu_ok.empty() ? nan : med(cpu_ok, m.of));
  // Requests per server CPU-second. Only from a valid, positive CPU figure: a run whose CPU was
  // not used, or a window in which the sampler saw no CPU at all, has no capacity (NaN, "?"),
  // never an infinite or negative one.
  p.capacity_rps = std::isfinite(p.cpu_us_per_request) && p.cpu_us_per_request > 0
                       ? 1e6 / p.cpu_us_per_request
                       : nan;
  fill(p, ok,
       {{[](const Run& r) { return per_request(r, double(window_server(r).nvcsw)); },
         &Point::voluntary_per_request},
        {[](const Run& r) { return per_request(r, double(window_server(r).nivcsw)); },
         &Point::involuntary_per_request},
        {[](const Run& r) {
           const load::ServerSample& s = window_server(r);
           return per_request(r, double(s.nvcsw + s.nivcsw));
         },
         &Point::switches_per_request},
        {figure<window_server, &load::ServerSample::processes_peak>, &Point::processes_peak},
        {figure<window_server, &load::ServerSample::threads_peak>, &Point::threads_peak},
        {[](const Run& r) { return window_server(r).pss_kb_peak / 1024.0; }, &Point::pss_load_mb}});
  p.switches_complete = std::all_of(
      ok.begin(), ok.end(), [](const Run* r) { return window_server(*r).switches_complete; });
}

// The kernel's part of one server's memory at one moment, KB.
struct KernelParts {
  double sockets = 0, page_tables = 0, stacks = 0;  // sockets: NaN when not measured
  double total() const { return sockets + page_tables + stacks; }
};

KernelParts kernel_parts(const load::TreeSnapshot& s) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  KernelParts k;
  k.sockets = s.sockets_measured ? (double(s.sockets) * double(load::socket_object_bytes()) +
                                    double(s.socket_buffer_bytes)) /
                                       1024.0
                                 : nan;
  k.page_tables = double(s.pte_kb);
  k.stacks = double(s.threads * load::kKernelStackKb);
  return k;
}

KernelParts kernel_parts(const load::ServerSample& s) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  KernelParts k;
  k.sockets =
      s.sockets_measured ? double(s.socket_object_bytes + s.socket_buffer_bytes) / 1024.0 : nan;
  k.page_tables = double(s.pte_kb);
  k.stacks = double(s.kernel_stack_kb);
  return k;
}

// The kernel's memory per connection held, beside PSS (runs with an idle hold only). Each part
// is (with the connections held - before any connection) / held, as for PSS; a part that fell
// below its baseline (a thread pool shrinking, page tables freed after the closed loop) counts
// 0, is said in a note and sets kernel_fell: never a negative cost.
void fill_kernel_memory(Point& p, const Runs& idle) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Part {
    const char* name;
    double KernelParts::*field;
    double Point::*per_conn;
  };
  static constexpr Part kParts[] = {
      {"sockets", &KernelParts::sockets, &Point::sock_per_conn_kb},
      {"page tables", &KernelParts::page_tables, &Point::pte_per_conn_kb},
      {"kernel stacks", &KernelParts::stacks, &Point::stack_per_conn_kb},
  };
  std::map<std::string, double> fell;  // part -> largest fall over the runs, KB
  for (const Part& part : kParts) {
    p.*part.per_conn = med(idle, [&](const Run& r) {
      double held = held_connections(r);
      // The sockets' memory is the dump's, over the sockets the dump saw (held_connections:
      // at scale it misses some): per socket it saw.
      if (part.field == &KernelParts::sockets) {
        const double seen = double(held_server(r).sockets) - double(r.baseline.sockets);
        if (seen > 0 && seen < held) held = seen;
      }
      const double grew =
          kernel_parts(held_server(r)).*part.field - kernel_parts(r.baseline).*part.field;
      if (std::isnan(grew) || !(held > 0)) return nan;  // (held NaN: no socket counted)
      if (grew < 0) fell[part.name] = std::max(fell[part.name], -grew);
      return std::max(0.0, grew) / held;
    });
  }
  // The sum of the parts' medians (not the median of the sums), so that the stacked bars and
  // the table add up; with one run they are the same.
  p.kernel_per_conn_kb = p.sock_per_conn_kb + p.pte_per_conn_kb + p.stack_per_conn_kb;
  p.whole_per_conn_kb = p.mem_per_conn_kb + p.kernel_per_conn_kb;
  // (KB to MB by 1024 inside the median is exact: the same figure as dividing the median.)
  fill(p, idle,
       {{[](const Run& r) { return kernel_parts(r.baseline).total() / 1024; },
         &Point::kernel_baseline_mb},
        {[](const Run& r) { return kernel_parts(held_server(r)).total() / 1024; },
         &Point::kernel_idle_mb},
        {[](const Run& r) { return double(r.baseline.threads); }, &Point::threads_baseline},
        {figure<held_server, &load::ServerSample::threads>, &Point::threads_idle},
        {figure<held_server, &load::ServerSample::sockets>, &Point::sockets_idle}});
  p.kernel_fell = !fell.empty();
  for (const auto& [what, kb] : fell)
    p.notes.push_back(
        fmt::format("idle hold: the server's {} fell by {:.0f} KB from the baseline "
                    "while holding the connections: counted as 0 per connection",
                    what, kb));
}

void fill_memory(Point& p, const Runs& ok) {
  p.pss_baseline_mb = med(ok, [](const Run& r) { return r.baseline_pss_kb / 1024.0; });
  Runs idle;
  for (const Run* r : ok)
    if (r->idle && r->idle->server) idle.push_back(r);
  if (idle.empty()) return;
  fill(p, idle,
       {{[](const Run& r) { return held_server(r).pss_kb / 1024.0; }, &Point::pss_idle_mb},
        {figure<idle_hold, &load::LoadResult::idle_opened>, &Point::idle_opened},
        {figure<idle_hold, &load::LoadResult::idle_alive>, &Point::idle_alive}});
  // Per connection *held*: the memory was read with idle_opened connections open, not N.
  // PSS can fall between the baseline and the hold (pages freed after the closed loop) by more
  // than a handful of connections cost: that is noise, said as such, never a negative cost.
  double fell_kb = 0;
  p.mem_per_conn_kb = med(idle, [&](const Run& r) {
    const double held = held_connections(r);
    // No connection held (or none counted): no figure, and so no fall to speak of either.
    if (!(held > 0)) return std::numeric_limits<double>::quiet_NaN();
    const double grew = double(held_server(r).pss_kb) - double(r.baseline_pss_kb);
    if (grew < 0) fell_kb = std::max(fell_kb, -grew);
    return std::max(0.0, grew) / held;
  });
  // (No connection held in any run: no per-connection figure at all, NaN, "?" in the report.)
  for (const Run* r : idle)
    if (std::isnan(held_connections(*r))) {
      p.notes.push_back(fmt::format(
          "idle hold: the server held {} sockets of the {} connections answered when its memory "
          "was read (it dropped the others): no memory per connection",
          held_server(*r).sockets, r->idle->idle_opened));
      break;
    }
  if (fell_kb > 0)
    p.notes.push_back(
        fmt::format("idle hold: PSS fell by {:.0f} KB from the baseline while "
                    "holding the connections (noise larger than their cost): "
                    "counted as 0 per connection",
                    fell_kb));
  fill_kernel_memory(p, idle);
  p.idle_at_n = static_cast<double>(p.idle_opened) >= kAtNShare * p.connections;
  if (!p.idle_at_n) {
    p.notes.push_back(fmt::format("idle hold: only {} of {} connections got their first answer{}",
                                  p.idle_opened, p.connections,
                                  std::isfinite(p.mem_per_conn_kb)
                                      ? "; memory per connection is over those the server held"
                                      : ""));
  }
}

// The load generator's own CPU over the window (the sampler's snapshots left out), and its
// cores: that CPU over the time it was counted in (load.hpp).
void fill_loadgen(Point& p, const Runs& ok, const SweepConfig& c) {
  fill(p, ok,
       {{[](const Run& r) { return r.closed->load_cpu_us(); }, &Point::loadgen_cpu_us},
        {[](const Run& r) { return r.closed->client_cores(); }, &Point::loadgen_cpu_cores}});
  p.loadgen_threads = std::min(c.threads, p.connections);
  // The rule (results.hpp): CPU over the window >= 90% of one core per load thread, counting
  // only the cores this process may run on (with --pin: one).
  double cores = std::min(p.loadgen_threads, loadgen_cores());
  p.loadgen_bound = p.loadgen_cpu_cores >= kLoadgenBoundShare * cores;
}

// One run's raw figures, for the point's `runs`.
nlohmann::json run_json(const Run& r) {
  nlohmann::json j{{"failure", r.failure}, {"baseline_pss_kb", r.baseline_pss_kb}};
  // The kernel parts before any connection (with the connections held: idle.server).
  j["baseline_kernel"] = {
      {"threads", r.baseline.threads},
      {"page_tables_kb", r.baseline.pte_kb},
      {"stacks_kb", r.baseline.threads * load::kKernelStackKb},
      {"sockets",
       r.baseline.sockets_measured ? nlohmann::json(r.baseline.sockets) : nlohmann::json()},
      {"socket_buffers_kb", r.baseline.sockets_measured
                                ? nlohmann::json(r.baseline.socket_buffer_bytes / 1024)
                                : nlohmann::json()}};
  if (r.closed) j["closed"] = r.closed->to_json();
  if (r.idle) j["idle"] = r.idle->to_json();
  return j;
}

// What on this host stops `server` short of n connections, when something must (a limit n is
// past): {short, long}, or empty strings. One process may hold RLIMIT_NOFILE descriptors;
// threads and processes together are capped by pid_max, machine-wide; Apache prefork also by
// memory (apache_prefork_cap), and the label names the cap that binds.
std::pair<std::string, std::string> host_stop(const std::string& server, bool peer, int n,
                                              const SweepConfig& c) {
  const HostLimits h = host_limits();
  std::vector<std::string> brief, why;
  const bool thread_each =
      server == "threaded" || server == "apache-worker" || server == "apache-event";
  const bool process_each = server == "forked" || server == "apache-prefork";
  const PreforkCap prefork = apache_prefork_cap(h);
  if (server == "apache-prefork" && prefork.by_memory && n > prefork.processes) {
    // Memory binds before pid_max: the runner gives prefork no more children than half the
    // available memory holds at its estimate per child.
    brief.push_back(fmt::format("memory, {} processes", prefork.processes));
    why.push_back(fmt::format(
        "a process per connection, and half of the {} MiB available holds {} of them at an "
        "estimated {} KiB each (before pid_max {})",
        h.mem_available_kb / 1024, prefork.processes, prefork.child_kb, h.pid_max));
  } else if ((thread_each || process_each) && n > h.task_budget()) {
    brief.push_back(fmt::format("pid_max {}", h.pid_max));
    why.push_back(fmt::format(
        "a {} per connection, and pid_max is {} (threads and processes, machine-wide; {} "
        "kept for the load generator and the rest of the machine)",
        thread_each ? "thread" : "process", h.pid_max, HostLimits::kTaskMargin));
  }
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  const auto nofile = static_cast<long>(rl.rlim_cur);
  // Our models but forked hold their connections in their one process unless serve --workers
  // spreads them (model_workers: 1 for threaded, which cannot).
  const bool one_process = !peer && server != "forked" && model_workers(c, server, n) <= 1;
  if (one_process && n + static_cast<long>(kSpareDescriptors) > nofile) {
    brief.push_back(fmt::format("{} descriptors", nofile));
    why.push_back(
        fmt::format("one process holds every connection, and may open {} descriptors "
                    "(RLIMIT_NOFILE; root cannot raise the hard limit here){}",
                    nofile, server == "threaded" ? "" : ": --workers N spreads them"));
  }
  return {fmt::format("{}", fmt::join(brief, ", ")), fmt::format("{}", fmt::join(why, "; "))};
}

Point summarize(const SweepConfig& c, const std::string& server, bool peer, int n,
                const std::vector<Run>& runs) {
  Point p;
  p.server = server;
  p.kind = peer ? "peer" : "model";
  p.connections = n;
  Runs ok;
  for (const auto& r : runs) {
    for (const auto& note : r.notes)
      if (std::find(p.notes.begin(), p.notes.end(), note) == p.notes.end()) p.notes.push_back(note);
    if (r.failure.empty()) ok.push_back(&r);
    p.runs.push_back(run_json(r));
  }
  if (ok.empty()) {
    p.status = "failed";
    p.reason = runs.empty() ? "interrupted" : runs.front().failure;
    return p;
  }
  if (ok.size() < runs.size())
    p.notes.push_back(fmt::format("{} of {} runs failed: {}", runs.size() - ok.size(), runs.size(),
                                  std::find_if(runs.begin(), runs.end(), [](const Run& r) {
                                    return !r.failure.empty();
                                  })->failure));
  p.repeats = static_cast<int>(ok.size());
  fill(p, ok,
       {{figure<closed_loop, &load::LoadResult::elapsed_s>, &Point::window_s},
        {figure<closed_loop, &load::LoadResult::requests_per_s>, &Point::rps},
        {figure<closed_loop, &load::LoadResult::requests>, &Point::requests},
        {[](const Run& r) { return double(r.closed->errors.total()); }, &Point::errors},
        {figure<closed_loop, &load::LoadResult::connections_in_window>, &Point::reached},
        {figure<closed_loop, &load::LoadResult::ramp_s>, &Point::ramp_s},
        {figure<closed_loop, &load::LoadResult::ramp_reached>, &Point::ramp_reached}});
  std::tie(p.rps_min, p.rps_max) =
      spread(ok, [](const Run* r) { return r->closed->requests_per_s(); });
  if (p.errors)
    p.notes.push_back(fmt::format("{} load errors (median per run; see results.json)", p.errors));
  const int ranks = load_ranks_for(p.connections);
  if (ranks > 1) p.notes.push_back(fmt::format("load from {} processes through mpirun", ranks));
  if (auto sources = loopback_sources_for(p.connections, ranks); !sources.empty())
    p.notes.push_back(fmt::format("load from source addresses {}", sources));
  p.at_n = static_cast<double>(p.reached) >= kAtNShare * p.connections;
  if (!p.at_n)
    p.notes.push_back(
        fmt::format("reached {} of {} connections: only {} were served in the "
                    "window ({} answered by the end of the {:.1f} s ramp)",
                    p.reached, p.connections, p.reached, p.ramp_reached, p.ramp_s));
  fill_latency(p, ok);
  fill_server(p, ok);
  fill_memory(p, ok);
  fill_loadgen(p, ok, c);
  if (!p.at_n || !p.idle_at_n) {
    auto [brief, why] = host_stop(server, peer, p.connections, c);
    p.stops_at = brief;
    if (!why.empty()) p.notes.push_back("where this host stops it: " + why);
  }
  return p;
}

// Why a point cannot run at all, or "".
std::string skip_reason(const SweepConfig& c, const std::string& server, bool peer, int n) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  // The load side: each load process opens its share (several under mpirun, --load-ranks).
  const int ranks = load_ranks_for(n);
  const rlim_t per_rank = static_cast<rlim_t>((n + ranks - 1) / ranks);
  if (per_rank + kSpareDescriptors > rl.rlim_cur)
    return fmt::format(
        "{} connections need {} file descriptors{}, RLIMIT_NOFILE is {} (hard limit "
        "{}): raise it (ulimit -n), or spread the load with --load-ranks 0",
        n, per_rank + kSpareDescriptors,
        ranks > 1 ? fmt::format(" in each of {} load processes", ranks) : "", rl.rlim_cur,
        rl.rlim_max);
  if (ranks > 1) {
    LoadLaunch need = load_launch();
    need.ranks = ranks;
    if (std::string why = check_load_launch(need); !why.empty()) return why;
  }
  if (peer && peer_protocol(server) != c.handler)
    return fmt::format("{} speaks {}; --handler is {}", server, peer_protocol(server), c.handler);
  if (peer)
    if (std::string missing = peer_missing(server); !missing.empty())
      return fmt::format("{} is not available: {}", server, missing);
  return "";
}

std::string outcome(const Point& p) {
  if (!p.ok()) return fmt::format("{}: {}", p.status, p.reason.substr(0, 200));
  // "?" for a figure that was not measured (NaN), as in the report.
  auto fig = [](double v, int decimals) {
    return std::isfinite(v) ? fmt::format("{:.{}f}", v, decimals) : std::string("?");
  };
  return fmt::format("{:.0f} req/s, p99 {} ms, {} µs CPU/req, PSS {:.1f} MB{}", p.rps,
                     fig(p.p99_us / 1000, 2), fig(p.cpu_us_per_request, 1), p.pss_idle_mb,
                     p.loadgen_bound ? " [load-generator bound]" : "");
}

// One point of the sweep and the runs it has so far.
struct Planned {
  std::string server;
  bool peer = false;
  int n = 0;
  std::string skip;  // why it cannot run at all, or ""
  std::vector<Run> runs;
  std::size_t index = 0;  // its place in results.points, once it has one
  bool listed = false;
};

std::string label(const Planned& p, int pass, int passes) {
  std::string l = fmt::format("{} c={}", p.server, p.n);
  if (passes > 1) l += fmt::format(" (run {} of {})", pass, passes);
  return l;
}

// Puts the point's summary in results.points, in its place from the first pass on.
const Point& record(Planned& pl, Point point, Results& results) {
  if (!pl.listed) {
    pl.index = results.points.size();
    pl.listed = true;
    results.points.push_back(std::move(point));
  } else {
    results.points[pl.index] = std::move(point);
  }
  return results.points[pl.index];
}

}  // namespace

std::optional<load::LoadResult> run_load_with_limit(const load::LoadConfig& lc) {
  return run_load_bounded(lc, load_limit(lc));
}

StartedServer start_server(const SweepConfig& c, const std::string& server, bool peer, int n,
                           const std::string& tag, const std::vector<std::string>& extra_args) {
  std::filesystem::create_directories(c.out_dir + "/servers");
  Launched l = peer ? launch_peer(c, server, n, tag) : launch_model(c, server, tag, n, extra_args);
  StartedServer s;
  s.child = std::move(l.child);
  s.port = l.port;
  s.stats_file = l.stats_file;
  s.notes = std::move(l.notes);
  s.error = std::move(l.error);
  s.peer = peer;
  return s;
}

std::string stop_server(StartedServer& s) {
  if (!s.child) return "";
  const milliseconds limit = s.peer ? kPeerStopTimeout : kModelStopTimeout;
  auto status = s.child->stop(SIGTERM, limit);
  if (!status)
    return fmt::format("did not exit within {} s of SIGTERM: killed", limit.count() / 1000);
  if (*status != 0) return fmt::format("exited with status {} after SIGTERM", *status);
  return "";
}

double planned_seconds(const SweepConfig& c, int n) {
  return 0.5 + (c.warmup + c.duration + c.idle_hold).count() / 1000.0 + 2 * ramp_seconds(c, n) +
         0.5;
}

void run_sweep(const SweepConfig& config, Results& results, const std::atomic<bool>& stop,
               Progress& progress, const std::function<void()>& on_point) {
  std::filesystem::create_directories(config.out_dir + "/servers");
  std::vector<Planned> plan;
  auto add = [&](const std::string& server, bool peer) {
    for (int n : config.connections) {
      Planned pl;
      pl.server = server;
      pl.peer = peer;
      pl.n = n;
      pl.skip = skip_reason(config, server, peer, n);
      plan.push_back(std::move(pl));
    }
  };
  for (const auto& m : config.models) add(m, false);
  for (const auto& p : config.peers) add(p, true);

  for (int pass = 1; pass <= config.repeat; ++pass) {
    for (auto& pl : plan) {
      if (stop) return;
      if (!pl.skip.empty()) {
        if (pass > 1) continue;
        progress.begin(label(pl, pass, 1), 0);
        Point p;
        p.server = pl.server;
        p.kind = pl.peer ? "peer" : "model";
        p.connections = pl.n;
        p.status = "skipped";
        p.reason = pl.skip;
        progress.end(outcome(record(pl, std::move(p), results)));
        // Its other passes will not run, and none of its planned time will be spent.
        progress.forgo(config.repeat - 1, config.repeat * planned_seconds(config, pl.n));
        on_point();
        continue;
      }
      progress.begin(label(pl, pass, config.repeat), planned_seconds(config, pl.n));
      Run r = run_once(config, pl.server, pl.peer, pl.n, pass, progress, stop);
      if (stop) return;  // an interrupted run is not a measurement
      pl.runs.push_back(std::move(r));
      const Point& p = record(pl, summarize(config, pl.server, pl.peer, pl.n, pl.runs), results);
      progress.end(outcome(p));
      on_point();
    }
  }
}

}  // namespace shootout::runner
