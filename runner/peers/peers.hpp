#pragma once
// The real servers measured beside our models: nginx and Apache (prefork, worker, event MPMs),
// Debian's binaries, with configurations the runner generates for each point; and the small
// servers of other runtimes kept in runner/peers/<name>/ (langs.cpp): node.js (`node`,
// `node-cluster`), Go's net/http (`go`, `go-2`), hyper on Tokio (`tokio`, `tokio-mt`) and a
// Ruby EventMachine responder (`eventmachine`). The compiled ones (go, tokio) are built by the
// CMake target `peers` into build/peers/, next to build/shootout (see peers_dir()).
//
// A generated configuration listens on 127.0.0.1:PORT only, turns access logs off, writes its
// error log and pid file into the results folder, runs in the foreground, keeps connections
// alive for the whole run, serves the 13-byte "Hello, World!" at GET /, and raises its limits
// to the point's connection count — capped to what this machine can hold (each cap is stated
// in `notes` and ends up in the report). The runtimes' servers do the same by their command
// line and environment; each raises its own soft RLIMIT_NOFILE to the hard limit.
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
  // Tasks kept free for the load generator (its processes under mpirun, their threads) and the
  // rest of the machine: a server that used up pid_max would make them fail in ways that have
  // nothing to do with the server (a load process that cannot start a thread, mpirun that
  // cannot fork its ranks).
  static constexpr long kTaskMargin = 2000;
  // Tasks (processes + threads) a server may create on this machine: pid_max less what runs
  // now and the margin (at least 16).
  long task_budget() const;
};
HostLimits host_limits();

// Apache prefork's ceiling on this machine: the processes it may spawn (one per connection),
// the smaller of the task budget and half the available memory at an estimated
// kPreforkChildKb each (apache.cpp), and whether memory is the one that binds.
struct PreforkCap {
  long processes = 1;
  bool by_memory = false;
  long child_kb = 0;  // the estimate per child it was computed with
};
PreforkCap apache_prefork_cap(const HostLimits& h);

struct PeerSetup {
  std::string name;                 // "nginx", "apache-prefork", ...
  std::string config_path;          // the generated configuration file (runtimes: start.sh)
  std::vector<std::string> argv;    // how to start it in the foreground
  std::vector<std::string> env;     // "NAME=value" set for it (GOMAXPROCS), over the runner's
  std::string error_log, pid_file;  // empty where the peer has none (its output is its log)
  std::uint16_t port = 0;
  int expected_processes = 1;      // processes once it has spawned its workers
  int parallelism = 1;             // threads or processes that can run requests at once
  std::vector<std::string> notes;  // caps applied, runtime settings, in words
};

// "nginx", "apache-prefork", "apache-worker", "apache-event", "node", "node-cluster", "go",
// "go-2", "tokio", "tokio-mt", "eventmachine", and "redis" (redis-server, the peer of
// --handler resp: redis.cpp).
const std::vector<std::string>& peer_names();
bool is_peer(const std::string& name);
// The handler a peer's protocol is: "resp" for redis, "http" for every other.
std::string peer_protocol(const std::string& name);
// What runs: /usr/sbin/nginx, /usr/sbin/apache2, /usr/bin/node, /usr/bin/ruby (with Debian's
// EventMachine), peers_dir()/go-hello, peers_dir()/tokio-hello; empty if it is not there.
std::string peer_binary(const std::string& name);
// Why `name` cannot run here, naming the Debian package to install (and, for a compiled peer,
// that the build must run again after it); "" if it can.
std::string peer_missing(const std::string& name);
// Where the compiled peers are: $SHOOTOUT_PEERS_DIR if set (the tests set it: their binaries
// are not next to build/shootout), else the folder of this executable + "/peers".
std::string peers_dir();
// Where the script peers are (node's hello.js, EventMachine's hello.rb): the source tree's
// runner/peers.
std::string peers_source_dir();

// How many processes, each allowed `nofile` descriptors, hold `connections` connections that
// SO_REUSEPORT's hash spreads over them: 2N + 64 descriptors (the load generator's phases overlap
// at the server: nginx.cpp), a quarter more for the hash's unevenness, 256 of each process's
// descriptors left for its own files. 1 if one process is enough or `nofile` is 0 (no limit).
int processes_for(int connections, long nofile);

// Writes the configuration (and the document root with its index file) into `dir` and says
// how to start it. `nginx_workers` is nginx's worker_processes; 0: processes_for(connections,
// the hard descriptor limit), with `listen ... reuseport` when that is more than one. Throws
// std::runtime_error for an unknown peer name or an unwritable folder.
PeerSetup write_peer_config(const std::string& name, const std::string& dir, std::uint16_t port,
                            int connections, const HostLimits& limits, int nginx_workers = 1);

// The version line of a peer (`nginx -v`, `apache2 -v`, `node --version`; for a compiled
// peer, the toolchain and crates it was built with), or "not installed".
std::string peer_version(const std::string& name);

}  // namespace shootout::runner
