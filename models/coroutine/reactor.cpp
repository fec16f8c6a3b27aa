#include "reactor.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <system_error>
#include <utility>

#include "log.hpp"
#include "trace.hpp"

namespace shootout {

namespace {

constexpr std::size_t kReadBuffer = 16 * 1024;  // as BlockingSocketIo's, for a fair comparison
// How late a read or write timeout may fire: the deadline list is scanned at most this often.
constexpr auto kSweepEvery = std::chrono::milliseconds(100);

// poll() timeout for a fiber deadline: -1 for none, never negative, rounded up so that a
// deadline 0.3 ms away does not turn into a busy 0 ms wait.
int timeout_ms(FiberClock::time_point deadline) {
  if (deadline == FiberClock::time_point::max()) return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - FiberClock::now());
  if (left.count() <= 0) return 0;
  return left.count() > INT_MAX ? INT_MAX : static_cast<int>(left.count());
}

}  // namespace

// --- Parker ---------------------------------------------------------------------------------

void Parker::park() {
  NoLock lock;
  cv_.wait(lock, [this] { return fired_; });
}

void Parker::fire() {
  fired_ = true;
  cv_.notify_one();
}

// --- Reactor --------------------------------------------------------------------------------

Reactor::Reactor(std::string_view backend)
    : poller_(Poller::create(backend)), read_buffer_(kReadBuffer) {
  if (int rc = poller_->add(mailbox_.fd(), kReadable); rc != 0)
    throw std::system_error(rc, std::generic_category(), "watching the eventfd");
}

Reactor::~Reactor() {
  poller_->bind_to_this_thread();  // its scheduler thread has ended: the destroying thread owns it
  poller_->remove(mailbox_.fd());
}

void Reactor::bind_to_this_thread() {
  owner_.bind();
  poller_->bind_to_this_thread();
}

Reactor::Watch& Reactor::watch(int fd) {
  if (static_cast<std::size_t>(fd) >= watches_.size())
    watches_.resize(static_cast<std::size_t>(fd) + 1 + watches_.size() / 2);
  return watches_[static_cast<std::size_t>(fd)];
}

bool Reactor::arm(int fd, Watch& w, std::uint32_t event) {
  if (w.armed & event) return true;  // still armed from an earlier wait: no system call
  const std::uint32_t want = w.armed | event;
  int rc = w.registered ? poller_->modify(fd, want) : poller_->add(fd, want);
  if (rc != 0) {
    static RateLimit rl;
    if (rl.allow()) log_line("cannot watch descriptor {}: {}", fd, std::strerror(rc));
    return false;
  }
  w.registered = true;
  w.armed = want;
  return true;
}

bool Reactor::wait(int fd, std::uint32_t event, FiberClock::time_point deadline) {
  owner_.check("Reactor::wait");
  Watch& w = watch(fd);
  if (!arm(fd, w, event)) return false;
  Parker parker;
  (event == kReadable ? w.reader : w.writer) = &parker;
  if (deadline != FiberClock::time_point::max()) {
    parker.deadline_ = deadline;
    parker.fd_ = fd;
    parker.event_ = event;
    link_deadline(parker);
  }
  parker.park();
  if (parker.linked_) unlink_deadline(parker);  // woken by readiness or the stop sweep
  // The stop sweep and expire() clear the slot; readiness too. Index again: watches_ may have
  // grown while we were parked.
  Parker*& slot = event == kReadable ? watches_[static_cast<std::size_t>(fd)].reader
                                     : watches_[static_cast<std::size_t>(fd)].writer;
  if (slot == &parker) slot = nullptr;
  return !parker.timed_out();
}

void Reactor::link_deadline(Parker& p) {
  p.linked_ = true;
  p.prev_ = nullptr;
  p.next_ = deadlines_;
  if (deadlines_) deadlines_->prev_ = &p;
  deadlines_ = &p;
  if (p.deadline_ < due_) due_ = p.deadline_;
}

void Reactor::unlink_deadline(Parker& p) {
  if (p.prev_)
    p.prev_->next_ = p.next_;
  else
    deadlines_ = p.next_;
  if (p.next_) p.next_->prev_ = p.prev_;
  p.linked_ = false;
  p.prev_ = p.next_ = nullptr;
}

