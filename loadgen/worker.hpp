#pragma once
// Internal to the load generator: one Worker per load thread, owning its engine (engine.hpp:
// the event loop, Asio or io_uring, and the sockets), its connections (each a Connection,
// connection.hpp, its own state machine) and its statistics. run_load() builds the Plan, the
// Workers, runs each on its thread, and merges their WorkerStats once they have returned.
//
// What the Worker decides is the same for both engines: when connections open (the opener),
// the timeout sweep, the window's end, the hard deadline, and the closed loop's deferred sends.
// Its timers and the main thread's messages reach it through the engine (on_timer, on_wake).
//
// Threads: a Worker is built and its sockets opened on the calling thread *before* its thread
// starts; from then on only its own thread touches it, except start_final_round(),
// end_window_at(), release_ramp(), first_round_done() and answered_once(), which any thread may
// call (the first three store into atomics and wake the engine; the worker's thread acts on
// them in on_wake()).
// Its stats are read after the thread joined. Builds that check threads
// (common/owner_thread.hpp) abort when another thread calls a member that is its own thread's
// only, once run() has started.
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "engine.hpp"
#include "histogram.hpp"
#include "load.hpp"
#include "owner_thread.hpp"
#include "probe.hpp"

namespace shootout::load {

// The measurement window's bounds, in Clock ticks since its epoch. Closed mode opens the window
// only once every connection has been answered once (or a bound has passed), so the main
// thread sets them while the workers run; the workers read them with relaxed loads (a response
// that races the opening is counted on one side or the other, never twice). Until set, both
// are "never": no response is in the window.
struct WindowBounds {
  static constexpr Clock::rep kNever = Clock::duration::max().count();
  std::atomic<Clock::rep> from{kNever}, to{kNever};
  void set(Clock::time_point f, Clock::time_point t) {
    to.store(t.time_since_epoch().count(), std::memory_order_relaxed);
    from.store(f.time_since_epoch().count(), std::memory_order_release);
  }
  Clock::time_point from_time() const {
    return Clock::time_point(Clock::duration(from.load(std::memory_order_acquire)));
  }
  Clock::time_point to_time() const {
    return Clock::time_point(Clock::duration(to.load(std::memory_order_relaxed)));
  }
};

// Everything the workers need, fixed before they start; read-only while they run (but for
// `window`, which the main thread sets once).
struct Plan {
  Mode mode = Mode::closed;
  int pipeline = 1;
  // The protocol's client side (probe.hpp): immutable, shared by every worker; each connection
  // has a session of it.
  std::shared_ptr<const Probe> probe;
  boost::asio::ip::tcp::endpoint endpoint;
  // --source: connection i binds sources[i % size] before connecting (empty: the kernel picks).
  std::vector<boost::asio::ip::address_v4> sources;
  Clock::duration timeout{};
  Clock::duration send_interval{};     // rate: between two sends of one connection
  Clock::duration rate_step{};         // rate: 1/rate, the phase shift between connections
  Clock::duration connect_interval{};  // per worker; zero: open all at once
  Clock::time_point start;
  WindowBounds* window = nullptr;  // owned by run_load(); set once, while the workers run
  // Idle mode: the first round (connect, first response) of every connection is bounded by
  // first_round_by, not by `timeout`; the main thread stops waiting for it then. Closed mode:
  // the ramp's bound, for each connection's first answer.
  Clock::time_point first_round_by;
  // The hard deadline: no worker waits past it (connections still running then are counted as
  // connect errors or timeouts). Closed/rate: the window's end + timeout + 1 s, armed when the
  // window ends (end_window_at). Idle: first_round_by
  // + the hold + timeout + 10 s (room for the sampler), brought forward to "now + timeout + 1 s"
  // when the final round starts.
  Clock::time_point deadline;
  std::size_t seconds = 1;       // length of the per-second series
  std::size_t timeline_max = 0;  // > 0: per-request timestamps (timeline.hpp)
  EngineKind engine = EngineKind::asio;
  UringTuning uring;
};

struct WorkerStats {
  LatencyHistogram latency, uncorrected;
  std::uint64_t requests = 0, bytes_read = 0, responses_total = 0, sent_total = 0;
  std::uint64_t idle_opened = 0, idle_alive = 0;
  std::uint64_t connections_in_window = 0;  // connections with a response inside the window
  ErrorCounts errors;
  std::vector<std::uint64_t> per_second;
  Timeline timeline;
  EngineCounts engine;  // filled in when run() returns
};

class Connection;

class Worker {
 public:
  // Throws LoadError if the plan's engine cannot be set up here.
  Worker(const Plan& plan, int first_index, int count);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Opens the sockets (no connect yet). Returns how many could be opened; on failure `error`
  // holds the reason (EMFILE when out of descriptors).
  int open_sockets(std::error_code& error);
  // The thread body: returns when every connection has finished. From its start the calling
  // thread owns the Worker.
  void run();
  // Idle mode: true once every connection has had its first response (or failed).
  bool first_round_done() const { return first_round_done_.load(std::memory_order_acquire); }
  // Idle mode, any thread: every held connection sends its second request.
  void start_final_round();
  // Closed and rate mode, any thread, once: the window ends at `to` (the worker stops then).
  void end_window_at(Clock::time_point to);
  // Closed mode, any thread, once: the ramp is over. Until then a keep-alive connection that
  // has had its first answer holds its next request, so the answered connections do not keep
  // the server busy while it is still taking on the others (a forked server's acceptor would
  // share its core with every child already serving); from here on each loops.
  void release_ramp();
  // Any thread: connections that have had at least one response so far.
  int answered_once() const { return answered_once_.load(std::memory_order_relaxed); }
  // Any thread, closed mode: connections answered before the ramp's release and again after
  // it (the window opens once the released ones are: load.cpp).
  int settled() const { return settled_.load(std::memory_order_relaxed); }

