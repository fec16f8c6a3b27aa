#include "reactor_scheduler.hpp"

#include <cstdint>

#include "trace.hpp"

namespace shootout {

void ReactorScheduler::awakened(boost::fibers::context* ctx) noexcept { ctx->ready_link(ready_); }

// Boost switches to the context returned, right after this returns (TSan: tsan_fibers.hpp).
// Only the dispatcher's own call may return nullptr (then it calls suspend_until()).
SHOOTOUT_NO_TSAN boost::fibers::context* ReactorScheduler::pick_next() noexcept {
  if (trace::on()) {
    const std::int64_t now = trace::now_ns();
    if (slice_start_)
      trace::complete("fiber", "dispatch", slice_start_, now - slice_start_, "fiber",
                      static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(slice_fiber_)));
    slice_start_ = ready_.empty() ? 0 : now;
    slice_fiber_ = ready_.empty() ? nullptr : &ready_.front();
  }
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
