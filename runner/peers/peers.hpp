#pragma once
// The real servers measured beside our models: nginx and Apache (prefork, worker, event MPMs),
// Debian's binaries, with configurations the runner generates for each point.
//
// A generated configuration listens on 127.0.0.1:PORT only, turns access logs off, writes its
// error log and pid file into the results folder, runs in the foreground, keeps connections
// alive for the whole run, serves the 13-byte "Hello, World!" at GET /, and raises its limits
// to the point's connection count — capped to what this machine can hold (each cap is stated
// in `notes` and ends up in the report).
//
// Pure functions apart from writing files: any thread.
#include <cstdint>
#include <string>
#include <vector>

namespace shootout::runner {

// What bounds a peer's size on this machine.
struct HostLimits {
  long pid_max = 32768;       // /proc/sys/kernel/pid_max: processes + threads, machine-wide
  long tasks_now = 0;         // tasks running right now
  long mem_available_kb = 0;  // /proc/meminfo MemAvailable
  long nofile = 1024;         // the hard RLIMIT_NOFILE a peer inherits: the most it can
                              // raise its own to without CAP_SYS_RESOURCE (0: no limit)
};
HostLimits host_limits();

struct PeerSetup {
  std::string name;               // "nginx", "apache-prefork", ...
  std::string config_path;        // the generated configuration file
  std::vector<std::string> argv;  // how to start it in the foreground
  std::string error_log, pid_file;
  std::uint16_t port = 0;
  int expected_processes = 1;      // processes once it has spawned its workers
  std::vector<std::string> notes;  // caps applied, in words
};

// "nginx", "apache-prefork", "apache-worker", "apache-event".
const std::vector<std::string>& peer_names();
bool is_peer(const std::string& name);
// /usr/sbin/nginx or /usr/sbin/apache2; empty if it is not installed.
std::string peer_binary(const std::string& name);

// Writes the configuration (and the document root with its index file) into `dir` and says
// how to start it. `nginx_workers` is nginx's worker_processes. Throws std::runtime_error for
// an unknown peer name or an unwritable folder.
PeerSetup write_peer_config(const std::string& name, const std::string& dir, std::uint16_t port,
                            int connections, const HostLimits& limits, int nginx_workers = 1);

// The version line of a peer (`nginx -v`, `apache2 -v`), or "not installed".
std::string peer_version(const std::string& name);

}  // namespace shootout::runner
