#pragma once
// EventLoop: one thread, many non-blocking connections, readiness from a Poller.
//
// One iteration (run_once) is a list of named phases, in the order libuv used until 1.44:
// timers before poll (libuv 1.45 moved them after check; as a cycle it is the same order, begun
// at another phase: docs/EVENTED.md says why this one):
//
//   update_time   read the clock; deadlines are computed from this cached value, which is read
//                 again after a poll that slept and after inline work (a /cpu of up to 10 s),
//                 and a /sleep timer reads the clock itself (it must never fire early)
//   timers        /sleep timers, the accept pause, and the idle/request timeouts that are due
//   pending       sessions deferred from the last iteration (the next /bytes chunk), so one
//                 fast reader cannot monopolise the loop; with epoll (edge-triggered here)
//                 also the connections whose last read filled the buffer, and those whose last
//                 write took all it was offered with more queued (no edge would come for them)
//   prepare       choose the poll timeout: 0 if anything is pending or closing, else until
//                 the nearest timer (or the grace deadline when stopping), else forever
//   poll          wait for readiness, then dispatch each event: accept, wake-up (pool
//                 results, stop request), write, read
//   check         when stopping: close the connections that are idle now
//   close         close what the phases above marked for closing (deferred close)
//
// With --trace (common/trace.hpp, docs/TRACE.md) the iteration is a span with these phases
// nested in it (update_time, timers, pending, prepare, poll, check, close; the poll phase holds
// the kernel wait and one span per dispatch) and each dispatch or pending callback a span.
//
// Connections are driven exactly like serve_connection() drives a Session: output is sent,
// then the Session's Next is honoured (read: watch for input; resume: call on_resume() once
// the output has drained; work: a timer, the helper pool, or inline; close: close once the
// output has drained). A session waiting on resume or work is not fed input: its connection
// is not watched for readability meanwhile. Output the socket refuses is queued per connection;
// every path that adds to a queue counts against --max-output (see flush()). A queue that
// reaches read_pause_bytes() (common/loop_core.hpp) pauses reading too, until it has drained:
// the client's own socket then holds back what it sends (rearm()).
//
// Closing is deferred to the close phase, so an event later in the same ready batch never
// meets a freed connection or a descriptor number reused by accept: it sees the connection
// marked `closing` and is skipped.
//
// Threads: every member function runs on the loop's thread, except request_stop(), which any
// thread may call; builds that check threads (common/owner_thread.hpp) abort on a call from
// another thread once run() has started. The loop owns its connections' sockets, its poller and its
// inbox; it does not own the listener (the caller closes it after run() returns) or the pool. Pool
// jobs it submitted point at its inbox, so the caller destroys the pool (joining its threads)
// before the loop, even when the loop's connections went away before their work ended.
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
#include "poller.hpp"
#include "serve_options.hpp"

namespace shootout {

class EventLoop {
 public:
  // listen_fd: a non-blocking listening socket, or -1 for none (tests adopt sockets instead).
  // Throws std::system_error or std::invalid_argument at set-up (poller, eventfd).
  EventLoop(const ServeOptions& options, const Handler& handler, HelperPool& pool, int listen_fd);
  ~EventLoop();  // closes every connection still open
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs iterations until stopped and drained. Returns true if every connection finished within
  // --grace of the stop request, false if the grace period ran out.
  bool run();
  // One iteration. Returns false once the loop is finished (stopping and nothing left, or the
  // grace period is over).
  bool run_once();

  // Any thread: stop accepting, close idle connections, finish the others, then finish.
  void request_stop();

  // Takes a connected socket as a connection (accept does this; tests call it with one end of
  // a socketpair). Makes it non-blocking. Returns 0, or the errno that refused it (the socket
  // is then closed): e.g. EINVAL from the select poller for fd >= FD_SETSIZE.
  int adopt(int fd);
  // Loop thread, before run(): also watch `fd` for readability, calling on_readable (which
  // must read it until EAGAIN: the watch may be edge-triggered) each time. The loop does not
  // own fd. Loop 0 watches the server's signalfd this way.
  void watch(int fd, std::function<void()> on_readable);
  // Marks the connection on fd for closing in this iteration's close phase. No-op if there is
  // none. Safe from any callback, including one for another connection in the same batch.
  void close_later(int fd);

  std::size_t connections() const { return live_; }
  std::string_view poller_name() const { return poller_->name(); }

 private:
  struct Output;
  struct Conn;

  // phases
  void update_time();
  void run_timers();
  void run_pending();
  int prepare();
  void poll(int timeout_ms);
  void check();
  void close_pending_closes();

  // dispatch
  void dispatch(PollEvent ev);
  const char* dispatch_name(int fd) const;  // the trace's name for an event on fd
  void on_wake();
  void on_acceptable();
  int add_connection(int fd);  // fd is non-blocking already
  void pause_accept(std::chrono::milliseconds wait);
  void on_readable(Conn& c, bool end_pending);
  void on_writable(Conn& c);

  // driving a session
  void advance(Conn& c, Next next);
  bool flush(Conn& c);
  void enqueue(Output& o, std::size_t from);
  void release_out();
  void close_over_cap(Conn& c);
  void work_done(int fd, std::uint32_t gen, WorkResult result);
  void rearm(Conn& c);
  void close_later(Conn& c);
  Conn* live(int fd) const;
  bool idle(const Conn& c) const;
  void begin_stop();

  [[no_unique_address]] OwnerThread owner_;  // the loop's thread, from run() on
  const ServeOptions& options_;
  const Handler& handler_;
  HelperPool& pool_;
  int listen_fd_;
  bool accepting_ = false;  // listen_fd_ is in the poller
  int watched_fd_ = -1;     // see watch()
  std::function<void()> on_watched_;
  int spare_fd_ = -1;             // held for the EMFILE trick (see on_acceptable)
  AcceptBackoff accept_backoff_;  // how long a starved listener stays unwatched
  std::unique_ptr<Poller> poller_;
  Inbox inbox_;    // pool results and stop requests; its fd wakes us
  LoopWork work_;  // how a session's blocking work starts (common/loop_core.hpp)
  std::atomic<bool> stop_requested_{false};
  bool stopping_ = false;   // the loop has seen stop_requested_
  bool timed_out_ = false;  // the grace period ran out
  std::int64_t grace_deadline_ = 0;

  LoopTimers timers_;  // the cached clock, /sleep and the accept pause, the connection deadlines
  const std::size_t read_pause_;  // queued output that pauses reading (read_pause_bytes())

  std::vector<std::unique_ptr<Conn>> conns_;  // by fd
  std::size_t live_ = 0;
  std::uint32_t next_gen_ = 0;
  // What a connection queued for the next pending phase does there.
  enum class Again : std::uint8_t {
    resume,  // call the session's on_resume() (its output has drained)
    read,    // read more (edge-triggered: the last read filled the buffer, or the end waits)
    write,   // write more (edge-triggered: the last write took all it was offered)
  };
  struct Ref {
    int fd;
    std::uint32_t gen;
    Again again;
  };
  std::vector<Ref> pending_, pending_run_;  // for the next pending phase
  std::vector<int> closing_;                // closed in the close phase
  std::vector<PollEvent> ready_;            // the poll phase's batch
  std::vector<Completion> completions_;     // swapped out of the inbox
  std::string out_;                         // output of the session being driven, loop-wide
  std::vector<char> in_;                    // the loop-wide read buffer
};

}  // namespace shootout
