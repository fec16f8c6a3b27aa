#pragma once
// Internal to the load generator: the readiness engine (engine.hpp). One io_context per load
// thread, created with BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO (one thread runs it; the reactor's
// per-socket locks are compiled out, the scheduler's lock stays so another thread can post the
// wake-up). Per connection a socket, a timer and recycled handler memory (handler_memory.hpp).
//
// Per request: one send() of the batch directly on the non-blocking socket (only a partial
// write falls back to async_write); one async_wait(wait_read) (epoll: no speculative recv that
// would fail with EAGAIN); recv() into the thread's one buffer until the socket is drained.
//
// Ownership and threads as engine.hpp says: it owns the io_context, the sockets, the timers and
// the receive buffer; it is built on the set-up thread and run on the worker's.
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine.hpp"
#include "handler_memory.hpp"

namespace shootout::load {

class AsioEngine final : public Engine {
 public:
  AsioEngine(const Plan& plan, Worker& worker, std::size_t first_index, std::size_t count);
  ~AsioEngine() override;

  bool open(std::size_t slot, std::error_code& ec) override;
  bool is_open(std::size_t slot) const override;
  void connect(std::size_t slot) override;
  void send(std::size_t slot, std::string_view bytes) override;
  void start_reading(std::size_t slot) override;
  void arm_timer(std::size_t slot, Clock::time_point at) override;
  void close(std::size_t slot) override;
  void arm_timer(WorkerTimer which, Clock::time_point at) override;
  void cancel_timer(WorkerTimer which) override;
  void flush_after_batch() override;
  void wake() override;
  void run() override;
  void stop() override;
  void drain() override;

 private:
  struct Link;  // one connection's socket, timer and handler slots
  void wait_readable(Link& l);
  void on_readable(Link& l);

  const Plan& plan_;
  Worker& w_;
  const std::size_t first_;
  boost::asio::io_context ioc_;
  std::vector<std::unique_ptr<Link>> links_;
  std::vector<boost::asio::steady_timer> timers_;  // by WorkerTimer
  HandlerSlot flush_slot_;
  std::array<char, 64 * 1024> buffer_;  // one recv buffer for the thread: reads are parsed at
                                        // once, only a split header is kept per connection
};

}  // namespace shootout::load
