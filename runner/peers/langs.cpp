// The servers of other runtimes as peers, each a small program kept in runner/peers/<name>/
// (its header says what model it stands for and how it is started):
//
//   node          node.js `http`, one process: one event loop plus libuv's pool
//   node-cluster  the same under `cluster`, kMultiWorkers workers and the primary
//   go            Go net/http, GOMAXPROCS=1: M:N goroutines on an epoll netpoller
//   go-2          the same, GOMAXPROCS=kMultiWorkers
//   tokio         hyper on Tokio's current-thread runtime: reactor and executor on one thread
//   tokio-mt      the multi-thread runtime, kMultiWorkers work-stealing workers
//   eventmachine  Ruby EventMachine: a C++ reactor under Ruby's interpreter lock
//
// node and eventmachine are scripts run from the source tree by Debian's interpreters; go and
// tokio are built by scripts/build-peers.sh (CMake target `peers`) into peers_dir(), next to a
// `.version` file naming the toolchain they were built with. Nothing is generated but
// start.sh, the exact command (environment included) for running the point's peer by hand.
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "peers_internal.hpp"
#include "process.hpp"

namespace shootout::runner {

namespace {

// Workers of the multi-worker lines (node-cluster, go-2, tokio-mt): the CPUs of this project's
// machine. Fixed, not the CPU count, so the three lines compare at equal parallelism.
constexpr int kMultiWorkers = 2;

constexpr const char* kNode = "/usr/bin/node";
constexpr const char* kRuby = "/usr/bin/ruby";
// Debian's ruby-eventmachine (the library and its compiled reactor).
constexpr const char* kEventMachineLib = "/usr/lib/ruby/vendor_ruby/eventmachine.rb";
constexpr const char* kGo = "/usr/bin/go";
constexpr const char* kCargo = "/usr/bin/cargo";

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }
bool readable(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

std::string family(const std::string& name) {
  if (name == "node" || name == "node-cluster") return "node";
  if (name == "go" || name == "go-2") return "go";
  if (name == "tokio" || name == "tokio-mt") return "tokio";
  if (name == "eventmachine") return "eventmachine";
  return "";
}

std::string node_script() { return peers_source_dir() + "/node/hello.js"; }
std::string ruby_script() { return peers_source_dir() + "/eventmachine/hello.rb"; }
std::string compiled(const std::string& fam) { return peers_dir() + "/" + fam + "-hello"; }

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  q += '\'';
  return q;
}

// A compiled peer that is not there: the build skipped it (toolchain missing then) or never ran.
std::string not_built(const std::string& fam, const std::string& toolchain_bin,
                      const std::string& packages) {
  std::string bin = compiled(fam);
  if (!executable(toolchain_bin))
    return fmt::format(
        "{} was not built: install {} (scripts/setup.sh does), then rebuild "
        "(cmake --build build)",
        bin, packages);
  return fmt::format(
      "{} was not built ({} is installed now): rebuild (cmake --build build; the "
      "`peers` target, on unless -DSHOOTOUT_PEERS=OFF)",
      bin, toolchain_bin);
}

}  // namespace

const std::vector<std::string>& lang_peer_names() {
  static const std::vector<std::string> names = {"node",  "node-cluster", "go",          "go-2",
                                                 "tokio", "tokio-mt",     "eventmachine"};
  return names;
}

bool is_lang_peer(const std::string& name) { return !family(name).empty(); }

std::string lang_peer_binary(const std::string& name) {
  const std::string fam = family(name);
  std::string path;
  if (fam == "node") {
    path = executable(kNode) && readable(node_script()) ? kNode : "";
  } else if (fam == "eventmachine") {
    path = executable(kRuby) && readable(kEventMachineLib) && readable(ruby_script()) ? kRuby : "";
  } else if (!fam.empty()) {
    path = executable(compiled(fam)) ? compiled(fam) : "";
  }
  return path;
}

std::string lang_peer_missing(const std::string& name) {
  const std::string fam = family(name);
  if (fam == "node") {
    if (!executable(kNode))
      return fmt::format("{} is missing: install nodejs (scripts/setup.sh does)", kNode);
    if (!readable(node_script()))
      return fmt::format("{} is missing (the source tree it was built from)", node_script());
  } else if (fam == "eventmachine") {
    if (!executable(kRuby))
      return fmt::format(
          "{} is missing: install ruby and ruby-eventmachine (scripts/setup.sh does)", kRuby);
    if (!readable(kEventMachineLib))
      return fmt::format("{} is missing: install ruby-eventmachine (scripts/setup.sh does)",
                         kEventMachineLib);
    if (!readable(ruby_script()))
      return fmt::format("{} is missing (the source tree it was built from)", ruby_script());
  } else if (fam == "go") {
    if (!executable(compiled(fam))) return not_built(fam, kGo, "golang-go");
  } else if (fam == "tokio") {
    if (!executable(compiled(fam)))
      return not_built(fam, kCargo, "cargo, rustc, librust-hyper-dev and librust-tokio-dev");
  } else {
    return "unknown peer " + name;
  }
  return "";
}

