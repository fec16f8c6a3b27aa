#pragma once
// StackCache: the default fiber stacks (--stack protected): mmap'ed, with a PROT_NONE guard
// page below each, and kept for reuse when their fiber ends.
//
// Why keep them: Boost's protected_fixedsize_stack costs three system calls per connection
// (mmap, mprotect, munmap), and the munmap also flushes the TLB. Under connection churn (10,000
// clients connecting at once) that was a tenth of the model's CPU per request. A fiber that ends
// here hands its stack to a free list instead, and the next connection takes it with no system
// call. At most `keep` stacks wait there; past that they are unmapped. A cached stack keeps the
// pages its last fiber touched (one or two), so the cache holds at most keep x 8 KiB resident.
//
// ProtectedStack is the allocator handed to boost::fibers::fiber: a pointer, copied into every
// fiber, to the StackCache that owns the stacks.
//
// Threads: one scheduler thread. Fibers never migrate, so a stack is allocated and released
// (when the fiber ends) on the thread that owns the cache; no locking. The cache must outlive
// every fiber whose stack came from it; its destructor unmaps what it holds.
#include <boost/context/stack_context.hpp>
#include <cstddef>
#include <vector>

namespace shootout {

class StackCache {
 public:
  // size: usable bytes (rounded up to whole pages); the guard page comes on top.
  explicit StackCache(std::size_t size, std::size_t keep = 1024);
  ~StackCache();
  StackCache(const StackCache&) = delete;
  StackCache& operator=(const StackCache&) = delete;

  // Throws std::bad_alloc when the kernel has no memory (or mappings) left.
  boost::context::stack_context allocate();
  void deallocate(boost::context::stack_context& sctx) noexcept;

 private:
  std::size_t mapping_;  // bytes per mapping, guard page included
  std::size_t keep_;
  std::vector<void*> free_;  // bases of the mappings ready for reuse
};

// The Boost.Fiber StackAllocator concept over a StackCache.
class ProtectedStack {
 public:
  explicit ProtectedStack(StackCache& cache) : cache_(&cache) {}
  boost::context::stack_context allocate() { return cache_->allocate(); }
  void deallocate(boost::context::stack_context& sctx) noexcept { cache_->deallocate(sctx); }

 private:
  StackCache* cache_;
};

}  // namespace shootout
