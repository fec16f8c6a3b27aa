#pragma once
// ReactorScheduler: a Boost.Fiber scheduling algorithm whose idle path is the Reactor.
//
// The executor half of the scheduler: a round-robin ready queue. Boost.Fiber's dispatcher runs
// the ready fibers in turn; when none is left it calls suspend_until() with the nearest
// deadline of its sleep queue (a fiber in sleep_for; read and write timeouts are on the
// Reactor's own deadline list instead), and we spend that time in the reactor's epoll_wait.
// A fiber made ready from another thread (the dispatcher calls notify()) interrupts the wait
// through the reactor's eventfd. So an idle server sleeps in the kernel and uses no CPU, and a
// busy one makes no system call between fibers.
//
// With --trace, each fiber's run on this thread, from the switch to it to the next pick_next(),
// is a "fiber" span (common/trace.hpp): the slices show who ran and who starved.
//
// Threads: install once per thread, before any other fiber operation there:
//   boost::fibers::use_scheduling_algorithm<ReactorScheduler>(reactor);
// Boost 1.74 has one scheduler per thread here; fibers never migrate. notify() may be called
// from any thread, everything else by the owning thread's dispatcher. The Reactor must outlive
// the thread (the scheduler is destroyed at thread exit).
#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/scheduler.hpp>

#include "reactor.hpp"
#include "tsan_fibers.hpp"

namespace shootout {

class ReactorScheduler final : public boost::fibers::algo::algorithm {
 public:
  explicit ReactorScheduler(Reactor& reactor) : reactor_(reactor) {}
  ReactorScheduler(const ReactorScheduler&) = delete;
  ReactorScheduler& operator=(const ReactorScheduler&) = delete;

  void awakened(boost::fibers::context* ctx) noexcept override;
  SHOOTOUT_NO_TSAN boost::fibers::context* pick_next() noexcept override;
  bool has_ready_fibers() const noexcept override { return !ready_.empty(); }
  void suspend_until(const FiberClock::time_point& deadline) noexcept override;
  void notify() noexcept override { reactor_.wake(); }

 private:
  boost::fibers::scheduler::ready_queue_type ready_;
  Reactor& reactor_;
  // --trace: the fiber running since slice_start_ (0: none), recorded as a "fiber" span when
  // the next pick_next() switches away from it.
  std::int64_t slice_start_ = 0;
  const void* slice_fiber_ = nullptr;
  TsanFibers tsan_;  // ThreadSanitizer builds: announces each switch (tsan_fibers.hpp)
};

}  // namespace shootout
