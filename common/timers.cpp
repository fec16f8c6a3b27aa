#include "timers.hpp"

#include <algorithm>

namespace shootout {

// std::*_heap keep the *largest* element on top; ordering by "later" puts the earliest there.
// Equal due times run in the order they were added (smaller id first).
bool TimerHeap::later(const Entry& a, const Entry& b) {
  return a.due > b.due || (a.due == b.due && a.id > b.id);
}

TimerHeap::Id TimerHeap::add(std::int64_t due_ms, std::function<void()> fn) {
  owner_.check("TimerHeap::add");
  Id id = next_id_++;
  callbacks_.emplace(id, std::move(fn));
  heap_.push_back({due_ms, id});
  std::push_heap(heap_.begin(), heap_.end(), later);
  return id;
}

void TimerHeap::cancel(Id id) {
  owner_.check("TimerHeap::cancel");
  callbacks_.erase(id);
  // Lazy deletion leaves the entry in the heap. If cancelled entries come to dominate (many
  // long timers cancelled early), rebuild so the heap stays proportional to live timers.
  if (heap_.size() > 64 && heap_.size() > 4 * callbacks_.size()) {
    std::erase_if(heap_, [&](const Entry& e) { return !callbacks_.contains(e.id); });
    std::make_heap(heap_.begin(), heap_.end(), later);
  }
}

void TimerHeap::drop_cancelled_top() {
  while (!heap_.empty() && !callbacks_.contains(heap_.front().id)) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    heap_.pop_back();
  }
}

std::optional<std::int64_t> TimerHeap::next_due() {
  drop_cancelled_top();
  if (heap_.empty()) return std::nullopt;
  return heap_.front().due;
}

void TimerHeap::run_due(std::int64_t now) {
  owner_.check("TimerHeap::run_due");
  // Collect first, then run: a callback may add or cancel timers without disturbing the walk.
  due_.clear();
  for (drop_cancelled_top(); !heap_.empty() && heap_.front().due <= now; drop_cancelled_top()) {
    auto it = callbacks_.find(heap_.front().id);
    due_.push_back(std::move(it->second));
    callbacks_.erase(it);
    std::pop_heap(heap_.begin(), heap_.end(), later);
    heap_.pop_back();
  }
  for (auto& fn : due_) fn();
  due_.clear();
}

void DeadlineList::arm(DeadlineLink& link, std::int64_t now) {
  disarm(link);
  link.due = now + duration_;
  link.owner = this;
  link.prev = tail_;
  link.next = nullptr;
  (tail_ ? tail_->next : head_) = &link;
  tail_ = &link;
}

void DeadlineList::disarm(DeadlineLink& link) {
  DeadlineList* list = link.owner;
  if (!list) return;
  (link.prev ? link.prev->next : list->head_) = link.next;
  (link.next ? link.next->prev : list->tail_) = link.prev;
  link.prev = link.next = nullptr;
  link.owner = nullptr;
}

DeadlineLink* DeadlineList::pop_due(std::int64_t now) {
  if (!head_ || head_->due > now) return nullptr;
  DeadlineLink* link = head_;
  disarm(*link);
  return link;
}

std::optional<std::int64_t> DeadlineList::next_due() const {
  if (!head_) return std::nullopt;
  return head_->due;
}

}  // namespace shootout
