// `shootout run` (the sweep) and `shootout plot DIR` (redraw graphs and report from results).
#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "command.hpp"
#include "load.hpp"
#include "machine.hpp"
#include "mpi_load.hpp"
#include "peers/peers.hpp"
#include "plot.hpp"
#include "plugin_flags.hpp"
#include "probe.hpp"
#include "process.hpp"
#include "progress.hpp"
#include "results.hpp"
#include "scenario.hpp"
#include "sweep.hpp"

namespace shootout {

namespace {

using runner::SweepConfig;

struct RunFlags {
  SweepConfig sweep;
  std::vector<std::string> models, peers;
  std::vector<int> connections;
  std::string duration = "3s", warmup = "1s", timeout = "10s";
  double idle_hold_s = 2;
  bool quick = false;
  std::string out;
  std::string server_args;
  std::vector<std::string> handler_libs;  // --handler-lib: loaded here, passed on to serve
  std::string scenario;                   // "", stall, wait
  bool rate_sweep = false;
  long burn_us = 500'000;
  runner::LoadLaunch load;  // --load-ranks, --load-hosts
  CLI::App* app = nullptr;
};

std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string out;
  for (char ch : all) out += ch == '\0' ? ' ' : ch;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string timestamp(const char* format) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

// Ctrl-C (SIGINT) or SIGTERM: kill every server started, let the sweep return what it has. A
// second one exits at once. SIGUSR2 from the main thread ends the watcher at the end of the run
// (flagged first: a SIGUSR2 from anyone else is ignored).
class StopWatcher {
 public:
  StopWatcher() {
    sigset_t set = signals();
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread: they all inherit it
    thread_ = std::thread([this] { watch(); });
  }
  ~StopWatcher() {
    quitting_.store(true);
    ::pthread_kill(thread_.native_handle(), SIGUSR2);
    thread_.join();
  }
  const std::atomic<bool>& stop() const { return stop_; }

 private:
  static sigset_t signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR2);
    return set;
  }
  void watch() {
    sigset_t set = signals();
    for (;;) {
      int sig = 0;
      if (::sigwait(&set, &sig) != 0) return;
      if (sig == SIGUSR2) {
        if (quitting_.load()) return;
        continue;  // someone else's SIGUSR2: not ours to end the watcher with
      }
      runner::kill_all_children();
      if (stop_.exchange(true)) ::_exit(130);
      fmt::print(stderr,
                 "\nshootout run: interrupted; servers killed, writing the results so far "
                 "(again to quit at once)\n");
    }
  }
  std::atomic<bool> stop_{false};
  std::atomic<bool> quitting_{false};  // set by the destructor before its own SIGUSR2
  std::thread thread_;
};

