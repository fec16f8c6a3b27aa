#pragma once
// UringLoop: one thread, many connections, completions from an io_uring.
//
// The evented model asks the kernel "which sockets may I read?" (readiness: epoll) and then
// makes the calls itself, one system call each. This loop asks once, up front, "read this socket
// whenever data comes" (a multishot recv) and the kernel hands back the bytes (completion: what
// Windows' IOCP and io_uring do). Every send, every re-armed receive and every cancellation of
// an iteration is queued in the submission ring and goes to the kernel in the iteration's one
// io_uring_enter, which also waits; the answers come back in the completion ring, a batch at a
// time. So the system calls per request fall from about two to a fraction (docs/URING.md).
//
// One iteration (run_once) has the evented loop's named phases, with the poll phase split in
// two: the kernel wait and the dispatch of what it returned.
//
//   update_time   read the clock (rounded down to the millisecond; /sleep reads it itself)
//   timers        /sleep timers, the accept pause, idle/request/stall timeouts that are due
//   pending       sessions to resume (the next /bytes chunk), input held while a session
//                 was busy, receives to re-arm
//   prepare       choose the wait: 0 if anything is pending or closing, else until the
//                 nearest timer (or the grace deadline when stopping), else forever
//   submit_wait   one io_uring_enter: submit every queued operation, wait for at least one
//                 completion or the timeout, then copy the batch of completions out
//   complete      dispatch each completion: accept, receive, send, wake-up (pool results,
//                 stop request), the watched descriptor
//   check         when stopping: close the connections that are idle now, and those waiting
//                 on a client that is gone (looked at every 100 ms; see check())
//   close         close what the phases above marked for closing: a connection with an
//                 operation still in the kernel is cancelled first and closed when its last
//                 completion is back (the kernel may still write into its buffers until then)
//
// With --trace (common/trace.hpp, docs/TRACE.md) the iteration is a span with these phases
// nested in it, submit_wait carrying the wait chosen and the completions returned, and each
// completion's dispatch and each pending callback a span.
//
// Sessions are driven exactly as serve_connection() and the evented loop drive them. What
// differs is where bytes live:
//   input   every connection's multishot recv draws from one ring of provided buffers shared
//           by the loop, so an idle connection holds no read buffer; a buffer goes back to the
//           ring as soon as the session has been given its bytes. Bytes that arrive while the
//           session waits on work or resume, or while the connection's output holds
//           read_pause_bytes() (common/loop_core.hpp) until it has all been sent, are held for
//           it (the kernel keeps delivering); past kHoldLimit the recv is cancelled and TCP's
//           window pushes back on the client.
//   output  the kernel reads a send's buffer after the call that queued it has returned, so
//           every output is owned by its connection until its completion is back (evented
//           sends from a loop-wide buffer and copies only what the socket refused). The
//           buffers are recycled through a free list, so a steady state allocates nothing.
//           Everything queued and not yet completed counts against --max-output.
//
// Threads: every member function runs on the loop's thread, except request_stop(), which any
// thread may call. The ring is set up disabled by the constructor (on the main thread) and
// enabled by run() on the loop's thread, which from then on is its single issuer
// (IORING_SETUP_SINGLE_ISSUER, DEFER_TASKRUN: completions are only reaped in our own enter).
// Builds that check threads (common/owner_thread.hpp) abort on a call from another thread once
// run() has started. The loop owns its ring, its buffers, its connections' sockets and its
// inbox; not the listener (the caller closes it after run() returns) nor the pool, whose jobs
// point at the inbox (destroy the pool first: common/run_loops.hpp).
#include <liburing.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "accept.hpp"
#include "handler.hpp"
#include "helper_pool.hpp"
#include "loop_core.hpp"
#include "owner_thread.hpp"
#include "serve_options.hpp"
#include "uring_support.hpp"

namespace shootout {

// Empty if this process can run the uring model; else why not ("io_uring is disabled
// (kernel.io_uring_disabled = 2)", "io_uring_setup: Operation not permitted (a seccomp
// profile?)", an operation the kernel lacks). Any thread; probes once and remembers.
const std::string& uring_unavailable();

class UringLoop {
 public:
  // listen_fd: a listening socket, or -1 for none (tests adopt sockets instead). Throws
  // std::system_error at set-up (io_uring_setup, the buffer ring, eventfd).
  UringLoop(const ServeOptions& options, const Handler& handler, HelperPool& pool, int listen_fd);
  ~UringLoop();  // closes every connection still open
  UringLoop(const UringLoop&) = delete;
  UringLoop& operator=(const UringLoop&) = delete;

  // Runs iterations until stopped and drained. Returns true if every connection finished within
  // --grace of the stop request, false if the grace period ran out.
  bool run();
  // One iteration. Returns false once the loop is finished.
  bool run_once();

  // Any thread: stop accepting, close idle connections, finish the others, then finish.
  void request_stop();

  // Takes a connected socket as a connection (tests: one end of a socketpair). Returns 0, or
  // the errno that refused it (the socket is then closed): EAGAIN when the submission queue is
  // full before run() (about 1,000 adopted sockets; the ring cannot be entered until then).
  int adopt(int fd);
  // Loop thread, before run(): also watch `fd` for readability, calling on_readable (which
  // must read it until EAGAIN) each time. The loop does not own fd.
  void watch(int fd, std::function<void()> on_readable);

