#include "session_stack.hpp"

#include <boost/context/protected_fixedsize_stack.hpp>
#include <utility>

namespace shootout {

SessionStack::SessionStack(std::size_t size)
    : worker_(std::allocator_arg, boost::context::protected_fixedsize_stack(size),
              [this](boost::context::fiber&& caller) { return worker_loop(std::move(caller)); }) {}

SessionStack::~SessionStack() {
  // Resumed with no job, the worker returns and its stack is freed. Letting a live worker be
  // unwound instead (boost::context::fiber's destructor) would throw forced_unwind across the
  // stack switch, which ASan reports as an unannotated no-return.
  job_ = nullptr;
  if (worker_) worker_ = std::move(worker_).resume();
}

// Runs on the shared stack: one job per resume, then back to whoever resumed us. The first
// resume starts it; a resume with no job ends it.
boost::context::fiber SessionStack::worker_loop(boost::context::fiber&& caller) {
  while (job_) {
    try {
      job_->result = job_->call(job_->fn);
    } catch (...) {
      job_->error = std::current_exception();
    }
    caller = std::move(caller).resume();
  }
  return std::move(caller);
}

void SessionStack::enter(Job& job) {
  job_ = &job;
  worker_ = std::move(worker_).resume();
  job_ = nullptr;
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace shootout
