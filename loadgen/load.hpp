#pragma once
// The load generator: run_load() drives one target with `threads` threads and `connections`
// connections and returns what it measured. Used by `shootout load` (loadgen/cli.cpp) and by
// the shootout runner.
//
// Modes (docs/LOADGEN.md has the details and the JSON schema):
//   closed  wrk: each connection sends its next request (or batch of `pipeline` requests) when
//           the previous response has arrived. Latency from the actual send. The window opens
//           after the warm-up and once every connection has been answered (the ramp), or at
//           `ramp_timeout`. During the ramp an answered connection holds its next request;
//           all are released together when it ends (Worker::release_ramp), and the window
//           opens once those released requests have been answered (settle_s), so the burst
//           of N requests sent at once is not in it.
//   rate    wrk2: `rate` requests/s in total, spread evenly over the connections; latency from
//           the *intended* send time (coordinated omission corrected), and also from the actual
//           send (uncorrected).
//   idle    open the connections at `connect_rate`, one request on each (answered within
//           `open_timeout` of the ramp's end, not `timeout`), hold them all idle for
//           `duration`, then one more request on each: idle_opened says how many were
//           answered, idle_alive how many survived. The server sampler's window is the hold.
//
// Protocols: each is a probe (common/probe.hpp), chosen by `handler`: HTTP/1.1 (GET with
// keep-alive; each response parsed with Beast's parser, its status checked), echo (`echo_size`
// bytes out, the same bytes back, every byte compared), resp (handlers/resp_probe.cpp), or any
// registered one, built in or from a plug-in (common/plugin.hpp).
//
// Threads: run_load() may be called from any thread, one call at a time per process (it raises
// RLIMIT_NOFILE). It starts `threads` threads, each with its own event loop (engine.hpp: Asio or
// io_uring) and its own connections; nothing is shared between them while they run; results are
// merged at the end.
//
// Several processes (group.hpp; `mpirun -np K shootout load ...`): run_load(config, group) on
// every rank, with the same config. Rank r drives its share of `connections` (and of `rate` and
// `connect_rate`) with `threads` threads of its own; the ranks start at one common time and
// measure one common window, and every rank returns the exact merge of all ranks' results
// (rank 0 prints it). Only the thread calling run_load() touches the group.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "histogram.hpp"
#include "sampler.hpp"
#include "timeline.hpp"

