#pragma once
// ThreadPool: a fixed set of helper threads that run tasks off the caller's thread, in the
// order they were posted. The models' helper pools (evented, coroutine) are this plus the way
// each hands a result back to its own loop or fiber.
//
// Threads: post() from any thread. A task runs on some pool thread with no pool lock held.
// The destructor lets the tasks queued so far run, then joins the threads.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace shootout {

class ThreadPool {
 public:
  // Set-up: starts `threads` threads; throws std::system_error if the kernel refuses one.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void post(std::function<void()> task);

 private:
  void run();
  void shutdown();

  std::mutex mu_;
  std::condition_variable cv_;                // a task arrived, or stopping_
  std::deque<std::function<void()>> tasks_;   // guarded by mu_
  bool stopping_ = false;                     // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace shootout
