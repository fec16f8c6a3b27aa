#pragma once
// Reactor: the half of a fiber scheduler that talks to the kernel and sleeps.
//
// A fiber that cannot go on (its socket would block, it waits for the helper pool) parks on a
// Parker. The reactor remembers which Parker waits on which descriptor, and when every fiber of
// its thread is parked the scheduler (ReactorScheduler::suspend_until) calls poll(): one wait on
// the poller until the nearest Boost timer (/sleep) or the next deadline sweep, then it fires the
// Parkers of whatever became ready and, when one is due, sweeps the deadline list: read and
// write timeouts are enforced here, coarsely (up to 100 ms late), not by Boost.Fiber's sleep
// queue. The executor half, the ready queue, is ReactorScheduler.
//
// Interest is changed lazily. A descriptor stays armed for reading while its fiber is busy, so a
// keep-alive request costs no epoll_ctl; when readiness arrives and no fiber waits for it (the
// fiber is asleep in /sleep, say), that interest is disarmed then, once, because a
// level-triggered poller would otherwise report it on every wait and the thread would spin.
// Writability is disarmed as soon as it has woken its writer (sockets are nearly always
// writable). A hang-up nobody waits for removes the descriptor from the poller altogether.
//
// Threads: a Reactor belongs to one scheduler thread. wait(), forget(), read_buffer() are
// called by fibers of that thread and poll() by its dispatcher; wake(), request_stop(), post()
// and stopping() may be called from any thread. Owns the poller and the mailbox, not the
// watched descriptors.
#include <atomic>
#include <boost/fiber/condition_variable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "mailbox.hpp"
#include "owner_thread.hpp"
#include "poller.hpp"

namespace shootout {

using FiberClock = std::chrono::steady_clock;

// One parked fiber. Lives on that fiber's stack while it waits; fired by its own thread.
// A park has no Boost.Fiber deadline (that would put the fiber in Boost's sleep queue, an
// ordered tree, on every park): a timed wait is on the Reactor's deadline list instead, and the
// Reactor's coarse sweep fires it with timed_out() set.
class Parker {
 public:
  // Fiber: parks the calling fiber (its thread runs others) until fire().
  void park();
  // The parker's thread (a fiber or the dispatcher): makes the parked fiber ready.
  void fire();
  bool timed_out() const { return timed_out_; }

 private:
  friend class Reactor;
  // A fiber condition variable needs a lock; one scheduler thread needs no real one.
  struct NoLock {
    void lock() {}
    void unlock() {}
  };
  boost::fibers::condition_variable_any cv_;
  bool fired_ = false;
  bool timed_out_ = false;
  // The Reactor's deadline list (intrusive, unordered): set while a timed wait() is parked.
  bool linked_ = false;
  Parker* prev_ = nullptr;
  Parker* next_ = nullptr;
  FiberClock::time_point deadline_{};
  int fd_ = -1;  // what it waits for, so that a timeout can clear the watch slot
  std::uint32_t event_ = 0;
};

class Reactor {
 public:
  // Set-up: throws std::system_error if the poller or the eventfd cannot be created.
  explicit Reactor(std::string_view backend = "epoll");
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Fiber: parks until fd is ready for `event` (kReadable or kWritable) or hangs up, or until
  // `deadline`, or (readers) until the stop sweep. Returns false on timeout or if the poller
  // refused the descriptor; true means "try the system call again".
  bool wait(int fd, std::uint32_t event, FiberClock::time_point deadline);
  // Fiber: forgets fd (and takes it off the poller). Call just before close(fd), and only
  // for a descriptor never dup()ed: epoll relies on the close to drop it.
  void forget(int fd);
  // Fiber: this thread's read buffer. Bytes read into it must be consumed before the fiber
  // parks again (serve_connection feeds them to on_input at once, so they are).
  std::span<char> read_buffer() {
    owner_.check("Reactor::read_buffer");
    return read_buffer_;
  }

  // The scheduler thread, first thing: from then on the calls above (and the poller's) from
  // another thread abort in builds that check threads (common/owner_thread.hpp).
  void bind_to_this_thread();

  // Dispatcher: waits for readiness, a wake(), `deadline` (Boost's own timers: /sleep) or the
  // next deadline sweep, then fires what is due.
  void poll(FiberClock::time_point deadline);

  // Any thread: interrupts the current or next poll().
  void wake();
  // Any thread: asks this reactor's thread to stop. Its next poll() fires every parked reader
  // (idle connections close, the acceptor leaves); writers, sleepers and pool waiters go on.
  void request_stop();
  bool stopping() const { return stop_requested_.load(std::memory_order_relaxed); }
  // Any thread: fires `parker` on this reactor's thread (how the helper pool hands back a
  // result). The parker must stay alive until it has been fired.
  void post(Parker* parker);

 private:
  struct Watch {
    Parker* reader = nullptr;
    Parker* writer = nullptr;
    std::uint32_t armed = 0;  // interest the poller has for this fd
    bool registered = false;  // the poller knows the fd at all
  };
  Watch& watch(int fd);
  bool arm(int fd, Watch& w, std::uint32_t event);
  void dispatch(const PollEvent& ev);
  void take_wakeups();
  void sweep_readers();
  void link_deadline(Parker& p);
  void unlink_deadline(Parker& p);
  void expire(FiberClock::time_point now);

  [[no_unique_address]] OwnerThread owner_;
  std::unique_ptr<Poller> poller_;
  Mailbox<Parker*> mailbox_;      // post(); its eventfd also carries wake() and request_stop()
  std::vector<Parker*> posted_;   // take_wakeups()' scratch, keeps its capacity
  std::vector<Watch> watches_;    // by descriptor number
  std::vector<PollEvent> ready_;  // poll()'s output, reused
  std::vector<char> read_buffer_;
  // Timed waits. Scanned whole, at most every kSweepEvery, and only once the earliest deadline
  // inserted since the last scan (due_) has passed: so a busy connection's park and wake cost a
  // list link and unlink, no system call, and timeouts fire up to kSweepEvery late.
  Parker* deadlines_ = nullptr;
  FiberClock::time_point due_ = FiberClock::time_point::max();
  FiberClock::time_point last_sweep_{};
  bool swept_ = false;  // the stop sweep has run (this thread only)
  std::atomic<bool> stop_requested_{false};
};

}  // namespace shootout
