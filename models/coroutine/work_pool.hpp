#pragma once
// WorkPool: helper threads for blocking work a fiber must not do on its scheduler's thread
// (--offload-cpu: /cpu and /file). A fiber hands a job over and parks; a pool thread runs it
// and hands the job back through the fiber's Reactor (a queue swapped under a lock plus the
// reactor's eventfd), so the fiber is woken on its own thread and no thread ever blocks on a
// fiber primitive. Pool threads never touch sockets.
//
// Threads: run() is called by fibers on any scheduler thread. The pool must outlive every
// fiber that uses it (the server joins its scheduler threads first).
#include "handler.hpp"
#include "reactor.hpp"
#include "thread_pool.hpp"

namespace shootout {

class WorkPool {
 public:
  // Set-up: starts `threads` threads; throws std::system_error if one cannot start.
  // Destruction stops and joins them; no job may be pending.
  explicit WorkPool(int threads) : threads_(threads) {}

  // Fiber: runs `work` on a pool thread. The calling fiber parks meanwhile, its thread runs
  // the other fibers, and `reactor` (the fiber's own) wakes it when the result is in.
  WorkResult run(const Work& work, Reactor& reactor);

 private:
  // Lives on the waiting fiber's stack until the reactor has fired its parker.
  struct Job {
    const Work* work;
    Reactor* reactor;
    WorkResult result;
    Parker done;
  };
  ThreadPool threads_;
};

}  // namespace shootout
