// Compiled without TSan instrumentation: see fiber_launch.hpp. Keep it to these two calls.
#include "fiber_launch.hpp"

namespace shootout {

void launch_detached_fiber(StackAllocator& stacks, std::function<void()> body) {
  std::visit(
      [&](auto& alloc) {
        boost::fibers::fiber(std::allocator_arg, alloc, [fn = std::move(body)] { fn(); }).detach();
      },
      stacks);
}

boost::fibers::fiber launch_fiber(std::function<void()> body) {
  return boost::fibers::fiber([fn = std::move(body)] { fn(); });
}

}  // namespace shootout
