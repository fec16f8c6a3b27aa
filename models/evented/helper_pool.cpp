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

// Runs on a pool thread, with no pool lock held (see the lock order in the header).
void HelperPool::submit(Job job) {
  threads_.post([job = std::move(job)] {
    job.inbox->post({job.fd, job.gen, run_work_inline(job.work)});
  });
}

}  // namespace shootout
