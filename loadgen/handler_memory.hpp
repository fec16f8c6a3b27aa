#pragma once
// Recycled memory for Asio completion handlers, so the hot path never calls malloc.
//
// Asio allocates every pending operation (a wait, a connect, a timer wait) through the
// handler's associated allocator. A connection has at most one operation of each kind in
// flight, so the Asio engine (asio_engine.hpp) keeps one small HandlerSlot per kind for it and
// wraps each handler with `bind_slot(slot, handler)`: the operation is built inside the slot and
// the slot is free again once the handler has been invoked. An operation larger than the slot, or a
// second one while the slot is taken (which our state machine never does), falls back to operator
// new.
//
// Threads: a slot belongs to one connection (or to the engine's flush) and is used only by the
// thread running that engine's io_context.
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace shootout::load {

class HandlerSlot {
 public:
  HandlerSlot() = default;
  HandlerSlot(const HandlerSlot&) = delete;
  HandlerSlot& operator=(const HandlerSlot&) = delete;

  void* allocate(std::size_t size) {
    if (!in_use_ && size <= sizeof storage_) {
      in_use_ = true;
      return &storage_;
    }
    return ::operator new(size);
  }
  void deallocate(void* p) {
    if (p == static_cast<void*>(&storage_)) {
      in_use_ = false;
      return;
    }
    ::operator delete(p);
  }

 private:
  // Big enough for a reactive wait/connect op or a timer wait op holding a small handler.
  alignas(std::max_align_t) unsigned char storage_[256];
  bool in_use_ = false;
};

// A standard allocator over one HandlerSlot (what Asio's associated_allocator looks for).
template <typename T>
class SlotAllocator {
 public:
  using value_type = T;
  explicit SlotAllocator(HandlerSlot& slot) noexcept : slot_(&slot) {}
  template <typename U>
  SlotAllocator(const SlotAllocator<U>& other) noexcept : slot_(other.slot_) {}  // NOLINT

  T* allocate(std::size_t n) { return static_cast<T*>(slot_->allocate(sizeof(T) * n)); }
  void deallocate(T* p, std::size_t) { slot_->deallocate(p); }

  template <typename U>
  bool operator==(const SlotAllocator<U>& other) const noexcept {
    return slot_ == other.slot_;
  }
  template <typename U>
  bool operator!=(const SlotAllocator<U>& other) const noexcept {
    return slot_ != other.slot_;
  }

 private:
  template <typename>
  friend class SlotAllocator;
  HandlerSlot* slot_;
};

// A completion handler that carries its slot: Asio finds the allocator through the nested
// allocator_type and get_allocator().
template <typename Handler>
class SlotHandler {
 public:
  using allocator_type = SlotAllocator<void>;
  SlotHandler(HandlerSlot& slot, Handler h) : slot_(&slot), handler_(std::move(h)) {}
  allocator_type get_allocator() const noexcept { return allocator_type(*slot_); }
  template <typename... Args>
  void operator()(Args&&... args) {
    handler_(std::forward<Args>(args)...);
  }

 private:
  HandlerSlot* slot_;
  Handler handler_;
};

template <typename Handler>
SlotHandler<std::decay_t<Handler>> bind_slot(HandlerSlot& slot, Handler&& h) {
  return SlotHandler<std::decay_t<Handler>>(slot, std::forward<Handler>(h));
}

}  // namespace shootout::load