// The dispatcher, after a poll once due_ has passed: fires every parker whose deadline has
// passed (its wait() returns false) and recomputes due_ from the ones left.
void Reactor::expire(FiberClock::time_point now) {
  last_sweep_ = now;
  due_ = FiberClock::time_point::max();
  for (Parker* p = deadlines_; p;) {
    Parker* next = p->next_;
    if (p->fired_) {
      // Readiness won the race in this very poll: its wait() succeeds and unlinks it.
    } else if (p->deadline_ <= now) {
      unlink_deadline(*p);
      Watch& w = watches_[static_cast<std::size_t>(p->fd_)];
      Parker*& slot = p->event_ == kReadable ? w.reader : w.writer;
      if (slot == p) slot = nullptr;  // readiness arriving later must not fire it again
      p->timed_out_ = true;
      p->fire();
    } else if (p->deadline_ < due_) {
      due_ = p->deadline_;
    }
    p = next;
  }
}

void Reactor::forget(int fd) {
  owner_.check("Reactor::forget");
  if (static_cast<std::size_t>(fd) >= watches_.size()) return;
  Watch& w = watches_[static_cast<std::size_t>(fd)];
  if (w.registered) poller_->closing(fd);  // the caller closes fd next
  w = Watch{};
}

void Reactor::poll(FiberClock::time_point deadline) {
  owner_.check("Reactor::poll");
  // The next deadline sweep, no sooner than kSweepEvery after the last: when nothing waits with
  // a deadline, due_ is max() and an idle server sleeps until a descriptor or Boost timer.
  FiberClock::time_point sweep_at = FiberClock::time_point::max();
  if (deadlines_) sweep_at = std::max(due_, last_sweep_ + kSweepEvery);
  // Traced: the wait with the timeout chosen and the events returned (the fibers it wakes run
  // afterwards, each a "fiber" slice: ReactorScheduler::pick_next).
  trace::Span span("poll");
  const int timeout = timeout_ms(std::min(deadline, sweep_at));
  {
    trace::Span wait("wait", "kernel");
    poller_->wait(ready_, timeout);
  }
  span.arg("timeout_ms", timeout);
  span.arg("events", static_cast<std::int64_t>(ready_.size()));
  for (const PollEvent& ev : ready_) {
    if (ev.fd == mailbox_.fd())
      take_wakeups();
    else
      dispatch(ev);
  }
  if (deadlines_ && sweep_at != FiberClock::time_point::max()) {
    const auto now = FiberClock::now();
    if (now >= sweep_at) expire(now);
  }
}

// One ready descriptor: wake its waiters, then drop the interest nobody waits for.
void Reactor::dispatch(const PollEvent& ev) {
  Watch& w = watches_[static_cast<std::size_t>(ev.fd)];
  const bool hangup = (ev.events & kHangup) != 0;
  const bool readable = hangup || (ev.events & kReadable);
  const bool writable = hangup || (ev.events & kWritable);
  Parker* reader = readable ? std::exchange(w.reader, nullptr) : nullptr;
  Parker* writer = writable ? std::exchange(w.writer, nullptr) : nullptr;
  std::uint32_t keep = w.armed;
  if (writable) keep &= ~std::uint32_t{kWritable};
  if (readable && !reader) keep &= ~std::uint32_t{kReadable};
  if (hangup && !reader && !writer) {
    poller_->remove(ev.fd);  // else a level-triggered hang-up is reported forever
    w.registered = false;
    w.armed = 0;
  } else if (keep != w.armed) {
    poller_->modify(ev.fd, keep);
    w.armed = keep;
  }
  if (reader) reader->fire();
  if (writer) writer->fire();
}

// The eventfd fired: parkers posted by other threads, and perhaps the stop.
void Reactor::take_wakeups() {
  mailbox_.take(posted_);
  for (Parker* p : posted_) p->fire();
  if (stop_requested_.load(std::memory_order_relaxed) && !swept_) sweep_readers();
}

// Once, at stop: every parked reader wakes, sees stopping() and leaves.
void Reactor::sweep_readers() {
  swept_ = true;
  for (Watch& w : watches_)
    if (w.reader) std::exchange(w.reader, nullptr)->fire();
}

void Reactor::wake() { mailbox_.wake(); }

void Reactor::request_stop() {
  stop_requested_.store(true, std::memory_order_relaxed);
  wake();  // the write orders the store before the poll that reads the eventfd
}

void Reactor::post(Parker* parker) { mailbox_.post(parker); }

}  // namespace shootout
