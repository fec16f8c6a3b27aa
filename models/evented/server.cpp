// The evented model's set-up and shutdown: run_loops() (common/run_loops.hpp) with the epoll,
// poll or select EventLoop. The interesting part is the loop (loop.hpp).
#include "server.hpp"

#include "evented/loop.hpp"
#include "run_loops.hpp"

namespace shootout {

int run_evented(const ServeOptions& options, const Handler& handler) {
  return run_loops<EventLoop>(options, handler);
}

}  // namespace shootout
