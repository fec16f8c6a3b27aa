#pragma once
// What the two event loops share apart from how they talk to the kernel (evented: readiness
// from a Poller; uring: completions from io_uring) and the session-driving steps each mirrors
// from serve_connection(): the loop's cached clock, its three kinds of timers, the start of a
// session's blocking work, and when output pauses reading. Each loop owns one LoopTimers and
// one LoopWork.
//
// Threads: the loop's thread only (TimerHeap checks it in builds that check threads, once
// bind_to_this_thread() has run). Neither class owns the connections it times or the pool.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>

#include "handler.hpp"
#include "helper_pool.hpp"
#include "serve_options.hpp"
#include "timers.hpp"

namespace shootout {

// Back-pressure on input. A connection's input is what makes its output (an echo answers every
// byte), so a loop that reads on while the output waits for the client queues answers for as
// long as the client sends: one that sends faster than it reads grew the server's memory to
// --max-output, which then cut it off. So once a connection's queued output reaches this many
// bytes (--max-output, if that is smaller) its loop stops reading it, and reads again once all
// of that output has been sent: TCP's window holds the client back, whatever it sends, and the
// connection's queue stays below this plus what one read makes. (A session that makes much from
// little input yields on its own, Next::resume; output added by timers and pool jobs is still
// held to --max-output.)
constexpr std::size_t kReadPauseBytes = 256 * 1024;
inline std::size_t read_pause_bytes(const ServeOptions& options) {
  return options.max_output < kReadPauseBytes ? options.max_output : kReadPauseBytes;
}

class LoopTimers {
 public:
  explicit LoopTimers(const ServeOptions& options);
  void bind_to_this_thread() { heap_.bind_to_this_thread(); }

  // The clock: milliseconds since the loop started, rounded down, so a deadline compared with
  // it is never seen as passed before it has. The loop reads it once per iteration, after a
  // wait that may have slept, and after inline work (a /cpu of up to 10 s): deadlines armed
  // after that start from then.
  std::int64_t now() const { return now_; }
  std::int64_t read_clock();  // sets now(); returns the precise nanoseconds since the start

  // One-shot timers at any time: /sleep, the accept pause.
  TimerHeap::Id add(std::int64_t due_ms, std::function<void()> fn) {
    return heap_.add(due_ms, std::move(fn));
  }
  // Runs the one-shot timers that are due, then calls expire(link) for each connection whose
  // idle, stall or request deadline has passed (the loop closes it).
  template <class Expire>
  void run_due(Expire&& expire) {
    heap_.run_due(now_);
    for (DeadlineList* list : {&idle_, &request_})
      while (DeadlineLink* link = list->pop_due(now_)) expire(*link);
  }
  // The earliest due time of any timer or deadline, if there is one.
  std::optional<std::int64_t> next_due();

  // Puts a connection under the deadline its state calls for:
  //   output waiting for the peer   the stall timer (--idle-timeout from now)
  //   not reading (work, resume)    none
  //   reading, between requests     --idle-timeout from now
  //   reading, a request started    --request-timeout from its first byte (not pushed back)
  void arm(DeadlineLink& c, bool output_waiting, bool reading, bool mid_request);
  // --idle-timeout from now: a new connection, and progress on output that was waiting.
  void arm_idle(DeadlineLink& c) { idle_.arm(c, now_); }

 private:
  std::int64_t epoch_ns_;
  std::int64_t now_ = 0;
  TimerHeap heap_;
  DeadlineList idle_;     // idle keep-alive, and stalled output
  DeadlineList request_;  // a started request must arrive by then (slowloris)
};

class LoopWork {
 public:
  LoopWork(const ServeOptions& options, HelperPool& pool, Inbox& inbox)
      : offload_cpu_(options.offload_cpu), pool_(pool), inbox_(inbox) {}

  // Starts a session's blocking work without blocking the loop: /sleep as a timer (a heap
  // entry, not a thread) that calls slept() when it is over, /file and offloaded /cpu on the
  // helper pool, whose result comes back through the inbox tagged (fd, gen). Returns false if
  // the work must run inline, on the loop's thread: /cpu without --offload-cpu (on purpose:
  // the stall the model exists to show), or any work when the pool has no thread and cannot
  // start one (logged, then one refusal in 1,000).
  // With --trace, a pool job's flow arrow starts here (in the caller's dispatch span) and a
  // /sleep timer's callback is a span of its own.
  bool start(const Work& w, int fd, std::uint32_t gen, LoopTimers& timers,
             std::function<void()> slept);

 private:
  bool offload_cpu_;
  HelperPool& pool_;
  Inbox& inbox_;
  std::uint64_t refusals_ = 0;
};

}  // namespace shootout
