#include "thread_pool.hpp"

#include <fmt/format.h>

#include <system_error>

#include "log.hpp"
#include "trace.hpp"

namespace shootout {

ThreadPool::ThreadPool(int threads, Start start) : wanted_(threads) {
  if (start == Start::on_first_post) return;
  started_ = true;  // no other thread exists yet
  int started = 0;
  try {
    for (; started < wanted_; ++started) threads_.emplace_back([this] { run(); });
  } catch (const std::system_error& e) {
    shutdown();  // join the ones that started, then say which one the kernel refused
    throw std::system_error(
        e.code(), fmt::format("cannot start helper thread {} of {}", started + 1, wanted_));
  } catch (...) {
    shutdown();
    throw;
  }
}

// Under mu_. The threads started here wait for mu_ before they look for a task.
void ThreadPool::start_threads() {
  for (int started = 0; started < wanted_; ++started) {
    try {
      threads_.emplace_back([this] { run(); });
    } catch (const std::system_error& e) {
      if (started == 0)
        throw std::system_error(e.code(),
                                fmt::format("cannot start helper thread 1 of {}", wanted_));
      log_line("started {} of {} helper threads: {}", started, wanted_, e.code().message());
      break;
    }
  }
  started_ = true;
}

ThreadPool::~ThreadPool() { shutdown(); }

void ThreadPool::shutdown() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void ThreadPool::post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (!started_) start_threads();
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

// Pool thread: takes the lock only to pop a task.
void ThreadPool::run() {
  trace::name_thread("pool");
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and nothing left to do
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace shootout
