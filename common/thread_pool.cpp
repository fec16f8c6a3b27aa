#include "thread_pool.hpp"

#include <fmt/format.h>

#include <system_error>

namespace shootout {

ThreadPool::ThreadPool(int threads) {
  int started = 0;
  try {
    for (; started < threads; ++started) threads_.emplace_back([this] { run(); });
  } catch (const std::system_error& e) {
    shutdown();  // join the ones that started, then say which one the kernel refused
    throw std::system_error(
        e.code(), fmt::format("cannot start helper thread {} of {}", started + 1, threads));
  } catch (...) {
    shutdown();
    throw;
  }
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
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

// Pool thread: takes the lock only to pop a task.
void ThreadPool::run() {
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
