#pragma once
// The forked model: a process per connection (the classic fork-after-accept server), or with
// --prefork N a fixed pool of N processes that each accept and serve one connection at a time
// (Apache's prefork MPM). Blocking work runs inline in the connection's process.
#include "handler.hpp"
#include "serve_options.hpp"

namespace shootout {
// Main thread. Returns the exit code once a stop signal has drained every child.
int run_forked(const ServeOptions& options, const Handler& handler);
}  // namespace shootout
