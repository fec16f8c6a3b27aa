#pragma once
// OwnerThread: a header's "loop thread only", checked. In builds with SHOOTOUT_CHECK_THREADS
// (Debug builds, and the ASan and TSan builds of scripts/sanitize.sh) an object remembers the
// thread that owns it and aborts, naming the member, when another thread calls a member that is
// the owner's only. In Release it is an empty member and check() compiles to nothing.
//
// Ownership starts with bind(), called by the owner when it starts running the object (an event
// loop's run(), a scheduler thread's first step): set-up before that (constructing a loop on
// the main thread, watching a descriptor before the loop's thread starts) is not checked. A
// later bind() hands the object to the calling thread.
//
// Threads: bind() and check() from any thread; check() is what says whether that was allowed.
#include <atomic>
#include <cstdio>
#include <cstdlib>

#if !defined(SHOOTOUT_CHECK_THREADS) && !defined(NDEBUG)
#define SHOOTOUT_CHECK_THREADS 1
#endif

#if SHOOTOUT_CHECK_THREADS
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace shootout {

#if SHOOTOUT_CHECK_THREADS

class OwnerThread {
 public:
  void bind() { owner_.store(self(), std::memory_order_relaxed); }
  // Aborts if the object is bound to another thread. `what` names the member ("EventLoop::adopt").
  void check(const char* what) const {
    const pid_t owner = owner_.load(std::memory_order_relaxed);
    if (owner == 0 || owner == self()) return;
    std::fprintf(stderr, "shootout: %s called on thread %d; only its owner, thread %d, may\n", what,
                 static_cast<int>(self()), static_cast<int>(owner));
    std::abort();
  }

 private:
  static pid_t self() {
    thread_local const pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
    return tid;
  }
  std::atomic<pid_t> owner_{0};
};

#else

class OwnerThread {
 public:
  void bind() {}
  void check(const char*) const {}
};

#endif

}  // namespace shootout
