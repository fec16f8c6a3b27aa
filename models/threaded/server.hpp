#pragma once
// The threaded model: a thread per connection (Apache-style), or with --pool N a fixed pool of
// N threads that each accept and serve one connection at a time (Apache's worker MPM).
// Blocking work runs inline on the connection's thread.
#include "handler.hpp"
#include "serve_options.hpp"

namespace shootout {
// Main thread. Returns the exit code once a stop signal has drained every connection.
int run_threaded(const ServeOptions& options, const Handler& handler);
}  // namespace shootout