std::string lang_peer_version(const std::string& name) {
  const std::string fam = family(name);
  if (!lang_peer_missing(name).empty()) return "not installed";
  if (fam == "node")
    return "node " + first_line(command_output(std::string(kNode) + " --version 2>&1"));
  if (fam == "eventmachine")
    return first_line(command_output(std::string(kRuby) +
                                     " -reventmachine -e 'print RUBY_DESCRIPTION, \"; "
                                     "eventmachine \", EventMachine::VERSION' 2>&1"));
  // What scripts/build-peers.sh built it with.
  std::ifstream in(compiled(fam) + ".version");
  std::string line;
  std::getline(in, line);
  return line.empty() ? "unknown (no " + compiled(fam) + ".version)" : line;
}

PeerSetup write_lang_config(const std::string& name, const std::string& dir, std::uint16_t port,
                            int connections, const HostLimits& limits) {
  PeerSetup s;
  s.name = name;
  s.port = port;
  s.config_path = dir + "/start.sh";
  const std::string fam = family(name);
  const std::string p = std::to_string(port);
  const bool multi = name == "node-cluster" || name == "go-2" || name == "tokio-mt";
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  const std::string workers_why = cpus == kMultiWorkers
                                      ? std::string("the CPUs of this machine")
                                      : fmt::format("fixed; this machine has {} CPUs", cpus);
  if (multi) s.parallelism = kMultiWorkers;
  if (fam == "node") {
    s.argv = {kNode, node_script(), "--port", p};
    if (multi) {
      s.argv.insert(s.argv.end(), {"--cluster", std::to_string(kMultiWorkers)});
      s.expected_processes = 1 + kMultiWorkers;
      s.notes.push_back(fmt::format(
          "node cluster: {} workers ({}) and the primary, which accepts each connection and "
          "hands it to a worker in turn (round-robin, node's default on Linux)",
          kMultiWorkers, workers_why));
    } else {
      s.notes.push_back("node: one process, its JavaScript on one thread (libuv's loop)");
    }
  } else if (fam == "go") {
    const int procs = multi ? kMultiWorkers : 1;
    s.argv = {compiled(fam), "--port", p};
    s.env = {fmt::format("GOMAXPROCS={}", procs)};
    s.notes.push_back(fmt::format(
        "GOMAXPROCS={} (set by the runner{}): goroutines run Go code on {} thread{} at a time",
        procs, multi ? fmt::format("; {}", workers_why) : "", procs, procs == 1 ? "" : "s"));
  } else if (fam == "tokio") {
    s.argv = {compiled(fam), "--port", p, "--runtime", multi ? "multi-thread" : "current-thread"};
    if (multi) {
      s.argv.insert(s.argv.end(), {"--workers", std::to_string(kMultiWorkers)});
      s.notes.push_back(fmt::format("Tokio multi-thread runtime, {} workers ({}), work-stealing",
                                    kMultiWorkers, workers_why));
    } else {
      s.notes.push_back("Tokio current-thread runtime: one thread is reactor and executor");
    }
  } else if (fam == "eventmachine") {
    s.argv = {kRuby, ruby_script(), "--port", p};
    s.notes.push_back(
        "EventMachine: its C++ reactor (epoll) calls into Ruby under the global VM lock");
  } else {
    throw std::runtime_error("unknown peer '" + name + "'");
  }
  // Each program raises its own soft descriptor limit to the hard one (node's runtime does it
  // at start-up); the hard limit is what it can reach.
  s.notes.push_back(limits.nofile > 0
                        ? fmt::format("RLIMIT_NOFILE: raises its soft limit to the hard one, {}{}",
                                      limits.nofile,
                                      fam == "node" ? " (node does at start-up)" : "")
                        : std::string("RLIMIT_NOFILE: no hard limit"));
  if (limits.nofile > 0 && limits.nofile < connections + 64L)
    s.notes.push_back(
        fmt::format("{} connections against a descriptor limit of {} here: the rest are refused",
                    connections, limits.nofile));

  std::vector<std::string> words = {"exec"};
  if (!s.env.empty()) words.emplace_back("env");
  for (const auto& e : s.env) words.push_back(shell_quote(e));
  for (const auto& a : s.argv) words.push_back(shell_quote(a));
  write_file(s.config_path, fmt::format("#!/bin/sh\n# Generated by `shootout run` for {} "
                                        "connections: how peer {} was started.\n{}\n",
                                        connections, name, fmt::join(words, " ")));
  ::chmod(s.config_path.c_str(), 0755);
  return s;
}

}  // namespace shootout::runner