// Flags to the sweep's configuration; returns an error message for bad combinations.
std::string resolve(RunFlags& f) {
  SweepConfig& c = f.sweep;
  c.binary = runner::self_binary();
  auto available = runner::available_models(c.binary);
  if (available.empty())
    return "cannot list the models (`shootout serve --help` gave no --model set)";
  c.models = f.app->count("--models") ? f.models : available;
  if (c.models == std::vector<std::string>{"none"}) c.models.clear();  // the peers alone
  for (const auto& m : c.models)
    if (std::find(available.begin(), available.end(), m) == available.end())
      return fmt::format("unknown model '{}' (this build has: {})", m, fmt::join(available, ", "));
  // A model this machine cannot run (uring where io_uring is disabled) is left out, and said.
  std::erase_if(c.models, [&c](const std::string& m) {
    std::string why = runner::model_unavailable(c.binary, m);
    if (why.empty()) return false;
    fmt::print(stderr, "shootout run: leaving out model {}: {}\n", m, why);
    c.left_out.push_back(m + ": " + why);
    return true;
  });
  c.peers = f.peers;
  for (const auto& p : c.peers)
    if (!runner::is_peer(p))
      return fmt::format("unknown peer '{}' (known: {})", p, fmt::join(runner::peer_names(), ", "));
  // The scenarios' own defaults (explicit flags, and --quick, still win).
  auto given = [&f](const char* flag) { return f.app->count(flag) > 0; };
  if (f.scenario == "stall" || f.rate_sweep) {
    if (f.scenario == "stall" && f.rate_sweep)
      return "--scenario stall and --rate-sweep are separate runs: give one";
    if (f.scenario == "wait") return "--scenario wait and --rate-sweep are separate runs: give one";
    c.connections = {f.rate_sweep ? 100 : 10};
    if (!given("--duration")) f.duration = f.rate_sweep ? "2s" : "4s";
    if (!given("--warmup")) f.warmup = "500ms";
    if (given("--connections") && f.connections.size() != 1)
      return fmt::format("{} runs at one connection count; got {}",
                         f.rate_sweep ? "--rate-sweep" : "--scenario stall", f.connections.size());
  }
  if (f.scenario == "stall") {
    if (!c.peers.empty()) return "--scenario stall runs our models only (peers have no /cpu)";
    if (given("--path")) return "--scenario stall sends GET / and GET /cpu: --path does not apply";
    if (c.handler != "http") return "--scenario stall needs --handler http";
    std::vector<std::string> stall_models;
    for (const auto& v : runner::stall_variants(c.models)) stall_models.push_back(v.model);
    for (const auto& m : c.models)
      if (std::find(stall_models.begin(), stall_models.end(), m) == stall_models.end())
        fmt::print(stderr, "shootout run: the stall has no variant of model {}: left out\n", m);
    if (stall_models.empty())
      return "--scenario stall: none of the models has a stall variant (evented, threaded, "
             "coroutine, uring)";
  }
  if (f.scenario == "wait") {
    if (!given("--path")) c.path = "/sleep?ms=20";
    if (runner::sleep_ms_of(c.path) <= 0)
      return fmt::format("--scenario wait needs a --path of the form /sleep?ms=N; got '{}'",
                         c.path);
    if (c.handler != "http") return "--scenario wait needs --handler http";
    c.connections = {10, 100, 1000, 3000, 10000};
  }
  if (f.quick) {
    c.connections = {1, 100, 1000};
    f.duration = f.app->count("--duration") ? f.duration : "1s";
    f.warmup = f.app->count("--warmup") ? f.warmup : "300ms";
    f.idle_hold_s = f.app->count("--idle-hold-seconds") ? f.idle_hold_s : 0.5;
  }
  if (f.app->count("--connections")) c.connections = f.connections;
  if ((f.scenario == "stall" || f.rate_sweep) && c.connections.size() != 1)
    c.connections.resize(1);  // --quick's list: the scenario runs at one N
  if (f.burn_us <= 0) return "--burn-us must be positive";
  {
    std::istringstream words(f.server_args);
    for (std::string w; words >> w;) c.server_args.push_back(w);
  }
  for (const auto& lib : f.handler_libs)  // absolute: the servers may start elsewhere
    c.server_args.insert(c.server_args.end(),
                         {"--handler-lib", std::filesystem::absolute(lib).string()});
  try {
    c.duration = load::parse_duration(f.duration);
    c.warmup = load::parse_duration(f.warmup);
    c.timeout = load::parse_duration(f.timeout);
  } catch (const load::LoadError& e) {
    return e.what();
  }
  if (c.duration.count() <= 0) return "--duration must be positive";
  if (c.timeout.count() <= 0) return "--timeout must be positive";
  c.idle_hold = std::chrono::milliseconds(static_cast<long>(f.idle_hold_s * 1000));
  if (c.models.empty() && c.peers.empty()) return "nothing to run: no model and no peer";
  c.out_dir = f.out.empty() ? "results/" + timestamp("%Y%m%d-%H%M%S") : f.out;
  f.load.binary = c.binary;
  f.load.log_dir = c.out_dir + "/load";
  if (auto err = runner::check_load_launch(f.load); !err.empty()) return err;
  if (f.load.ranks > 1 && f.scenario == "stall")
    return "--scenario stall keeps a per-request timeline in one load process: no --load-ranks";
  runner::set_load_launch(f.load);
  return "";
}

