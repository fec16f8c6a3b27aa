// `shootout load`: the command line over run_load(). Flags follow wrk's where wrk has them.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "command.hpp"
#include "group.hpp"
#include "load.hpp"
#include "plugin_flags.hpp"
#include "probe.hpp"

namespace shootout {

namespace {

// A CLI11 check for "5s", "250ms", ...: a bad value is a usage error (exit 2).
CLI::Validator duration_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          load::parse_duration(text);
          return {};
        } catch (const load::LoadError& e) {
          return e.what();
        }
      },
      "DURATION", "duration");
}

struct LoadFlags {
  load::LoadConfig config;
  std::string duration = "10s", warmup = "0s", timeout = "2s", open_timeout = "60s",
              ramp_timeout = "0s", interval = "1s";
  std::string engine = "asio";
  bool idle = false, json = false, json_raw = false, mpi = false;
  std::string out_file;
  int server_pid = 0;
  std::string server_stats;
};

// Under mpirun (Open MPI's OMPI_COMM_WORLD_SIZE > 1, or --mpi): the MPI group from
// build/shootout-mpi.so; otherwise one process, exactly as without MPI.
std::unique_ptr<load::LoadGroup> open_group(bool forced) {
  const load::MpiLaunch launch = load::mpi_launch_from_env();
  if (launch.size > 1 || (forced && launch.size >= 1)) return load::open_mpi_group();
  if (forced)
    throw load::LoadError(
        "--mpi: not started by mpirun (no OMPI_COMM_WORLD_SIZE): run it as mpirun -np K "
        "shootout load ...");
  return std::make_unique<load::SingleProcessGroup>();
}

int run(const LoadFlags& f) {
  load::LoadConfig c = f.config;
  // Like `serve --model uring`: an engine this process cannot run is a usage of the wrong tool
  // here, exit 2 with the reason, before anything is set up.
  if (f.engine == "uring")
    if (const std::string& why = load::uring_engine_unavailable(); !why.empty()) {
      std::fprintf(stderr, "shootout load: --engine uring cannot run here: %s\n", why.c_str());
      return 2;
    }
  // Under mpirun, errors name their rank; rank 0 alone prints the result.
  const load::MpiLaunch launch = load::mpi_launch_from_env();
  const bool several = launch.size > 1 || (f.mpi && launch.size >= 1);
  const std::string who =
      several ? fmt::format("shootout load: rank {}", launch.rank) : "shootout load";
  std::unique_ptr<load::LoadGroup> group;
  try {
    c.duration = load::parse_duration(f.duration);
    c.warmup = load::parse_duration(f.warmup);
    c.timeout = load::parse_duration(f.timeout);
    c.open_timeout = load::parse_duration(f.open_timeout);
    c.ramp_timeout = load::parse_duration(f.ramp_timeout);
    c.engine = load::parse_engine(f.engine);
    if (f.idle && c.rate > 0) throw load::LoadError("--idle and -R/--rate cannot be combined");
    c.mode = f.idle ? load::Mode::idle : c.rate > 0 ? load::Mode::rate : load::Mode::closed;
    if (f.server_pid > 0) {
      c.server =
          load::SamplerConfig{f.server_pid, f.server_stats, load::parse_duration(f.interval)};
      // The server's own sockets are those on the port it is loaded on.
      c.server->port = load::parse_target(c.url).port;
    }
    group = open_group(f.mpi);
    if (const std::string warn = load::source_port_warning(c); !warn.empty() && group->rank() == 0)
      std::fprintf(stderr, "shootout load: warning: %s\n", warn.c_str());
    const load::LoadResult r = load::run_load(c, *group);
    if (group->rank() == 0) {
      const std::string out =
          f.json || f.json_raw ? r.to_json(f.json_raw).dump(2) + "\n" : r.summary();
      if (!f.out_file.empty()) {
        std::FILE* file = std::fopen(f.out_file.c_str(), "w");
        if (!file || std::fwrite(out.data(), 1, out.size(), file) != out.size() ||
            std::fclose(file) != 0)
          throw load::LoadError(fmt::format("cannot write {}", f.out_file));
      } else {
        std::fwrite(out.data(), 1, out.size(), stdout);
        std::fflush(stdout);
      }
    }
    return 0;
  } catch (const load::OtherRankFailed& e) {
    // Each rank tells its own failure; another rank's is told once, by rank 0.
    if (launch.rank == 0) std::fprintf(stderr, "%s: error: %s\n", who.c_str(), e.what());
    return 1;
  } catch (const load::LoadError& e) {
    std::fprintf(stderr, "%s: error: %s\n", who.c_str(), e.what());
    return 1;
  }
}

}  // namespace

