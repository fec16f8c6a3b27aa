#pragma once
// The evented model: non-blocking sockets on one event-loop thread (or --loops N loops on N
// threads, each with its own SO_REUSEPORT listener, like nginx's worker processes), readiness
// from --poller epoll|poll|select, blocking work on a helper pool (--pool-threads). See
// docs/EVENTED.md.
#include "handler.hpp"
#include "serve_options.hpp"

namespace shootout {
// Main thread. Returns the exit code once a stop signal has drained every loop (0), or 1 if
// the grace period ran out. Throws std::system_error at set-up (bind, epoll, eventfd, threads).
int run_evented(const ServeOptions& options, const Handler& handler);
}  // namespace shootout