void pin_self(SweepConfig& c) {
  if (!c.pin) return;
  if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) {
    fmt::print(stderr, "shootout run: --pin needs 2 CPUs; running unpinned\n");
    c.pin = false;
    return;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(1, &set);
  ::sched_setaffinity(0, sizeof set, &set);  // main thread, before the load threads exist
  // Load ranks under mpirun are processes of their own: they are started on the same CPU.
  runner::LoadLaunch load = runner::load_launch();
  load.cpu = 1;
  runner::set_load_launch(load);
}

nlohmann::json config_json(const SweepConfig& c) {
  return {{"models", c.models},
          {"left_out", c.left_out},
          {"peers", c.peers},
          {"connections", c.connections},
          {"duration_ms", c.duration.count()},
          {"warmup_ms", c.warmup.count()},
          {"idle_hold_ms", c.idle_hold.count()},
          {"handler", c.handler},
          {"path", c.path},
          {"repeat", c.repeat},
          {"pin", c.pin},
          {"loadgen_threads", c.threads},
          {"load_engine", load::engine_name(c.load_engine)},
          {"nginx_workers", c.nginx_workers},
          {"workers", c.workers},
          {"connect_rate", c.connect_rate},
          {"timeout_ms", c.timeout.count()},
          {"server_args", c.server_args},
          {"load_ranks", runner::load_launch().ranks},
          {"load_hosts", runner::load_launch().hosts}};
}

std::string scenario_of(const RunFlags& f) { return f.rate_sweep ? "rate-sweep" : f.scenario; }

// Graphs and report; prints where they are. Returns false if gnuplot failed.
bool finish(const std::string& dir, const runner::Results& r) {
  runner::write_results(dir, r);
  std::string err = runner::draw_graphs(dir, r);
  runner::write_report(dir, r, err);
  if (!err.empty()) fmt::print(stderr, "shootout: graphs not drawn: {}\n", err);
  fmt::print("results: {}/results.csv, {}/results.json\nreport: {}/report.md\n", dir, dir, dir);
  return err.empty();
}

