#include "reactor_scheduler.hpp"

namespace shootout {

void ReactorScheduler::awakened(boost::fibers::context* ctx) noexcept { ctx->ready_link(ready_); }

// Boost switches to the context returned, right after this returns (TSan: tsan_fibers.hpp).
// Only the dispatcher's own call may return nullptr (then it calls suspend_until()).
SHOOTOUT_NO_TSAN boost::fibers::context* ReactorScheduler::pick_next() noexcept {
  if (ready_.empty()) return nullptr;
  boost::fibers::context* ctx = &ready_.front();
  ready_.pop_front();
  tsan_.switching_to(ctx);
  return ctx;
}

// Called by the dispatcher only when no fiber is ready: block in the kernel until a descriptor
// is ready, a fiber's deadline comes, or another thread wakes us.
void ReactorScheduler::suspend_until(const FiberClock::time_point& deadline) noexcept {
  reactor_.poll(deadline);
}

}  // namespace shootout
