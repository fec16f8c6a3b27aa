// The runner's load through mpirun (mpi_load.hpp): a LoadConfig as `shootout load` flags, the
// result read back from its --json-raw file (histograms exact).
#include "mpi_load.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "process.hpp"

namespace shootout::runner {

namespace {

LoadLaunch g_launch;

std::string ms(std::chrono::milliseconds d) { return fmt::format("{}ms", d.count()); }

std::string mpirun_path() {
  for (const char* p : {"/usr/bin/mpirun", "/usr/local/bin/mpirun"})
    if (::access(p, X_OK) == 0) return p;
  return "";
}

std::vector<std::string> load_args(const load::LoadConfig& c, const std::string& out) {
  std::vector<std::string> a{"load",
                             "--json-raw",
                             "--out",
                             out,
                             "-c",
                             std::to_string(c.connections),
                             "-t",
                             std::to_string(c.threads),
                             "-d",
                             ms(c.duration),
                             "--warmup",
                             ms(c.warmup),
                             "--timeout",
                             ms(c.timeout),
                             "--open-timeout",
                             ms(c.open_timeout),
                             "--ramp-timeout",
                             ms(c.ramp_timeout),
                             "--pipeline",
                             std::to_string(c.pipeline)};
  if (c.mode == load::Mode::idle) a.push_back("--idle");
  if (c.mode == load::Mode::rate) a.insert(a.end(), {"-R", fmt::format("{}", c.rate)});
  if (c.connect_rate > 0) a.insert(a.end(), {"--connect-rate", fmt::format("{}", c.connect_rate)});
  if (!c.handler.empty()) a.insert(a.end(), {"--handler", c.handler});
  if (c.echo_size > 0) a.insert(a.end(), {"--size", std::to_string(c.echo_size)});
  for (const auto& h : c.headers) a.insert(a.end(), {"-H", h});
  if (!c.source.empty()) a.insert(a.end(), {"--source", c.source});
  if (c.engine != load::EngineKind::asio)
    a.insert(a.end(), {"--engine", load::engine_name(c.engine)});
  if (c.server) {
    a.insert(a.end(), {"--server-pid", std::to_string(c.server->pid), "--sample-interval",
                       ms(c.server->interval)});
    if (!c.server->stats_file.empty()) a.insert(a.end(), {"--server-stats", c.server->stats_file});
  }
  a.push_back(c.url);
  return a;
}

}  // namespace

void set_load_launch(const LoadLaunch& launch) { g_launch = launch; }
const LoadLaunch& load_launch() { return g_launch; }

int load_ranks_for(int connections) {
  if (g_launch.ranks > 0) return g_launch.ranks;
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  constexpr long kOwnFiles = 256;
  const long nofile = rl.rlim_max == RLIM_INFINITY ? 1L << 20 : static_cast<long>(rl.rlim_max);
  const long per = std::max(1L, nofile - kOwnFiles);
  return static_cast<int>(std::max(1L, (connections + per - 1) / per));
}

std::string loopback_sources_for(int connections, int ranks) {
  const int per_address = load::connections_per_source_address();
  if (!g_launch.hosts.empty() || connections <= per_address) return "";
  const int addresses = std::max((connections + per_address - 1) / per_address, ranks);
  return fmt::format("127.0.0.2-127.0.0.{}", 1 + std::min(addresses, 254));
}

std::string check_load_launch(const LoadLaunch& launch) {
  if (launch.ranks < 0) return "--load-ranks must be at least 0";
  if (launch.ranks == 0 && !launch.hosts.empty())
    return "--load-hosts needs a number of ranks (--load-ranks K > 1), not 0";
  if (launch.ranks == 1) return launch.hosts.empty() ? "" : "--load-hosts needs --load-ranks > 1";
  if (launch.ranks == 0) return "";  // mpirun is asked for by the points that need it (sweep.cpp)
  if (mpirun_path().empty())
    return "--load-ranks needs mpirun (Debian's openmpi-bin; scripts/setup.sh installs it)";
  const auto module = std::filesystem::path(launch.binary).parent_path() / "shootout-mpi.so";
  if (!std::filesystem::exists(module))
    return fmt::format("--load-ranks needs {} (build with libopenmpi-dev, -DSHOOTOUT_MPI=ON)",
                       module.string());
  return "";
}

std::optional<load::LoadResult> run_load_through_mpirun(const load::LoadConfig& lc,
                                                        std::chrono::milliseconds limit,
                                                        int ranks) {
  if (lc.timeline_max > 0)
    throw load::LoadError(
        "the per-request timeline (the stall scenario) needs one load process: "
        "run it without --load-ranks");
  static std::atomic<int> serial{0};
  const int n = ++serial;
  std::error_code ec;
  std::filesystem::create_directories(g_launch.log_dir, ec);
  const std::string out = fmt::format("{}/load-{}.json", g_launch.log_dir, n);
  const std::string log = fmt::format("{}/load-{}.log", g_launch.log_dir, n);
  std::vector<std::string> argv{mpirun_path(),     "-np",       std::to_string(ranks),
                                "--oversubscribe", "--bind-to", "none"};
  // Rank 0 samples the server: it runs here, the others over the listed hosts.
  if (!g_launch.hosts.empty()) argv.insert(argv.end(), {"-H", "localhost," + g_launch.hosts});
  argv.push_back(g_launch.binary);
  for (auto& a : load_args(lc, out)) argv.push_back(a);
  std::vector<std::string> env;
  if (::geteuid() == 0) env = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"};
  Child child(argv, log, g_launch.cpu, env);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::optional<int> status;
  while (!(status = child.poll())) {
    if (std::chrono::steady_clock::now() >= deadline) {
      child.stop(SIGTERM, std::chrono::seconds(10));
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (*status != 0)
    throw load::LoadError(
        fmt::format("mpirun exited with status {}: {}", *status, child.log_tail(600)));
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  try {
    return load::load_result_from_json(nlohmann::json::parse(text.str()));
  } catch (const nlohmann::json::exception& e) {
    throw load::LoadError(fmt::format("cannot read the load's result {}: {}", out, e.what()));
  }
}

}  // namespace shootout::runner
