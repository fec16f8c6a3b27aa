// apache2.conf for one point and one MPM. Apache is started as root in the foreground and
// drops to www-data for its children. Its workers are spawned up front (StartServers = the
// limit): Apache adds at most 32 processes a second on its own, far too slow for a sweep.
//
// Sizing for N connections:
//   prefork  one process per connection: ServerLimit = MaxRequestWorkers = N processes
//   worker   ThreadsPerChild threads per process (64, or N if smaller), ceil(N / 64) processes
//   event    as worker, for 2N workers, and MinSpareThreads 1. Its idle keep-alive
//            connections hold no thread, but when every worker of a process is busy its
//            listener closes that process's keep-alive connections (mod_mpm_event: "If all
//            workers are busy, then the event MPM will close connections in keep-alive state
//            even if the keep-alive timeout has not expired"). With N workers, measured here,
//            that closed 47-108 connections per 3 s run at 1 and 10 connections and 146 of
//            1,000 idle ones; MinSpareThreads = ThreadsPerChild made the idle losses worse.
// capped to what the machine holds: processes + threads under pid_max (less what runs now
// and a margin for the load generator), and prefork's processes under half of the available
// memory at an estimated 512 KiB each (kPreforkChildKb).
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "peers_internal.hpp"

namespace shootout::runner {

namespace {

constexpr int kThreadsPerChild = 64;
// What one idle prefork child costs, with room to spare: measured 233 KB of PSS each (5,917
// children held 1,377 MB, 2026-12-03) plus the kernel's share of a process (page tables, its
// stack). It was 2 MiB, which capped prefork at 5,917 processes for 10,000 connections where
// pid_max and memory allowed all of them.
constexpr long kPreforkChildKb = 512;

struct MpmSize {
  int servers = 1, threads_per_child = 1;
  int min_spare_threads = 1;  // worker and event only
  int workers() const { return servers * threads_per_child; }
};

MpmSize size_prefork(int connections, const HostLimits& h, std::vector<std::string>& notes) {
  const PreforkCap cap = apache_prefork_cap(h);
  MpmSize s;
  s.servers = static_cast<int>(std::min<long>(connections, cap.processes));
  if (s.servers < connections)
    notes.push_back(fmt::format(
        "apache-prefork capped at {} processes for {} connections by {} (pid_max {}, {} tasks "
        "running, {} MiB available, {} KiB estimated a child): the other connections wait in "
        "the listen queue",
        s.servers, connections, cap.by_memory ? "memory" : "pid_max", h.pid_max, h.tasks_now,
        h.mem_available_kb / 1024, cap.child_kb));
  return s;
}

MpmSize size_threaded(const std::string& mpm, int connections, const HostLimits& h,
                      std::vector<std::string>& notes) {
  MpmSize s;
  const long threads = mpm == "event" ? 2L * connections : connections;
  s.threads_per_child = static_cast<int>(std::min<long>(threads, kThreadsPerChild));
  s.min_spare_threads = mpm == "event" ? 1 : s.threads_per_child;
  long wanted = (threads + s.threads_per_child - 1) / s.threads_per_child;
  // Each process costs its threads, a listener thread and itself.
  long cap = h.task_budget() / (s.threads_per_child + 2);
  s.servers = static_cast<int>(std::max(1L, std::min(wanted, cap)));
  if (s.servers < wanted)
    notes.push_back(fmt::format(
        "apache-{} capped at {} processes x {} threads for {} connections (pid_max {}, {} tasks "
        "running)",
        mpm, s.servers, s.threads_per_child, connections, h.pid_max, h.tasks_now));
  return s;
}

std::string mpm_block(const std::string& mpm, const MpmSize& s) {
  if (mpm == "prefork")
    return fmt::format(
        "StartServers {0}\nMinSpareServers {0}\nMaxSpareServers {0}\nServerLimit {0}\n"
        "MaxRequestWorkers {0}\nMaxConnectionsPerChild 0\n",
        s.servers);
  return fmt::format(
      "StartServers {0}\nServerLimit {0}\nThreadLimit {1}\nThreadsPerChild {1}\n"
      "MaxRequestWorkers {2}\nMinSpareThreads {3}\nMaxSpareThreads {2}\n"
      "MaxConnectionsPerChild 0\n",
      s.servers, s.threads_per_child, s.workers(), s.min_spare_threads);
}

}  // namespace

PreforkCap apache_prefork_cap(const HostLimits& h) {
  PreforkCap c;
  c.child_kb = kPreforkChildKb;
  c.processes = std::max(1L, h.task_budget());
  if (h.mem_available_kb > 0) {
    const long by_memory = std::max(1L, h.mem_available_kb / 2 / kPreforkChildKb);
    if (by_memory < c.processes) {
      c.processes = by_memory;
      c.by_memory = true;
    }
  }
  return c;
}

PeerSetup write_apache_config(const std::string& mpm, const std::string& dir, std::uint16_t port,
                              int connections, const HostLimits& limits) {
  PeerSetup s;
  s.name = "apache-" + mpm;
  s.port = port;
  s.config_path = dir + "/apache2.conf";
  s.error_log = dir + "/apache.error.log";
  s.pid_file = dir + "/apache.pid";
  std::string root = write_docroot(dir);
  std::string run_dir = dir + "/apache-run";
  std::filesystem::create_directories(run_dir);
  MpmSize size = mpm == "prefork" ? size_prefork(connections, limits, s.notes)
                                  : size_threaded(mpm, connections, limits, s.notes);
  s.expected_processes = 1 + size.servers;
  const std::string mods = "/usr/lib/apache2/modules";
  std::string conf = fmt::format(
      R"(# Generated by `shootout run` for {connections} connections. Started with
#   apache2 -f {conf} -DFOREGROUND
ServerRoot "{dir}"
ServerName 127.0.0.1
DefaultRuntimeDir "{run}"
PidFile "{pid}"
ErrorLog "{err}"
LogLevel warn
Listen 127.0.0.1:{port}
ListenBacklog 4096
User www-data
Group www-data

LoadModule mpm_{mpm}_module {mods}/mod_mpm_{mpm}.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule dir_module {mods}/mod_dir.so
LoadModule mime_module {mods}/mod_mime.so

# Access logging is off: this file declares no request log at all.
Timeout 60
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 120

{mpm_block}
DocumentRoot "{root}"
DirectoryIndex index.txt
TypesConfig /dev/null
AddType text/plain .txt
# As in Debian's own apache2.conf: no .htaccess anywhere, nothing outside the document root,
# symbolic links followed. Without the first block Apache looked for a .htaccess in every
# folder above the document root on every request, and without FollowSymLinks it lstat()s the
# file's path: 3 failed openat() and one newfstatat() more per request than a stock Debian
# Apache makes (strace -f, 2026-12-02; docs/RUNNER.md).
<Directory />
    Options FollowSymLinks
    AllowOverride None
    Require all denied
</Directory>
<Directory "{root}">
    Options FollowSymLinks
    AllowOverride None
    Require all granted
</Directory>
)",
      fmt::arg("connections", connections), fmt::arg("conf", s.config_path), fmt::arg("dir", dir),
      fmt::arg("run", run_dir), fmt::arg("pid", s.pid_file), fmt::arg("err", s.error_log),
      fmt::arg("port", port), fmt::arg("mpm", mpm), fmt::arg("mods", mods),
      fmt::arg("mpm_block", mpm_block(mpm, size)), fmt::arg("root", root));
  write_file(s.config_path, conf);
  s.argv = {"/usr/sbin/apache2", "-f", s.config_path, "-DFOREGROUND"};
  return s;
}

}  // namespace shootout::runner
