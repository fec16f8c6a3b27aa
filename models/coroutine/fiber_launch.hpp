#pragma once
// Starting a Boost.Fiber, from a translation unit that ThreadSanitizer does not instrument.
//
// Why a file of its own: the frames Boost.Fiber puts below a fiber's body (its entry trampoline,
// the fiber record's run(), worker_context::run_()) are templates, instantiated where the fiber
// is constructed. Instrumented, they corrupt TSan's shadow call stack, which does not follow
// stack switches: the trampoline's first jump back to the creator leaves one frame on the
// creator's shadow stack per fiber created (the acceptor's overflowed after some thousands of
// connections), and when an ended fiber is released, the frames that return on its stack are
// popped from the releasing fiber's shadow stack (which underflowed). Built without
// instrumentation (models/coroutine/CMakeLists.txt), those frames leave no trace, while the
// body, instrumented, runs as the fiber's own TSan fiber (tsan_fibers.hpp). In other builds
// this is an ordinary call.
//
// Threads: a scheduler thread, from a fiber or its main context (as boost::fibers::fiber).
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/fixedsize_stack.hpp>
#include <boost/fiber/pooled_fixedsize_stack.hpp>
#include <functional>
#include <variant>

#include "stack_cache.hpp"

namespace shootout {

// --stack: protected (mmap + a guard page, mappings reused: stack_cache.hpp), fixed (malloc),
// pooled (a free list of malloc'ed stacks, reused without going back to the allocator).
using StackAllocator = std::variant<ProtectedStack, boost::fibers::fixedsize_stack,
                                    boost::fibers::pooled_fixedsize_stack>;

// Starts a detached fiber running body() on a stack from `stacks`; it is queued and runs when
// the caller parks. Throws what Boost throws when there is no stack (std::bad_alloc,
// std::system_error).
void launch_detached_fiber(StackAllocator& stacks, std::function<void()> body);

// Starts a fiber running body() on Boost's default stack; the caller joins it.
boost::fibers::fiber launch_fiber(std::function<void()> body);

}  // namespace shootout
