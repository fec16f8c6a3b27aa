#include "stack_cache.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <new>

namespace shootout {

namespace {

std::size_t page_size() {
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

}  // namespace

StackCache::StackCache(std::size_t size, std::size_t keep)
    : mapping_(((size + page_size() - 1) / page_size() + 1) * page_size()), keep_(keep) {
  free_.reserve(keep_);
}

StackCache::~StackCache() {
  for (void* base : free_) ::munmap(base, mapping_);
}

boost::context::stack_context StackCache::allocate() {
  void* base = nullptr;
  if (!free_.empty()) {
    base = free_.back();
    free_.pop_back();
  } else {
    base = ::mmap(nullptr, mapping_, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) throw std::bad_alloc();
    // The guard: the stack grows down into this page and faults instead of into a neighbour.
    if (::mprotect(base, page_size(), PROT_NONE) != 0) {
      ::munmap(base, mapping_);
      throw std::bad_alloc();
    }
  }
  boost::context::stack_context sctx;
  sctx.size = mapping_;
  sctx.sp = static_cast<char*>(base) + mapping_;
  return sctx;
}

void StackCache::deallocate(boost::context::stack_context& sctx) noexcept {
  void* base = static_cast<char*>(sctx.sp) - sctx.size;
  if (free_.size() < keep_)
    free_.push_back(base);
  else
    ::munmap(base, mapping_);
}

}  // namespace shootout