int run(RunFlags& f) {
  if (auto err = resolve(f); !err.empty()) {
    fmt::print(stderr, "shootout run: {}\n", err);
    return 2;
  }
  SweepConfig& c = f.sweep;
  auto [soft, hard] = load::raise_fd_limit();
  pin_self(c);
  std::error_code ec;
  std::filesystem::create_directories(c.out_dir, ec);
  if (ec) {
    fmt::print(stderr, "shootout run: cannot create {}: {}\n", c.out_dir, ec.message());
    return 1;
  }
  // Peers are started with their own working directory (nginx -p, Apache ServerRoot), so every
  // path handed to them must be absolute.
  c.out_dir = std::filesystem::absolute(c.out_dir).lexically_normal().string();
  runner::Results results;
  results.meta = {{"command_line", command_line()},
                  {"started", timestamp("%Y-%m-%d %H:%M:%S %z")},
                  {"machine", runner::machine_info()},
                  {"versions", runner::versions()},
                  {"config", config_json(c)}};
  results.meta["config"]["scenario"] = scenario_of(f);
  if (f.scenario == "stall") results.meta["config"]["burn_us"] = f.burn_us;
  StopWatcher watcher;
  if (f.scenario == "stall" || f.rate_sweep) {
    const bool stall = f.scenario == "stall";
    const int n = c.connections.front();
    const std::size_t servers = c.models.size() + c.peers.size();
    const int items = stall ? static_cast<int>(runner::stall_variants(c.models).size())
                            : static_cast<int>(servers * (1 + runner::rate_fractions().size()));
    const double per = (c.warmup + c.duration).count() / 1000.0;
    const double planned =
        stall ? items * (per + 1) : servers * (2.5 + (items / double(servers) - 1) * per);
    fmt::print(stderr,
               "shootout run: {} at {} connections, {} runs, about {:.0f} s; results in {}\n",
               stall ? "the stall" : "the rate sweep", n, items, planned, c.out_dir);
    {
      runner::Progress progress(items, planned, ::isatty(STDERR_FILENO) != 0);
      auto save = [&] { runner::write_results(c.out_dir, results); };
      if (stall) {
        runner::StallOptions o;
        o.burn = std::chrono::microseconds(f.burn_us);
        runner::run_stall(c, o, results, watcher.stop(), progress, save);
      } else {
        runner::run_rate_sweep(c, results, watcher.stop(), progress, save);
      }
    }
    results.interrupted = watcher.stop().load();
    results.meta["finished"] = timestamp("%Y-%m-%d %H:%M:%S %z");
    finish(c.out_dir, results);
    return results.interrupted ? 130 : 0;
  }
  double planned = 0;
  for (int n : c.connections) planned += runner::planned_seconds(c, n);
  planned *= static_cast<double>((c.models.size() + c.peers.size()) * c.repeat);
  int total = static_cast<int>(c.connections.size() * (c.models.size() + c.peers.size()));
  fmt::print(stderr,
             "shootout run: {} points ({} x {} connection counts){}, about {:.0f} s; "
             "RLIMIT_NOFILE {} (hard {}); results in {}\n",
             total, fmt::join(c.models.size() ? c.models : c.peers, ","), c.connections.size(),
             c.repeat > 1 ? fmt::format(", {} passes over them", c.repeat) : "", planned, soft,
             hard, c.out_dir);
  {
    runner::Progress progress(total * c.repeat, planned, ::isatty(STDERR_FILENO) != 0);
    runner::run_sweep(c, results, watcher.stop(), progress,
                      [&] { runner::write_results(c.out_dir, results); });
  }
  results.interrupted = watcher.stop().load();
  results.meta["finished"] = timestamp("%Y-%m-%d %H:%M:%S %z");
  finish(c.out_dir, results);
  return results.interrupted ? 130 : 0;
}

int plot(const std::string& dir) {
  try {
    runner::Results r = runner::read_results(dir);
    return finish(dir, r) ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "shootout plot: {}\n", e.what());
    return 1;
  }
}

}  // namespace

