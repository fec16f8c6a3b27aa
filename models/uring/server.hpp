#pragma once
// The uring model: the evented model's loops, with completions from io_uring instead of
// readiness from epoll (one ring per loop, --loops N threads, SO_REUSEPORT listeners, the same
// helper pool). See docs/URING.md.
#include "handler.hpp"
#include "serve_options.hpp"

namespace shootout {
// Main thread. Returns the exit code once a stop signal has drained every loop (0), 1 if the
// grace period ran out, or 2 (with the reason on stderr) if io_uring cannot be used here.
// Throws std::system_error at set-up (bind, io_uring_setup, eventfd, threads).
int run_uring(const ServeOptions& options, const Handler& handler);
}  // namespace shootout
