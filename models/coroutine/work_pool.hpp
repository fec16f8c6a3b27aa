#pragma once
// WorkPool: helper threads for blocking work a fiber must not do on its scheduler's thread
// (--offload-cpu: /cpu and /file). A fiber hands a job over and parks; a pool thread runs it
// and hands the job back through the fiber's Reactor (a queue swapped under a lock plus the
// reactor's eventfd), so the fiber is woken on its own thread and no thread ever blocks on a
// fiber primitive. Pool threads never touch sockets.
//
// Threads: run() is called by fibers on any scheduler thread. The pool must outlive every
// fiber that uses it (the server joins its scheduler threads first).
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "handler.hpp"
#include "reactor.hpp"

namespace shootout {

class WorkPool {
 public:
  // Set-up: starts `threads` threads; throws std::system_error if one cannot start.
  explicit WorkPool(int threads);
  ~WorkPool();  // stops and joins the threads; no job may be pending
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

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
  void worker();
  void stop();

  std::mutex mu_;                 // guards jobs_ and quit_
  std::condition_variable cv_;    // a job arrived, or quit_
  std::deque<Job*> jobs_;
  bool quit_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace shootout
