#pragma once
// Mailbox<T>: how other threads hand items to one owner thread that sleeps in a poller (an event
// loop, a fiber scheduler's reactor), libuv's uv_async_send in one class.
//
//   any thread                          owner thread
//   post(item): push under the lock;    poller reports fd() readable
//   write the eventfd only if the   --> take(into): reset the eventfd, then swap the items out
//   box was empty                       under the lock; handle them outside it
//
// One wake-up per batch: a post that finds the box non-empty does not write the eventfd, since
// the owner has a wake-up coming already and will take this item with the others (take() resets
// the eventfd *before* the swap, so no item is ever left behind without a wake-up). take()
// swaps vectors, so the box and the owner's scratch vector keep their capacity: a steady stream
// of posts allocates nothing.
//
// Threads: post() and wake() from any thread; fd() and take() from the owner thread only. Owns
// the eventfd.
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

namespace shootout {

// The eventfd under a Mailbox (non-template, in mailbox.cpp).
class WakeFd {
 public:
  WakeFd();  // throws std::system_error if eventfd fails
  ~WakeFd();
  WakeFd(const WakeFd&) = delete;
  WakeFd& operator=(const WakeFd&) = delete;

  int fd() const { return fd_; }
  void wake();   // any thread: make fd() readable
  void reset();  // owner: make fd() not readable until the next wake()

 private:
  int fd_;
};

template <class T>
class Mailbox {
 public:
  // Watch for kReadable in the owner's poller.
  int fd() const { return wake_.fd(); }

  // Any thread: queue an item and wake the owner if it has no wake-up coming.
  void post(T item) {
    bool was_empty;
    {
      std::lock_guard lock(mu_);
      was_empty = items_.empty();
      items_.push_back(std::move(item));
    }
    if (was_empty) wake_.wake();
  }

  // Any thread: wake the owner with nothing queued (a stop request it reads elsewhere).
  void wake() { wake_.wake(); }

  // Owner thread, when fd() is readable: every item queued so far, in `into` (cleared first).
  void take(std::vector<T>& into) {
    wake_.reset();
    into.clear();
    std::lock_guard lock(mu_);
    into.swap(items_);
  }

 private:
  WakeFd wake_;
  std::mutex mu_;
  std::vector<T> items_;  // guarded by mu_
};

}  // namespace shootout