Command add_run_command(CLI::App& app) {
  auto f = std::make_shared<RunFlags>();
  SweepConfig& c = f->sweep;
  auto* sub = app.add_subcommand(
      "run", "Sweep models (and real peers) over connection counts; write results, graphs, report");
  f->app = sub;
  sub->add_option("--models", f->models,
                  "Models to run, comma-separated (default: every model; none: only the --peers)")
      ->delimiter(',');
  sub->add_option("--peers", f->peers,
                  "Real servers beside the models: nginx,apache-prefork,apache-worker,"
                  "apache-event, and other runtimes' servers: node,node-cluster (node.js http), "
                  "go,go-2 (net/http, GOMAXPROCS 1 and 2), tokio,tokio-mt (hyper; current- and "
                  "multi-thread runtime), eventmachine (Ruby); a missing one is skipped")
      ->delimiter(',');
  sub->add_option("--connections", f->connections, "Connection counts, comma-separated")
      ->delimiter(',')
      ->check(CLI::Range(1, 1'000'000))
      ->default_str("1,10,100,1000,10000");
  sub->add_option("--duration", f->duration, "Measurement window per point (e.g. 3s, 500ms)")
      ->capture_default_str();
  sub->add_option("--warmup", f->warmup, "Load before the window, not counted (plus the ramp)")
      ->capture_default_str();
  sub->add_option("--timeout", f->timeout, "A connect or response slower than this is a load error")
      ->capture_default_str();
  sub->add_option("--idle-hold-seconds", f->idle_hold_s,
                  "Seconds the N idle connections are held for the memory figure")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  add_handler_lib_option(*sub, &f->handler_libs);  // before --handler, checked against it
  sub->add_option("--handler", c.handler,
                  "Protocol handler (one with a probe for the load generator; the peers that "
                  "speak it: http for nginx and the others, resp for redis)")
      ->check(registered_check("handler with a probe",
                               [] {
                                 std::vector<std::string> both;
                                 for (const auto& h : handler_names())
                                   for (const auto& p : probe_names())
                                     if (h == p) both.push_back(h);
                                 return both;
                               }))
      ->capture_default_str();
  sub->add_option("--path", c.path, "Request path (http)")->capture_default_str();
  sub->add_option("--repeat", c.repeat, "Runs per point (fresh server each); medians and spread")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  sub->add_flag("--pin", c.pin, "Server on CPU 0, load generator on CPU 1");
  sub->add_option("--load-ranks", f->load.ranks,
                  "Load processes: K > 1 runs each load through mpirun -np K (rank 0 here, it "
                  "samples the server); the server stays here; 0: as many as each point's "
                  "connections need within the descriptor limit (1 up to ~19,700 here)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  sub->add_option("--load-hosts", f->load.hosts,
                  "With --load-ranks: hosts for the ranks after rank 0 (mpirun -H; host:slots)");
  sub->add_option("--server-args", f->server_args,
                  "Extra arguments for every model's server, one string (e.g. "
                  "--server-args='--max-procs 50')");
  sub->add_flag("--quick", f->quick,
                "Connections 1,100,1000; 1s window, 300ms warm-up, 0.5s idle hold");
  sub->add_option("--out", f->out, "Results folder (default: results/<timestamp>)");
  sub->add_option("--scenario", f->scenario,
                  "stall: GET / latency over time while one client burns /cpu once a second "
                  "(--burn-us), per model and --offload-cpu; wait: the sweep with every request "
                  "waiting (--path /sleep?ms=20, N = 10..10,000), against Little's law")
      ->check(CLI::IsMember({"stall", "wait"}));
  sub->add_flag("--rate-sweep", f->rate_sweep,
                "At one N (default 100): find saturation with a closed loop, then offer 10%..150% "
                "of it at a constant rate; p50/p99/p99.9 (coordinated omission corrected) "
                "against offered load");
  sub->add_option("--burn-us", f->burn_us, "The stall's /cpu burn, microseconds")
      ->check(CLI::Range(1L, 10'000'000L))
      ->capture_default_str();
  sub->add_option("-t,--threads", c.threads, "Load generator threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  sub->add_option_function<std::string>(
         "--load-engine",
         [&c](const std::string& name) { c.load_engine = load::parse_engine(name); },
         "The load generator's I/O: asio (readiness, epoll) or uring (completion, io_uring)")
      ->check(CLI::IsMember({"asio", "uring"}))
      ->default_str("asio");
  sub->add_option("--nginx-workers", c.nginx_workers,
                  "nginx worker_processes (0: as many as each point's connections need within "
                  "the descriptor limit, with listen reuseport)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  sub->add_option("--workers", c.workers,
                  "Run evented, coroutine and uring as a master and N worker processes (serve "
                  "--workers; threaded and forked as they are); 0: as many as each point's "
                  "connections need within the descriptor limit")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  sub->add_option("--connect-rate", c.connect_rate,
                  "New connections per second while ramping above 100 connections (0: all at once)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  return {sub, [f] { return run(*f); }};
}

Command add_plot_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("plot", "Redraw the graphs and report.md from a results folder");
  sub->add_option("dir", *dir, "Results folder (holds results.json)")
      ->required()
      ->check(CLI::ExistingDirectory);
  return {sub, [dir] { return plot(*dir); }};
}

}  // namespace shootout
