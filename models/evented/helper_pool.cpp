#include "helper_pool.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace shootout {

Inbox::Inbox() : efd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (efd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

Inbox::~Inbox() { ::close(efd_); }

void Inbox::post(Completion c) {
  bool was_empty;
  {
    std::lock_guard lock(mu_);
    was_empty = done_.empty();
    done_.push_back(std::move(c));
  }
  // One wake-up per batch: if the inbox was not empty, the loop has a wake-up coming already.
  if (was_empty) wake();
}

void Inbox::wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(efd_, &one, sizeof one);  // EAGAIN only at 2^64-1: ignore
}

void Inbox::take(std::vector<Completion>& into) {
  std::uint64_t count;
  [[maybe_unused]] auto n = ::read(efd_, &count, sizeof count);  // reset before the swap
  into.clear();
  std::lock_guard lock(mu_);
  into.swap(done_);
}

HelperPool::HelperPool(int threads) {
  try {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  } catch (...) {
    shutdown();  // join the ones that started, then pass the std::system_error on
    throw;
  }
}

HelperPool::~HelperPool() { shutdown(); }

void HelperPool::shutdown() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void HelperPool::submit(Job job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

// Pool thread. Takes the pool lock only to pop a job; runs the work and posts the result with
// no pool lock held (see the lock order in the header).
void HelperPool::run() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left to do
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    WorkResult result = run_work_inline(job.work);
    job.inbox->post({job.fd, job.gen, std::move(result)});
  }
}

}  // namespace shootout
