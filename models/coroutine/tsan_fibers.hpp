#pragma once
// TsanFibers: tells ThreadSanitizer about Boost.Fiber's stack switches, so TSan sees each fiber
// as its own flow of control instead of taking every fiber for the thread that runs it.
//
// Why it is needed: Debian's Boost.Context 1.74 switches stacks in its own assembly (fcontext)
// and does not call __tsan_switch_to_fiber (later Boost versions can, built with
// BOOST_USE_TSAN). Without the announcement TSan keeps one shadow call stack per thread while
// the real stack changes under it, and reports false races between fibers.
//
// Where the switch is announced: in ReactorScheduler::pick_next(). In Boost.Fiber 1.74 every
// switch from one fiber to another goes through the scheduling algorithm's pick_next() (suspend,
// yield, wait_until, terminate, and the dispatcher's loop; the dispatcher is itself in the ready
// queue while a fiber runs), and the switch follows it with no instrumented code in between. The
// one exception is the dispatcher's last switch back to the thread's main context at shutdown,
// which the destructor announces. pick_next() is compiled without TSan instrumentation
// (SHOOTOUT_NO_TSAN): its function-exit event would otherwise be recorded after the switch, on
// the next fiber's shadow stack.
//
// Fibers switch on one thread with synchronisation (flag 0): fibers of one thread are ordered
// by their switches, as they really are. Races across threads are still found: between
// scheduler threads, the helper pool and the control thread.
//
// Threads: one per scheduler thread (a member of its ReactorScheduler), constructed on the
// thread's main context; every call on that thread. In builds without TSan it is empty and its
// calls compile to nothing.
#include <boost/fiber/context.hpp>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>

#include <unordered_map>
#define SHOOTOUT_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#define SHOOTOUT_NO_TSAN
#endif

namespace shootout {

#if defined(__SANITIZE_THREAD__)
class TsanFibers {
 public:
  TsanFibers()
      : main_ctx_(boost::fibers::context::active()), thread_fiber_(__tsan_get_current_fiber()) {
    fibers_.emplace(main_ctx_, thread_fiber_);
  }
  // On the main context once the dispatcher has ended (the scheduler is being destroyed).
  ~TsanFibers() {
    if (__tsan_get_current_fiber() != thread_fiber_) __tsan_switch_to_fiber(thread_fiber_, 0);
    for (auto& [ctx, fiber] : fibers_)
      if (fiber != thread_fiber_) __tsan_destroy_fiber(fiber);
  }
  TsanFibers(const TsanFibers&) = delete;
  TsanFibers& operator=(const TsanFibers&) = delete;

  // The running context is about to switch to `to`. Must be the last instrumented step before
  // the switch. A context that has terminated never runs again: its TSan fiber goes with it
  // (before Boost frees the context, whose address a new fiber may then reuse).
  SHOOTOUT_NO_TSAN void switching_to(boost::fibers::context* to) {
    boost::fibers::context* from = boost::fibers::context::active();
    if (to == nullptr || to == from) return;
    void*& fiber = fibers_[to];
    if (fiber == nullptr) fiber = __tsan_create_fiber(0);
    __tsan_switch_to_fiber(fiber, 0);
    if (from->terminated_is_linked()) {  // scheduler::terminate() queued it: it has ended
      auto it = fibers_.find(from);
      if (it != fibers_.end()) {
        __tsan_destroy_fiber(it->second);
        fibers_.erase(it);
      }
    }
  }

 private:
  boost::fibers::context* main_ctx_;
  void* thread_fiber_;
  std::unordered_map<boost::fibers::context*, void*> fibers_;
};
#else
class TsanFibers {
 public:
  void switching_to(boost::fibers::context*) {}
};
#endif

}  // namespace shootout
