#pragma once
// Internal to the load generator: the I/O seam between a Worker (worker.hpp) and its
// connections' one state machine (connection.hpp) on one side, and the kernel interface on the
// other. Two engines implement it:
//
//   asio   readiness (epoll through Boost.Asio): wait until a socket is readable, then recv();
//          send() directly on the non-blocking socket (asio_engine.hpp)
//   uring  completion (io_uring): a multishot recv hands back the bytes in provided buffers,
//          connects and sends are queued and submitted together with the wait in one
//          io_uring_enter per loop iteration (uring_engine.hpp)
//
// The engine only moves bytes and time; every decision (what to send, when a response is done,
// what an error counts as, when to reconnect) is the Connection's or the Worker's. The seam is
// small on purpose, so the two engines differ only in their I/O:
//
//   the Worker and its Connections ask          the engine calls back
//   ---------------------------------------     --------------------------------------------
//   open(slot)     a socket (--source bound)
//   connect(slot)                               Connection::on_connect(ok)
//   send(slot, bytes)  all of them, in order    Connection::on_send_error()
//   start_reading(slot)  until close            Connection::on_data(bytes), on_read_end(eof)
//   arm_timer(slot, at)  one per connection     Connection::on_timer()
//   close(slot)    cancels all of the above; nothing of that socket is called back after it
//   arm_timer(WorkerTimer, at), cancel_timer    Worker::on_timer(which)
//   flush_after_batch()                         Worker::flush_sends(), once the completions
//                                               of this wake-up have all been handled
//   wake()         any thread                   Worker::on_wake() on the worker's thread
//   begin() on the worker's thread first; run() until stop() or every connection has
//   finished; drain() after the final close()s
//
// A slot is the connection's index in its Worker (0 .. count-1). Re-arming a timer replaces its
// previous expiry. A callback may call back into the engine (close the connection, send, arm a
// timer); the engine checks after each callback whether the socket it was handling is still
// the same one (a generation per slot) before touching it again.
//
// Ownership: the Worker owns its Engine and its Connections, and destroys the Engine first;
// the engine owns the sockets, its timers and its receive buffers. The bytes given to send()
// are copied or written before send() returns, or kept alive by the Connection until the
// socket is closed (the Asio engine's async_write of a partial send's rest).
//
// Threads: built, and open() called, on the thread that builds the Worker; wake() from any
// thread; everything else on the Worker's thread (the one in run()), whose owner-thread check
// the engines share (common/owner_thread.hpp).
#include <chrono>
#include <cstddef>
#include <memory>
#include <string_view>
#include <system_error>

#include "load.hpp"

namespace shootout::load {

using Clock = std::chrono::steady_clock;

struct Plan;
class Worker;

// The Worker's own timers: one of each is armed at a time.
enum class WorkerTimer { opener, sweep, window_end, deadline };
inline constexpr int kWorkerTimers = 4;

class Engine {
 public:
  virtual ~Engine() = default;

  // Set-up thread, before run(); also the worker's thread, to reopen after a close. Opens slot's
  // socket, --source bound (IP_BIND_ADDRESS_NO_PORT). False, with `ec`, if it could not.
  virtual bool open(std::size_t slot, std::error_code& ec) = 0;
  virtual bool is_open(std::size_t slot) const = 0;

  virtual void connect(std::size_t slot) = 0;
  // Writes `bytes` in full (in pieces if the socket takes them so); a failure calls back
  // on_send_error(), possibly before send() returns.
  virtual void send(std::size_t slot, std::string_view bytes) = 0;
  virtual void start_reading(std::size_t slot) = 0;
  virtual void arm_timer(std::size_t slot, Clock::time_point at) = 0;
  virtual void close(std::size_t slot) = 0;

  virtual void arm_timer(WorkerTimer which, Clock::time_point at) = 0;
  virtual void cancel_timer(WorkerTimer which) = 0;
  virtual void flush_after_batch() = 0;

  // Any thread: Worker::on_wake() soon, on the worker's thread.
  virtual void wake() = 0;

  // The worker's thread, first of all: it takes the engine over (io_uring: enables the ring,
  // whose single issuer it becomes). Throws std::system_error if it cannot.
  virtual void begin() {}
  // The worker's thread: runs until stop() or until nothing is left to wait for.
  virtual void run() = 0;
  virtual void stop() = 0;
  // After run() and a close() of every slot: waits until the kernel holds nothing of ours.
  virtual void drain() = 0;
  // What the engine counted (the uring engine's; zero for asio).
  virtual EngineCounts counts() const { return {}; }
};

// The engine `plan.engine` names, for `worker`'s `count` connections (global indices from
// `first_index`: their --source addresses). Throws LoadError if it
// cannot be set up here (io_uring unavailable), std::system_error if out of resources.
std::unique_ptr<Engine> make_engine(const Plan& plan, Worker& worker, std::size_t first_index,
                                    std::size_t count);

// The socket both engines connect: IPv4 TCP, TCP_NODELAY, bound to connection `index`'s --source
// address when there are any; non-blocking if asked. Returns the descriptor, or -1 with `ec`.
int open_load_socket(const Plan& plan, std::size_t index, bool nonblocking, std::error_code& ec);

}  // namespace shootout::load
