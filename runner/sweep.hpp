#pragma once
// The sweep: every server (our models, then the peers) at every connection count, each point
// on a fresh server process, each point measured `repeat` times.
//
// The repeats are interleaved: pass 1 runs every point once, then pass 2 runs every point
// again, and so on. A slow spell of the host (this VM's vCPUs are starved now and then) then
// spoils one run of several points, which their medians vote out, instead of every run of one
// point. After each run its point is summarized again from the runs it has so far, so the
// results are whole (with fewer repeats) from the end of pass 1.
//
// One point, one run:
//   1. start the server (ours: `shootout serve --model M --port 0 --stats-file F`, waiting for
//      its `listening on` line; a peer: its generated configuration, waiting for its port and
//      for its workers to be spawned), pinned to CPU 0 with --pin
//   2. baseline: PSS of the server's process tree before any connection
//   3. closed loop: ramp the N connections, warm up, measure the window with the server sampled
//   4. idle hold: N fresh connections, one request each, held idle; PSS at the end
//   5. SIGTERM and wait for a clean exit (a server that does not exit is killed, and said so)
// A server that dies or answers nothing makes the point failed, with the reason; the sweep
// goes on. A point that needs more descriptors than RLIMIT_NOFILE allows is skipped.
//
// Threads: run_sweep runs on the calling thread (the load generator starts its own threads).
// `stop` may be set from any thread (the Ctrl-C handler): the sweep stops between phases and
// returns the points finished so far.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "load.hpp"
#include "results.hpp"

namespace shootout::runner {

class Child;
class Progress;
struct PeerSetup;

struct SweepConfig {
  std::string binary;               // build/shootout
  std::vector<std::string> models;  // our models, in order
  // Models this machine cannot run (io_uring disabled, ...): "name: why", said in the report.
  std::vector<std::string> left_out;
  std::vector<std::string> peers;  // nginx, apache-prefork, ...
  std::vector<int> connections{1, 10, 100, 1000, 10000};
  std::chrono::milliseconds duration{3000}, warmup{1000}, idle_hold{2000};
  std::string handler = "http";
  std::string path = "/";
  int repeat = 1;
  bool pin = false;  // server on CPU 0, this process (load) on CPU 1
  int threads = 1;   // load generator threads
  load::EngineKind load_engine = load::EngineKind::asio;  // --load-engine (docs/LOADGEN.md)
  int nginx_workers = 1;
  // New connections/s when ramping (N > 100); 0 opens them all at once. 0 by default: the
  // load generator's ramp currently fails the connections it has not opened yet (see
  // docs/RUNNER.md), and all at once works up to 10,000 with the 4096 backlog + syncookies.
  double connect_rate = 0;
  // A response (or connect) slower than this is a load error. In a closed loop at N
  // connections the mean latency is N / throughput, seconds at 10,000: keep it generous.
  std::chrono::milliseconds timeout{10'000};
  std::string out_dir;
  // Extra arguments for every model's `shootout serve` (e.g. --max-procs 50); peers ignore them.
  std::vector<std::string> server_args;
  // `serve --workers` for evented, coroutine and uring (a master and N worker processes); 0: as
  // many as each point's connections need within the descriptor limit (processes_for); 1: none.
  int workers = 1;
};

// A server started for a scenario (runner/scenario.hpp), the way the sweep starts one.
struct StartedServer {
  std::unique_ptr<Child> child;  // null if it could not be started at all
  std::uint16_t port = 0;
  std::string stats_file;  // ours only
  std::vector<std::string> notes;
  std::string error;  // not empty: it did not start (the child, if any, is still to be stopped)
  bool peer = false;
};

// Starts `server` as a sweep's run does (a model: `shootout serve --model M ...` with the
// config's server_args, its --workers and then `extra_args`, e.g. --offload-cpu; a peer: its
// generated configuration for n connections), its log under out_dir/servers/<tag>.log (peers:
// out_dir/peers/<tag>/). Calling thread only.
StartedServer start_server(const SweepConfig& c, const std::string& server, bool peer, int n,
                           const std::string& tag, const std::vector<std::string>& extra_args = {});
// SIGTERM and wait; returns "" after a clean exit, else a note (killed, exit status).
std::string stop_server(StartedServer& s);

// run_load on a thread of its own, given its planned time plus a generous margin (a wedged
// load run is abandoned, as in the sweep): nullopt when it did not come back; rethrows what
// run_load threw (load::LoadError).
std::optional<load::LoadResult> run_load_with_limit(const load::LoadConfig& lc);

// The planned wall time of one run of one point (for the ETA), in seconds.
double planned_seconds(const SweepConfig& c, int connections);

// Starts a peer as the sweep does for each of its runs: from its setup (peers/peers.hpp:
// argv, environment), its output appended to `log_path`, pinned to `cpu` (-1: every CPU), in
// its own process group; then waits, up to `timeout`, until its port takes connections and its
// tree has spawned `expected_processes` (or stopped growing). On failure `error` says why (its
// exit status and the tail of its logs) and the child, possibly still running, is returned for
// the caller to stop. Tests use it to start peers the way the sweep does. Calling thread only.
std::unique_ptr<Child> start_peer(const PeerSetup& setup, const std::string& log_path, int cpu,
                                  std::chrono::milliseconds timeout, std::string& error);

// Runs the sweep. A point enters `results.points` after its first run and is replaced by its
// new summary after each later one; `on_point` is called after every run (the CLI rewrites
// results.json there, so a crash keeps what is done). Progress counts runs.
void run_sweep(const SweepConfig& config, Results& results, const std::atomic<bool>& stop,
               Progress& progress, const std::function<void()>& on_point);

}  // namespace shootout::runner
