#pragma once
// Timers of the event loops (evented, uring), in two shapes, both cancellable. Times are
// milliseconds on the loop's cached clock (EventLoop::now_, UringLoop::now_), which is rounded
// down: a timer is due once that clock reaches it, so a caller that rounds its due time up gets
// a timer that never fires early.
//
//   TimerHeap     one-shot timers at arbitrary times (/sleep, the accept pause). A binary
//                 min-heap of (due, id); cancel() forgets the callback and the heap entry is
//                 dropped when it surfaces (lazy deletion), so cancel is O(1) and add O(log n).
//   DeadlineList  many timers that all share one duration (the keep-alive idle timeout, the
//                 request timeout). Arming one always puts it last, so a FIFO list stays sorted
//                 by due time: arm, re-arm and cancel are O(1) pointer moves, and the next due
//                 timer is the head. The links live inside the timed object (intrusive): an
//                 idle connection pays 32 bytes for its timeout, with no allocation and no
//                 std::function.
//
// Thread: the owning loop's thread only. Neither class owns the objects it times.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <vector>

#include "owner_thread.hpp"

namespace shootout {

class TimerHeap {
 public:
  using Id = std::uint64_t;

  // Calls `fn` in the first run_due(now) with now >= due_ms. Returns an id for cancel().
  Id add(std::int64_t due_ms, std::function<void()> fn);
  // Forgets the timer; a no-op if it already ran or was cancelled.
  void cancel(Id id);
  // The earliest live due time, if any timer is live.
  std::optional<std::int64_t> next_due();
  // Runs every timer due at or before `now`, earliest first. Timers added by those callbacks
  // wait for the next call, even if already due (no starvation of the rest of the loop).
  void run_due(std::int64_t now);
  std::size_t live() const { return callbacks_.size(); }
  // The owning loop's thread, when it starts running (common/owner_thread.hpp).
  void bind_to_this_thread() { owner_.bind(); }

 private:
  struct Entry {
    std::int64_t due;
    Id id;
  };
  static bool later(const Entry& a, const Entry& b);
  void drop_cancelled_top();

  std::vector<Entry> heap_;  // std::push_heap/pop_heap order: earliest on top
  std::unordered_map<Id, std::function<void()>> callbacks_;  // live timers only
  Id next_id_ = 1;
  std::vector<std::function<void()>> due_;  // run_due's batch, reused
  [[no_unique_address]] OwnerThread owner_;
};

// The intrusive part of a timed object: derive from it (the loop's Conn does).
struct DeadlineLink {
  std::int64_t due = 0;
  DeadlineLink* prev = nullptr;
  DeadlineLink* next = nullptr;
  class DeadlineList* owner = nullptr;  // the list it is on, or nullptr
};

class DeadlineList {
 public:
  explicit DeadlineList(std::chrono::milliseconds duration) : duration_(duration.count()) {}
  DeadlineList(const DeadlineList&) = delete;
  DeadlineList& operator=(const DeadlineList&) = delete;

  // (Re-)arms `link` to fire at now + duration: unlinks it from whatever list it is on and
  // appends it here.
  void arm(DeadlineLink& link, std::int64_t now);
  // Takes `link` off its list, if any (any list: callers need not know which).
  static void disarm(DeadlineLink& link);
  // The head if it is due at or before `now` (the caller disarms or re-arms it), else nullptr.
  DeadlineLink* pop_due(std::int64_t now);
  std::optional<std::int64_t> next_due() const;

 private:
  std::int64_t duration_;
  DeadlineLink* head_ = nullptr;
  DeadlineLink* tail_ = nullptr;
};

}  // namespace shootout