Command add_load_command(CLI::App& app) {
  auto flags = std::make_shared<LoadFlags>();
  LoadFlags& f = *flags;
  load::LoadConfig& c = f.config;
  CLI::App* sub = app.add_subcommand(
      "load", "Load generator (closed loop like wrk, constant rate like wrk2, or idle hold)");
  sub->add_option("url", c.url,
                  "http://HOST:PORT/PATH, or tcp://HOST:PORT[/PATH] for echo and other probes")
      ->required();
  // Before --handler, whose check asks the registry once the plug-in has registered.
  add_handler_lib_option(*sub);
  sub->add_option("--handler", c.handler,
                  "The protocol to speak: a handler's probe (http for http://, echo for tcp://)")
      ->check(registered_check("probe", [] { return probe_names(); }));
  sub->add_option("-c,--connections", c.connections, "Connections to keep open")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  sub->add_option("-t,--threads", c.threads, "Threads, each with its own event loop")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  sub->add_option("--engine", f.engine,
                  "How the threads do I/O: asio (readiness, epoll) or uring (completion, io_uring)")
      ->check(CLI::IsMember({"asio", "uring"}))
      ->capture_default_str();
  sub->add_option("-d,--duration", f.duration, "Measurement window (idle: how long to hold)")
      ->check(duration_check())
      ->capture_default_str();
  sub->add_option("--warmup", f.warmup, "Load before the window, not counted")
      ->check(duration_check())
      ->capture_default_str();
  sub->add_option("-R,--rate", c.rate, "Constant rate: requests/s in total (wrk2); 0 = closed loop")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--timeout", f.timeout, "A response later than this is an error")
      ->check(duration_check())
      ->capture_default_str();
  sub->add_option("--pipeline", c.pipeline, "Closed loop: requests sent per batch")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  sub->add_option("--echo", c.echo_size, "Echo protocol: bytes per request, every byte verified")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64} << 20));
  sub->add_option("--size", c.echo_size,
                  "Payload bytes a request, for probes that have one (echo: as --echo; resp: the "
                  "SET value; 0: the probe's default)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{64} << 20));
  sub->add_flag("--idle", f.idle, "Idle hold: open, one request each, hold -d, one more each");
  sub->add_option("--ramp-timeout", f.ramp_timeout,
                  "Closed loop: open the window at most this long after the start even if not "
                  "every connection has been answered (0s: 5 s + 10 ms per connection)")
      ->check(duration_check())
      ->capture_default_str();
  sub->add_option("--open-timeout", f.open_timeout,
                  "Idle: time after the ramp for every connection's first response")
      ->check(duration_check())
      ->capture_default_str();
  sub->add_option("--connect-rate", c.connect_rate, "New connections/s in total (0 = all at once)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option(
         "--source", c.source,
         "Bind each connection to a source address of ADDR[-ADDR] (IPv4, round-robin; "
         "e.g. 127.0.0.2-127.0.0.5: ~28,000 ports each towards one server port; give each at "
         "most half)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            try {
              load::parse_source_range(text);
              return {};
            } catch (const load::LoadError& e) {
              return e.what();
            }
          },
          "ADDR[-ADDR]", "source range"));
  sub->add_option("--netns", c.netns,
                  "Open the connections inside this network namespace (ip netns NAME, or a path); "
                  "with several, rank r takes the r-th (mod their number). Needs CAP_SYS_ADMIN")
      ->delimiter(',');
  sub->add_flag("--mpi", f.mpi,
                "Use MPI even with one rank (mpirun -np 1); under mpirun with more ranks it is "
                "on anyway");
  sub->add_option("-H,--header", c.headers, "Extra request header \"Name: value\" (repeatable)");
  sub->add_flag("--json", f.json, "Print the result as JSON (schema: docs/LOADGEN.md)");
  sub->add_flag("--json-raw", f.json_raw,
                "JSON with the histograms' raw bins under \"raw\" (what shootout run reads back)");
  sub->add_option("--out", f.out_file, "Write the result to this file instead of stdout");
  auto* pid = sub->add_option("--server-pid", f.server_pid,
                              "Sample this server's process tree over the window")
                  ->check(CLI::Range(1, 1 << 22));
  sub->add_option("--server-stats", f.server_stats,
                  "The server's --stats-file: CPU and switches of exited threads/reaped children")
      ->needs(pid);
  sub->add_option("--sample-interval", f.interval, "Memory snapshots of the server this often")
      ->check(duration_check())
      ->capture_default_str();
  return {sub, [flags] { return run(*flags); }};
}

}  // namespace shootout
