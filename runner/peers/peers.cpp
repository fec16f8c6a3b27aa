// What the peers share: names, binaries, versions, the machine's limits, the document root.
#include "peers.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "peers_internal.hpp"
#include "process.hpp"

namespace shootout::runner {

namespace {
long read_long(const char* path, long fallback) {
  std::ifstream in(path);
  long v = fallback;
  in >> v;
  return in ? v : fallback;
}

long meminfo_kb(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string k;
  long v = 0;
  std::string unit;
  while (in >> k >> v) {
    std::getline(in, unit);
    if (k == key + ":") return v;
  }
  return 0;
}

// Tasks (processes and threads) alive now: the sum of every process's thread count is what
// pid_max bounds; /proc/loadavg's 4th field "running/total" carries it.
long tasks_now() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c, rt;
  in >> a >> b >> c >> rt;
  auto slash = rt.find('/');
  return slash == std::string::npos ? 0 : std::stol(rt.substr(slash + 1));
}
}  // namespace

HostLimits host_limits() {
  HostLimits h;
  h.pid_max = read_long("/proc/sys/kernel/pid_max", 32768);
  h.tasks_now = tasks_now();
  h.mem_available_kb = meminfo_kb("MemAvailable");
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0)
    h.nofile = rl.rlim_max == RLIM_INFINITY ? 0 : static_cast<long>(rl.rlim_max);
  return h;
}

long HostLimits::task_budget() const { return std::max(16L, pid_max - tasks_now - kTaskMargin); }

std::string peer_protocol(const std::string& name) { return is_redis_peer(name) ? "resp" : "http"; }

const std::vector<std::string>& peer_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = {"nginx", "apache-prefork", "apache-worker", "apache-event"};
    for (const auto& l : lang_peer_names()) n.push_back(l);
    n.push_back("redis");
    return n;
  }();
  return names;
}

bool is_peer(const std::string& name) {
  for (const auto& n : peer_names())
    if (n == name) return true;
  return false;
}

std::string peer_binary(const std::string& name) {
  if (is_lang_peer(name)) return lang_peer_binary(name);
  if (is_redis_peer(name)) return redis_binary();
  std::string path = name == "nginx" ? "/usr/sbin/nginx" : "/usr/sbin/apache2";
  return ::access(path.c_str(), X_OK) == 0 ? path : std::string{};
}

std::string peer_missing(const std::string& name) {
  if (is_lang_peer(name)) return lang_peer_missing(name);
  if (is_redis_peer(name)) return redis_missing();
  if (!peer_binary(name).empty()) return "";
  return name == "nginx" ? "/usr/sbin/nginx is missing: install nginx-light (scripts/setup.sh does)"
                         : "/usr/sbin/apache2 is missing: install apache2 (scripts/setup.sh does)";
}

std::string peers_dir() {
  if (const char* d = std::getenv("SHOOTOUT_PEERS_DIR"); d && *d) return d;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("peers") : (exe.parent_path() / "peers").string();
}

std::string peers_source_dir() { return SHOOTOUT_SOURCE_DIR "/runner/peers"; }

std::string peer_version(const std::string& name) {
  if (is_lang_peer(name)) return lang_peer_version(name);
  if (is_redis_peer(name)) return redis_version();
  std::string bin = peer_binary(name);
  if (bin.empty()) return "not installed";
  // nginx prints its version on stderr, apache2 on stdout: take both, first line.
  std::string out = first_line(command_output(bin + " -v 2>&1"));
  return out.empty() ? "unknown" : out;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string write_docroot(const std::string& dir) {
  std::string root = dir + "/htdocs";
  std::filesystem::create_directories(root);
  write_file(root + "/index.txt", "Hello, World!");
  // The workers of nginx (nobody) and Apache (www-data) must be able to read it.
  std::filesystem::permissions(
      root, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                std::filesystem::perms::others_exec);
  return root;
}

int processes_for(int connections, long nofile) {
  constexpr long kOwnFiles = 256;
  const long need = 2L * connections + 64;
  if (nofile <= kOwnFiles || need + kOwnFiles <= nofile) return 1;
  const long per = nofile - kOwnFiles;
  return static_cast<int>((need + need / 4 + per - 1) / per);
}

PeerSetup write_peer_config(const std::string& name, const std::string& dir, std::uint16_t port,
                            int connections, const HostLimits& limits, int nginx_workers) {
  std::filesystem::create_directories(dir);
  if (name == "nginx") return write_nginx_config(dir, port, connections, limits, nginx_workers);
  if (name.rfind("apache-", 0) == 0 && is_peer(name))
    return write_apache_config(name.substr(7), dir, port, connections, limits);
  if (is_lang_peer(name)) return write_lang_config(name, dir, port, connections, limits);
  if (is_redis_peer(name)) return write_redis_config(dir, port, connections, limits);
  throw std::runtime_error(
      fmt::format("unknown peer '{}' (known: {})", name, fmt::join(peer_names(), ", ")));
}

}  // namespace shootout::runner