  std::size_t connections() const { return live_; }

  // What the loop has counted since it started (for tests and the docs).
  struct Counts {
    std::uint64_t enters = 0;       // io_uring_enter calls (the iteration's, and SQ-full ones)
    std::uint64_t completions = 0;  // CQEs reaped
    std::uint64_t no_buffers = 0;   // recv completions with -ENOBUFS (the buffer ring ran dry)
    unsigned buffers = 0;           // receive buffers provided to the ring so far
  };
  const Counts& counts() const { return counts_; }

 private:
  struct Output;
  struct Conn;
  struct Cqe {
    std::uint64_t user_data;
    std::int32_t res;
    std::uint32_t flags;
  };
  enum class Op : std::uint8_t { ignore, accept, recv, send, wake, watched };

  // phases
  void update_time();
  void run_timers();
  void run_pending();
  std::int64_t prepare();  // the wait in ns: 0 none, -1 forever
  void submit_wait(std::int64_t wait_ns);
  void complete();
  void check();
  void close_pending_closes();

  // the ring
  io_uring_sqe* sqe();  // a free submission entry (submits the full queue first if need be)
  static std::uint64_t tag(Op op, int fd = 0, std::uint32_t gen = 0);
  void arm_accept();
  void arm_poll(int fd, Op op);
  void arm_recv(Conn& c);
  void cancel(std::uint64_t user_data);
  void provide_buffers(unsigned n);

  // dispatch
  void dispatch(const Cqe& cqe);
  void on_wake();
  void on_accept(const Cqe& cqe);
  void pause_accept(std::chrono::milliseconds wait);
  int add_connection(int fd);
  void on_recv(Conn& c, const Cqe& cqe);
  void on_send(Conn& c, const Cqe& cqe);
  void op_ended(Conn& c);  // an operation of a closing connection is back

  // driving a session
  void input(Conn& c, std::string_view bytes);
  void advance(Conn& c, Next next);
  bool flush(Conn& c);
  void send_front(Conn& c);
  void release_output(Conn& c);
  void recycle_chunk(std::string& chunk);
  void close_over_cap(Conn& c);
  void work_done(int fd, std::uint32_t gen, WorkResult result);
  void rearm(Conn& c);
  void close_later(Conn& c);
  Conn* find(int fd, std::uint32_t gen) const;  // the connection, closing or not
  Conn* live(int fd) const;                     // not closing
  bool idle(const Conn& c) const;
  bool awaits_client(const Conn& c) const;
  void begin_stop();
  void drop(Conn& c, const std::exception& e);

  [[no_unique_address]] OwnerThread owner_;  // the loop's thread, from run() on
  const ServeOptions& options_;
  const Handler& handler_;
  HelperPool& pool_;
  int listen_fd_;
  bool accepting_ = false;     // we want connections (not paused, not stopping)
  bool accept_armed_ = false;  // a multishot accept is in the kernel
  int watched_fd_ = -1;        // see watch()
  std::function<void()> on_watched_;
  int spare_fd_ = -1;  // held for the EMFILE trick (see on_accept)
  AcceptBackoff accept_backoff_;
  Inbox inbox_;    // pool results and stop requests; its eventfd completes a multishot poll
  LoopWork work_;  // how a session's blocking work starts (common/loop_core.hpp)
  std::atomic<bool> stop_requested_{false};
  bool stopping_ = false;
  bool timed_out_ = false;
  std::int64_t grace_deadline_ = 0;
  std::int64_t next_peer_check_ = 0;  // when stopping: the next look for clients gone (check())

  io_uring ring_{};
  bool ring_ready_ = false;        // io_uring_queue_init succeeded (the destructor tears it down)
  ProvidedBuffers buffers_;        // unmapped after ~UringLoop's body has exited ring_
  unsigned buffers_provided_ = 0;  // buffers 0..this-1 have been given to the ring
  bool grown_this_batch_ = false;  // buffers were added for -ENOBUFS in this batch
  Counts counts_;
  unsigned sends_queued_ = 0;    // sends queued since the last enter (see submit_wait)
  bool sends_followed_ = false;  // one of them has more to do behind it (see submit_wait)

  LoopTimers timers_;  // the cached clock, /sleep and the accept pause, the connection deadlines
  const std::size_t read_pause_;  // queued output that pauses reading (read_pause_bytes())

  std::vector<std::unique_ptr<Conn>> conns_;  // by fd; a closing one stays until its ops are back
  std::size_t live_ = 0;                      // connections not yet closed (closing included)
  std::uint32_t next_gen_ = 0;
  struct Ref {
    int fd;
    std::uint32_t gen;
  };
  std::vector<Ref> pending_, pending_run_;      // for the next pending phase
  std::vector<int> closing_;                    // for the close phase
  std::vector<Cqe> ready_;                      // the batch of completions being dispatched
  std::vector<Completion> completions_;         // swapped out of the inbox
  std::string out_;                             // output of the session being driven
  std::vector<std::unique_ptr<Output>> spare_;  // recycled Output objects
  std::vector<std::string> spare_chunks_;       // recycled output buffers
  std::size_t spare_bytes_ = 0;                 // their capacity, in all
};

}  // namespace shootout