namespace shootout::load {

enum class Mode { closed, rate, idle };

// How the load threads talk to the kernel (docs/LOADGEN.md, "Two engines"): asio waits for
// readiness (epoll) and then makes the calls; uring queues the operations on an io_uring and is
// handed back completions. The same connection state machine runs on either.
enum class EngineKind { asio, uring };

// The uring engine's receive buffers per load thread (0: the default). Tests make them tiny.
struct UringTuning {
  unsigned buffers = 0;      // provided buffers in the ring (a power of two)
  unsigned buffer_size = 0;  // bytes each
};

// What the uring engine counted, summed over the load threads (zero for asio). Not in the JSON:
// for tests and for looking into a run.
struct EngineCounts {
  std::uint64_t enters = 0;       // io_uring_enter calls that submitted and waited
  std::uint64_t completions = 0;  // completions reaped
  std::uint64_t no_buffers = 0;   // receives ended by -ENOBUFS (the buffer ring ran dry)
  std::uint64_t recv_rearms = 0;  // multishot receives armed again after they ended
  std::uint64_t short_sends = 0;  // sends the socket took only part of (the rest sent again)
  void add(const EngineCounts& o) {
    enters += o.enters;
    completions += o.completions;
    no_buffers += o.no_buffers;
    recv_rearms += o.recv_rearms;
    short_sends += o.short_sends;
  }
};

struct LoadConfig {
  std::string url = "http://127.0.0.1:8080/";  // http://HOST:PORT/PATH (echo: tcp://HOST:PORT)
  Mode mode = Mode::closed;
  int threads = 1;
  int connections = 10;
  std::chrono::milliseconds duration{10'000};  // measurement window (idle: the hold)
  std::chrono::milliseconds warmup{0};         // load before the window, not counted
  std::chrono::milliseconds timeout{2'000};    // a response later than this is a timeout error
  // Idle mode: how long after the ramp the connections may take, all together, to be accepted
  // and get their first response. A server that forks or starts a thread per connection takes
  // on N connections at its own pace (5,000 forks are over 4 s here); `timeout` would close and
  // count as lost a connection the server is still getting to. What is not answered by then is
  // a timeout error, and idle_opened says how many were.
  std::chrono::milliseconds open_timeout{60'000};
  // Closed mode: the window opens after the warm-up *and* once every connection has had a
  // response, so a point is measured at N connections, not at the pace a server takes them on;
  // but no later than this after the start (0: 5 s + 10 ms per connection). ramp_s and
  // ramp_reached say how it went.
  std::chrono::milliseconds ramp_timeout{0};
  double rate = 0;   // rate mode: requests/s in total
  int pipeline = 1;  // closed mode: requests per batch
  // The probe: a handler's name ("": http for http://, echo for tcp:// or echo_size > 0).
  std::string handler;
  std::size_t echo_size = 0;            // echo: bytes a request (> 0 without handler: echo);
                                        // other probes: their payload size (0: their default)
  double connect_rate = 0;              // new connections/s in total (0: all at once)
  std::vector<std::string> headers;     // extra "Name: value" request headers
  std::optional<SamplerConfig> server;  // sample this server over the window
  std::size_t timeline_max = 0;         // > 0: keep per-request timestamps (timeline.hpp)
                                        // (one process only: refused with several ranks)
  // --source ADDR[-ADDR]: IPv4 source addresses, bound (IP_BIND_ADDRESS_NO_PORT) before each
  // connect, round-robin over the connections; "" lets the kernel pick. With several ranks and
  // at least as many addresses as ranks, each rank takes a disjoint part of the range.
  std::string source;
  // --netns NAME[,NAME...]: rank r opens its connections inside network namespace
  // netns[r % size] (netns.hpp; its --source addresses are those of that namespace). Empty: here.
  std::vector<std::string> netns;
  // --engine: readiness (asio, the default) or completion (uring).
  EngineKind engine = EngineKind::asio;
  UringTuning uring;  // the uring engine's buffers (tests)
};

// A range of IPv4 source addresses, host byte order, first <= last.
struct SourceRange {
  std::uint32_t first = 0, last = 0;
  std::uint32_t size() const { return last - first + 1; }
};
// "A" or "A-B" (dotted IPv4, A <= B, at most 65,536 addresses). Throws LoadError.
SourceRange parse_source_range(std::string_view text);
// The part of `range` rank `rank` of `ranks` uses: a disjoint slice when the range has at least
// `ranks` addresses, else the whole range (shared).
SourceRange source_share(const SourceRange& range, int rank, int ranks);

// The local ports one source address connects from (net.ipv4.ip_local_port_range: 28,232 by
// default): at most that many connections from one address to one server port.
int ephemeral_ports();
// The connections one source address is given towards one server port: half its ephemeral
// ports. Past that connect() slows down, since the kernel finds a free port by trying them in
// turn (__inet_hash_connect): with 27,000 of 28,232 in use (4,000 answered, 4,000 in a full
// accept queue, 11,000 in SYN-SENT, the rest in TIME-WAIT) each connect() took 2.1 ms here
// (2026-12-04), and the load thread spent its core on reconnects instead of the 4,000
// connections it was measuring: they were served nothing in the window. Spread over two
// addresses, the same run served all 4,000 at 48,000 requests/s.
int connections_per_source_address();
// For the command line: a warning when `c` puts more connections than that on one source
// address (all of them on one when there is no --source), else "".
std::string source_port_warning(const LoadConfig& c);

// One rank's own figures, listed in the merged result (several ranks only).
struct RankSummary {
  int rank = 0;
  std::string host;
  std::uint64_t connections = 0;  // its share
  std::uint64_t requests = 0;     // in the window
  std::uint64_t responses_total = 0;
  std::uint64_t errors = 0;  // every kind
  std::string cpus;          // the CPUs it may run on (its affinity), as "1" or "0-3,6"
};

// Per-connection failures by kind. Each closes that connection; it is reopened (except in
// idle mode, where a lost connection is exactly what is being measured).
struct ErrorCounts {
  std::uint64_t connect = 0;  // connect() failed or took longer than the timeout
  std::uint64_t read = 0;     // reset, or closed by the server before a whole response
  std::uint64_t write = 0;    // sending the request failed
  std::uint64_t timeout = 0;  // no whole response within the timeout
  std::uint64_t status = 0;   // an error answer: HTTP status not 2xx/3xx, RESP -ERR... (the
                              // response still counts as one)
  std::uint64_t body = 0;     // unparsable response, unsolicited bytes, or echo bytes differ
  std::uint64_t total() const { return connect + read + write + timeout + status + body; }
  void add(const ErrorCounts& o);
};

struct LoadResult {
  LoadConfig config;
  std::string protocol;                   // the probe's name: "http", "echo", "resp", ...
  double elapsed_s = 0;                   // the window actually measured
  std::uint64_t requests = 0;             // responses completed inside the window
  std::uint64_t bytes_read = 0;           // inside the window
  std::uint64_t responses_total = 0;      // including warm-up and the drain after the window
  std::uint64_t sent_total = 0;           // requests written, whole run
  ErrorCounts errors;                     // whole run
  LatencyHistogram latency;               // rate mode: from intended send time; else actual
  LatencyHistogram latency_uncorrected;   // from the actual send time
  std::vector<std::uint64_t> per_second;  // responses completed in each second of the window
  std::uint64_t idle_opened = 0;          // idle: connections that got their first response
  std::uint64_t idle_alive = 0;           // idle: ... and their second one after the hold
  // Concurrency reached. ramp_s: from the start until every connection had had a response (or
  // the ramp's bound, or the window's opening in rate mode); ramp_reached: connections answered
  // by then; connections_in_window: connections with a response inside the window.
  double ramp_s = 0;
  std::uint64_t ramp_reached = 0, connections_in_window = 0;
  // Closed loop: from the ramp's release until the released connections had been answered
  // again (or `timeout` had passed): the herd of N requests sent at once has passed, and the
  // window opens then (not before the warm-up's end). Several ranks: the slowest rank's.
  double settle_s = 0;
  double client_utime_us = 0, client_stime_us = 0;  // getrusage(SELF) over the window
  // Of that, what the server's sampler cost (its snapshots: rank 0 only).
  double client_sampler_cpu_us = 0;
  // When the CPU above was read (opening and closing the window), in seconds from the run's
  // start (common to every rank): it was all spent between them, so CPU / client_cpu_s() can
  // never exceed the cores the load ran on. It can be longer than elapsed_s when a starved
  // main thread wakes late. Several ranks: the earliest opening and the latest closing.
  double client_cpu_from_s = 0, client_cpu_to_s = 0;
  std::optional<ServerSample> server;
  Timeline timeline;  // in-window responses, by completion time (config.timeline_max > 0)
  // Load processes merged into this result (group.hpp); per_rank lists them when ranks > 1.
  // config.connections is then the total, config.threads the threads of each rank.
  int ranks = 1;
  std::vector<RankSummary> per_rank;
  EngineCounts engine_counts;  // this process's threads only; not in the JSON

  // The wall time the client CPU was counted over (elapsed_s for results that lack it).
  double client_cpu_s() const {
    return client_cpu_to_s > client_cpu_from_s ? client_cpu_to_s - client_cpu_from_s : elapsed_s;
  }
  // The load generator's own CPU over the window: the sampler's snapshots left out.
  double load_cpu_us() const {
    return std::max(0.0, client_utime_us + client_stime_us - client_sampler_cpu_us);
  }
  // The load generator's cores over the window: its own CPU over the time it was counted over.
  double client_cores() const {
    const double s = client_cpu_s();
    return s > 0 ? load_cpu_us() / 1e6 / s : 0;
  }
  double requests_per_s() const {
    return elapsed_s > 0 ? static_cast<double>(requests) / elapsed_s : 0;
  }
  // `raw`: also the histograms' raw bins (sparse) and sums under "raw", so that
  // load_result_from_json() rebuilds them exactly (`shootout load --json-raw`, for the runner's
  // load through mpirun).
  nlohmann::json to_json(bool raw = false) const;
  std::string summary() const;  // wrk-like text for people
};

// Set-up failures (bad URL, unresolvable host, out of file descriptors) are thrown as
// LoadError with a message meant for the user. Failures while running are counted, not thrown.
class LoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Several ranks: another rank failed to set up (it tells its own error; rank 0 tells this one).
class OtherRankFailed : public LoadError {
 public:
  using LoadError::LoadError;
};

// The inverse of to_json(true): what `shootout load --json --json-raw` printed, as a result
// (histograms exact, the config's fields that the JSON has, server sample). Throws LoadError
// when the JSON is not one (no "raw").
LoadResult load_result_from_json(const nlohmann::json& j);

class LoadGroup;
LoadResult run_load(const LoadConfig& config);
// One rank of a group of load processes (group.hpp); collective: every rank calls it with the
// same config. A set-up failure of any rank (before the first load thread starts) is thrown on
// every rank: its own message on the rank that failed, "rank R could not set up" elsewhere.
LoadResult run_load(const LoadConfig& config, LoadGroup& group);

// Parsing helpers shared with the CLI. Both throw LoadError with a clear message.
struct Target {
  std::string host;
  std::uint16_t port = 80;
  std::string path = "/";
  bool echo_scheme = false;  // tcp://
};
Target parse_target(std::string_view url);
// "250ms", "5s", "2m", "1h", or a plain number of seconds.
std::chrono::milliseconds parse_duration(std::string_view text);

// How long `connections` connections may take to be taken on by a server (a fork or a thread
// each): 5 s + 10 ms per connection. The default of ramp_timeout (after the warm-up).
inline std::chrono::milliseconds take_on_bound(int connections) {
  return std::chrono::milliseconds(5'000 + 10 * static_cast<long>(connections));
}

// Raises the soft RLIMIT_NOFILE to the hard limit; returns {soft, hard} after.
std::pair<std::uint64_t, std::uint64_t> raise_fd_limit();

const char* mode_name(Mode m);
const char* engine_name(EngineKind e);
// "asio" or "uring"; throws LoadError otherwise.
EngineKind parse_engine(std::string_view name);
// Empty if `--engine uring` can run in this process; else why not, in one line (io_uring
// disabled or forbidden here, an old kernel, or a build without liburing). Any thread; probes
// once.
const std::string& uring_engine_unavailable();

}  // namespace shootout::load
