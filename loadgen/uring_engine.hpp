#pragma once
// Internal to the load generator: the completion engine (engine.hpp), one io_uring per load
// thread. The connection's state machine is the same as under Asio; what differs is who makes
// the calls. Here every connect, send, receive and cancellation is a queued submission, and the
// loop's one io_uring_enter per iteration hands them all to the kernel and waits for
// completions, up to the nearest timer:
//
//   timers       the worker's timers (opener, sweep, window end, deadline) and the
//                connections' (rate mode's next send, the pause before a reconnect) that are
//                due, from one heap; re-arming or closing makes older entries stale (a
//                generation), and stale ones are dropped when they come up
//   flush        the closed loop's deferred sends of the last batch (Worker::flush_sends), so
//                they go to the kernel together
//   give back    receive buffers the last batch used return to the ring (one tail update);
//                receives that ended for want of a buffer (-ENOBUFS) are armed again
//   submit_wait  io_uring_submit_and_wait_timeout: submits, waits for one completion or the
//                nearest timer; then the descriptors of sockets closed meanwhile are closed
//   complete     each completion dispatched to its connection (or the wake-up, or dropped
//                when its generation is no longer the slot's)
//
// Reads: one multishot recv per socket, armed at connect and again only when it ends (buffer
// ring empty, IORING_CQE_F_MORE cleared); its bytes come in buffers of one ring shared by the
// thread's connections, so an idle connection holds no receive buffer. Sends: the batch is
// copied into the slot's buffer (the kernel may read it after send() has returned); a short
// send is followed by one for the rest. Closing: a socket's operations are cancelled by their
// user_data (operation, slot, generation), and its descriptor is closed only after the next
// enter, so no queued submission can name a descriptor number that a new socket has taken.
// The slot's send buffer stays with the engine until the cancelled send is back.
//
// The ring is set up with IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (completions
// are only run in our own enter) | IORING_SETUP_SUBMIT_ALL, disabled until run() enables it on
// the worker's thread; a kernel that refuses those flags gets a plain ring. Another thread
// wakes the loop through an eventfd that the loop always has a read queued on.
//
// Ownership and threads as engine.hpp says: it owns the ring, the receive buffers, the
// eventfd, the sockets and their send buffers. The destructor tears the ring down before the
// memory the kernel may still use.
#include <liburing.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine.hpp"
#include "uring_support.hpp"

namespace shootout::load {

class UringEngine final : public Engine {
 public:
  // Empty if this process can run the engine; else why not, in one line (any thread; once).
  static const std::string& unavailable();

  // Throws LoadError if io_uring is unavailable here, std::system_error if a resource is.
  UringEngine(const Plan& plan, Worker& worker, std::size_t first_index, std::size_t count);
  ~UringEngine() override;

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
  void begin() override;
  void run() override;
  void stop() override;
  void drain() override;
  EngineCounts counts() const override { return counts_; }

 private:
  enum class Op : std::uint8_t { ignore, connect, recv, send, wake };
  struct Slot;
  struct Cqe {
    std::uint64_t user_data;
    std::int32_t res;
    std::uint32_t flags;
  };
  struct Timer {
    Clock::time_point at;
    std::uint32_t id;  // a slot, or slots_.size() + a WorkerTimer
    std::uint32_t gen;
  };
  struct Ref {
    std::uint32_t slot, gen;
  };

  // phases
  void run_timers();
  void give_back();
  void submit_wait();
  void complete();
  void dispatch(const Cqe& cqe);

  // the ring
  io_uring_sqe* sqe();
  static std::uint64_t tag(Op op, std::size_t slot = 0, std::uint32_t gen = 0);
  void arm_recv(std::size_t slot);
  void send_rest(std::size_t slot);
  void arm_wake();
  void cancel(std::uint64_t user_data);
  void close_descriptors();

  // completions
  void on_connect(std::size_t slot, const Cqe& cqe);
  void on_recv(std::size_t slot, const Cqe& cqe);
  void on_send(std::size_t slot, const Cqe& cqe);
  void stale(std::size_t slot, Op op, const Cqe& cqe);

  // timers
  static bool later(const Timer& a, const Timer& b);
  void push_timer(std::uint32_t id, std::uint32_t gen, Clock::time_point at);
  std::uint32_t& timer_gen(std::uint32_t id);

  const Plan& plan_;
  Worker& w_;
  const std::size_t first_;
  io_uring ring_{};
  bool ring_ready_ = false;
  bool enable_ = false;      // set up disabled: run() enables it
  ProvidedBuffers buffers_;  // unmapped after ~UringEngine's body has exited ring_
  int wake_fd_ = -1;
  std::uint64_t wake_value_ = 0;  // the queued eventfd read's buffer
  bool stopped_ = false, draining_ = false, flush_ = false;
  unsigned sends_queued_ = 0;         // since the last enter (see submit_wait)
  std::uint64_t in_flight_ = 0;       // operations whose last completion has not come back
  std::uint64_t stale_sends_ = 0;     // sends of closed sockets still in the kernel
  std::vector<std::string> retired_;  // their buffers, freed once none is left
  sockaddr_storage target_{};         // the server: what every connect points at
  socklen_t target_len_ = 0;
  std::vector<Slot> slots_;
  std::vector<Timer> heap_;  // a min-heap by `at`, with stale entries
  std::array<std::uint32_t, kWorkerTimers> worker_timer_gen_{};
  std::vector<Cqe> ready_;     // the batch of completions being dispatched
  std::vector<Ref> rearm_;     // receives to arm again once buffers are back
  std::vector<int> to_close_;  // descriptors to close after the next enter
  EngineCounts counts_;
};

}  // namespace shootout::load
