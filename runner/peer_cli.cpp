// `shootout peer NAME`: starts one of the shootout's peers (nginx, an Apache MPM, node, Go,
// Tokio, EventMachine, redis) by hand, with the configuration the runner would generate for a
// point of N connections, in the foreground. It writes the configuration into a folder, says
// where, and then exec()s the peer: the pid that `shootout peer` printed is the peer's own, so
// `strace -c -f -p PID`, `perf record -p PID` or a `shootout load --server-pid PID` can be
// pointed at it (docs/LAB.md uses it). Ctrl-C or SIGTERM stops it as the runner does.
//
// Main thread only; nothing else runs in this process before the exec.
#include <fmt/core.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "command.hpp"
#include "peers/peers.hpp"
#include "process.hpp"

namespace shootout {

namespace {

struct PeerFlags {
  std::string name;
  std::uint16_t port = 8080;
  int connections = 100;
  int nginx_workers = 1;
  std::string dir;
};

int run_peer(const PeerFlags& f) {
  using namespace runner;
  if (auto why = peer_missing(f.name); !why.empty()) {
    fmt::print(stderr, "shootout peer: {} cannot run here: {}\n", f.name, why);
    return 1;
  }
  std::string dir = f.dir;
  if (dir.empty()) {
    std::string tmpl = fmt::format("/tmp/shootout-peer-{}-XXXXXX", f.name);
    if (!::mkdtemp(tmpl.data())) {
      fmt::print(stderr, "shootout peer: cannot make a folder under /tmp: {}\n",
                 std::strerror(errno));
      return 1;
    }
    dir = tmpl;
    // mkdtemp makes it 0700; Apache's and nginx's workers run as www-data and read the
    // document root in it.
    ::chmod(dir.c_str(), 0755);
  }
  PeerSetup s;
  try {
    s = write_peer_config(f.name, dir, f.port, f.connections, host_limits(), f.nginx_workers);
  } catch (const std::exception& e) {
    fmt::print(stderr, "shootout peer: {}\n", e.what());
    return 1;
  }
  // The limits the runner's children get: the hard open-file limit (a peer sized for
  // thousands of connections needs it; the runtimes raise their own, the others do not).
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  fmt::print("peer {}: pid {}, listening on 127.0.0.1:{} (configuration in {})\n", s.name,
             ::getpid(), s.port, dir);
  for (const auto& n : s.notes) fmt::print("  {}\n", n);
  fmt::print("  runs: {}\n", fmt::join(s.argv, " "));
  std::fflush(stdout);
  std::vector<std::string> env = child_environment(s.env);
  std::vector<char*> argv, envp;
  for (auto& a : s.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  ::execve(argv[0], argv.data(), envp.data());
  fmt::print(stderr, "shootout peer: cannot run {}: {}\n", s.argv[0], std::strerror(errno));
  return 1;
}

}  // namespace

Command add_peer_command(CLI::App& app) {
  auto f = std::make_shared<PeerFlags>();
  auto* sub = app.add_subcommand(
      "peer", "Start one of the shootout's peers by hand, configured as a run would (foreground)");
  sub->add_option("name", f->name, "The peer")
      ->required()
      ->check(CLI::IsMember(runner::peer_names()));
  sub->add_option("--port", f->port, "TCP port on 127.0.0.1")->capture_default_str();
  sub->add_option("--connections", f->connections,
                  "Size its limits (workers, threads, descriptors) for this many connections")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  sub->add_option("--nginx-workers", f->nginx_workers,
                  "nginx worker_processes (0: as many as --connections need within the "
                  "descriptor limit)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  sub->add_option("--dir", f->dir,
                  "Folder for its configuration and logs (default: a new one under /tmp)");
  return {sub, [f] { return run_peer(*f); }};
}

}  // namespace shootout
