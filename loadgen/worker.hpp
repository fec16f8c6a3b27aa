#pragma once
// Internal to the load generator: one Worker per load thread, owning its io_context, its
// connections and its statistics. run_load() builds the Plan, the Workers, runs each on its
// thread, and merges their WorkerStats once they have returned.
//
// Threads: a Worker is built and its sockets opened on the calling thread *before* its thread
// starts; from then on only its own thread touches it, except start_final_round() and
// first_round_done(), which any thread may call. Its stats are read after the thread joined.
#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "handler_memory.hpp"
#include "histogram.hpp"
#include "load.hpp"

namespace shootout::load {

using Clock = std::chrono::steady_clock;

// Everything the workers need, fixed before they start; read-only while they run.
struct Plan {
  Mode mode = Mode::closed;
  bool echo = false;
  std::size_t echo_size = 0;
  int pipeline = 1;
  std::string batch;                       // HTTP: the request, `pipeline` times
  std::string pattern;                     // echo: kEchoPeriod + echo_size * pipeline bytes
  boost::asio::ip::tcp::endpoint endpoint;
  Clock::duration timeout{};
  Clock::duration send_interval{};         // rate: between two sends of one connection
  Clock::duration rate_step{};             // rate: 1/rate, the phase shift between connections
  Clock::duration connect_interval{};      // per worker; zero: open all at once
  Clock::time_point start, measure_from, measure_to;
  // Idle mode: the first round (connect, first response) of every connection is bounded by
  // first_round_by, not by `timeout`; the main thread stops waiting for it then.
  Clock::time_point first_round_by;
  // The hard deadline: no worker waits past it (connections still running then are counted as
  // connect errors or timeouts). Closed/rate: measure_to + timeout + 1 s. Idle: first_round_by
  // + the hold + timeout + 10 s (room for the sampler), brought forward to "now + timeout + 1 s"
  // when the final round starts.
  Clock::time_point deadline;
  std::size_t seconds = 1;                 // length of the per-second series
};

// The echo stream is periodic: the byte at stream position x is pattern[x % kEchoPeriod], so a
// batch of requests is one contiguous slice of `pattern` and every byte received can be checked
// against the position it arrives at. A prime period catches shifted or repeated chunks.
inline constexpr std::size_t kEchoPeriod = 251;

struct WorkerStats {
  LatencyHistogram latency, uncorrected;
  std::uint64_t requests = 0, bytes_read = 0, responses_total = 0, sent_total = 0;
  std::uint64_t idle_opened = 0, idle_alive = 0;
  ErrorCounts errors;
  std::vector<std::uint64_t> per_second;
};

class Connection;

class Worker {
 public:
  Worker(const Plan& plan, int first_index, int count);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Opens the sockets (no connect yet). Returns how many could be opened; on failure `error`
  // holds the reason (EMFILE when out of descriptors).
  int open_sockets(boost::system::error_code& error);
  // The thread body: returns when every connection has finished.
  void run();
  // Idle mode: true once every connection has had its first response (or failed).
  bool first_round_done() const { return first_round_done_.load(std::memory_order_acquire); }
  // Idle mode, any thread: every held connection sends its second request.
  void start_final_round();

  WorkerStats stats;

 private:
  friend class Connection;
  void arm_sweep();
  void arm_deadline(Clock::time_point at);
  void arm_opener();
  void on_end();
  void connection_finished();
  void first_round_step();
  // Closed loop: queue connection `c` (at socket generation `gen`) for the next flush.
  void defer_send(Connection& c, std::uint64_t gen);
  void flush_sends();
  std::span<char> read_buffer() { return {buffer_.data(), buffer_.size()}; }

  const Plan& plan_;
  boost::asio::io_context ioc_;
  std::vector<std::unique_ptr<Connection>> conns_;
  boost::asio::steady_timer sweep_, end_, opener_;
  std::array<char, 64 * 1024> buffer_;  // one recv buffer for the thread: reads are parsed
                                        // at once, only a split header is kept per connection
  // Connections whose next batch waits for the flush (with the socket generation it was
  // queued for), and the list being flushed; both reserved for every connection.
  std::vector<std::pair<Connection*, std::uint64_t>> send_queue_, sending_;
  bool flush_posted_ = false;
  HandlerSlot flush_slot_;
  std::size_t next_open_ = 0;
  int running_ = 0;  // connections not finished
  int first_round_pending_ = 0;
  bool stopping_ = false;
  std::atomic<bool> first_round_done_{false};
};

}  // namespace shootout::load
