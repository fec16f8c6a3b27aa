#pragma once
// The coroutine model: a Boost.Fiber per connection on an epoll-driven scheduler. Each
// connection's code is the threaded model's blocking loop (serve_connection); where a thread
// would block, the fiber parks and its thread runs other fibers. --threads N runs N schedulers
// on N threads with SO_REUSEPORT listeners; fibers never migrate. /sleep parks on a timer;
// /cpu and /file run inline (starving the thread's other fibers) unless --offload-cpu.
#include "handler.hpp"
#include "serve_options.hpp"

namespace shootout {
// Main thread. Returns the exit code once a stop signal has drained every connection.
int run_coroutine(const ServeOptions& options, const Handler& handler);
}  // namespace shootout
