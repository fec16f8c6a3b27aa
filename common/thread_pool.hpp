#pragma once
// ThreadPool: a fixed set of helper threads that run tasks off the caller's thread, in the
// order they were posted. The models' helper pools (evented, coroutine) are this plus the way
// each hands a result back to its own loop or fiber.
//
// Threads: post() from any thread. A task runs on some pool thread with no pool lock held.
// The destructor lets the tasks queued so far run, then joins the threads.
//
// Start::now starts every thread in the constructor. Start::on_first_post starts them with the
// first task, as libuv starts its pool: a process that never posts stays single-threaded,
// which the kernel and the C library reward (an unshared descriptor table needs no reference
// counting in fdget; send and recv skip the cancellation bookkeeping of a threaded process).
// The first post starts as many threads as the kernel allows, logging any shortfall.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace shootout {

class ThreadPool {
 public:
  enum class Start { now, on_first_post };
  // Start::now: starts `threads` threads; throws std::system_error if the kernel refuses one.
  explicit ThreadPool(int threads, Start start = Start::now);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Start::on_first_post: throws std::system_error if no thread is running and the kernel
  // refuses the first one; the task is then not queued, and the next post tries again.
  void post(std::function<void()> task);

 private:
  void start_threads();  // throws std::system_error if not even one starts
  void run();
  void shutdown();

  const int wanted_;
  bool started_ = false;  // guarded by mu_
  std::mutex mu_;
  std::condition_variable cv_;               // a task arrived, or stopping_
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace shootout
