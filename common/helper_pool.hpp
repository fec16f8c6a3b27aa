#pragma once
// The helper pool: threads that run blocking work (/file, and /cpu with --offload-cpu) so the
// event loop never waits on it, and the inbox through which results return to a loop.
//
//   loop thread                        pool thread
//   submit({work, inbox, fd, gen}) --> jobs_ (under mu_) --> run_work_inline(work)
//                                                            inbox.post(result) (a Mailbox:
//                                                            common/mailbox.hpp)
//   poll phase: the inbox's eventfd is readable
//   inbox.take(): the results so far; on_work_done() for each
//
// Pool threads never touch sockets or sessions: they see a copy of the Work and hand back a
// WorkResult tagged with (fd, generation), which the loop checks against the live connection.
// Lock order: a pool thread releases the pool lock before it takes an inbox lock; the loop
// holds the inbox lock only for the swap. No thread ever holds both.
//
// Ownership and lifetimes: each loop (EventLoop, UringLoop) owns its Inbox; the HelperPool is owned
// by whoever runs the loops (run_loops) and shared by all of them. A job keeps a raw pointer to the
// inbox it was submitted with and posts to it when its work ends, even if the connection (or
// the loop's run()) is long gone. So every Inbox a job may post to must outlive the pool's
// destructor, which runs the jobs still queued and joins the threads: destroy the pool first,
// the loops after it.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "handler.hpp"
#include "mailbox.hpp"
#include "thread_pool.hpp"

namespace shootout {

struct Completion {
  int fd;             // the connection that asked for the work ...
  std::uint32_t gen;  // ... and its generation, so a reused descriptor is not confused
  WorkResult result;
  std::uint64_t trace_id = 0;  // --trace: the flow arrow back to the loop (common/trace.hpp)
};

// One per loop, a member of it: pool results come back through it, and its wake-up also
// carries stop requests. Must outlive every pool job submitted with it (see the header comment).
using Inbox = Mailbox<Completion>;

class HelperPool {
 public:
  struct Job {
    Work work;               // a copy: the session may be gone by the time it runs
    Inbox* inbox = nullptr;  // where the result goes
    int fd = -1;
    std::uint32_t gen = 0;
    std::uint64_t trace_id = 0;  // --trace: the flow arrow from the submitting loop, or 0
  };

  // `threads` threads, started with the first job (libuv's way): until some request needs
  // blocking work, the server's process has no thread besides its loops.
  explicit HelperPool(int threads) : threads_(threads, ThreadPool::Start::on_first_post) {}
  // The destructor (ThreadPool's) lets the jobs queued so far run, each posting to its inbox,
  // then joins the threads. Call it after every loop has returned from run() (no submit can
  // come any more) and before any loop is destroyed (their inboxes must still be there).

  // Any thread. Throws std::system_error if no pool thread runs and the kernel refuses to
  // start one; the job is then not queued (the caller runs it itself).
  void submit(Job job);

 private:
  ThreadPool threads_;
};

}  // namespace shootout