  WorkerStats stats;

  // ---- called by the engine, on the worker's thread (engine.hpp) ----
  Connection& connection(std::size_t slot) { return *conns_[slot]; }
  void on_timer(WorkerTimer which);
  void on_wake();
  // Closed loop: writes the batches deferred since the last flush (defer_send).
  void flush_sends();
  // False once every connection has finished: the engine's run() may return.
  bool running() const { return running_ > 0; }
  const OwnerThread& owner() const { return owner_; }

 private:
  friend class Connection;
  Engine& engine() { return *engine_; }
  void arm_sweep();
  void sweep();
  void arm_deadline(Clock::time_point at);
  void on_deadline();
  void open_due();
  void on_end();
  void connection_finished();
  void first_round_step();
  // Closed loop: queue connection `c` (at socket generation `gen`) for the next flush.
  void defer_send(Connection& c, std::uint64_t gen);
  // Closed loop: true while the ramp holds answered connections (release_ramp).
  bool ramp_holds() const { return !ramp_released_; }
  // Keep `c`'s next request (at socket generation `gen`) until the ramp is released.
  void hold_for_ramp(Connection& c, std::uint64_t gen);

  const Plan& plan_;
  std::vector<std::unique_ptr<Connection>> conns_;
  // After conns_: destroyed first, so no socket operation outlives a connection's memory.
  std::unique_ptr<Engine> engine_;
  // Connections whose next batch waits for the flush (with the socket generation it was
  // queued for), and the list being flushed; both reserved for every connection.
  std::vector<std::pair<Connection*, std::uint64_t>> send_queue_, sending_;
  // Closed mode's ramp: connections answered once and waiting for release_ramp() (reserved
  // for every connection; one that reconnects during the ramp may be in it twice, the stale
  // entry ignored by its generation).
  std::vector<std::pair<Connection*, std::uint64_t>> ramp_held_;
  bool ramp_released_ = true;  // closed mode: false until release_ramp() is taken
  bool flush_requested_ = false;
  std::size_t next_open_ = 0;
  int running_ = 0;  // connections not finished
  int first_round_pending_ = 0;
  bool stopping_ = false;
  std::atomic<bool> first_round_done_{false};
  std::atomic<int> answered_once_{0};
  std::atomic<int> settled_{0};
  // The main thread's messages (end_window_at, start_final_round, release_ramp), taken by
  // on_wake().
  static constexpr Clock::rep kNoEnd = Clock::duration::max().count();
  std::atomic<Clock::rep> end_at_{kNoEnd};
  std::atomic<bool> final_round_asked_{false}, release_asked_{false};
  bool end_taken_ = false, final_round_taken_ = false;
  [[no_unique_address]] OwnerThread owner_;  // the worker's thread, from run() on
};

}  // namespace shootout::load
