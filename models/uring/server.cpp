// The uring model's set-up and shutdown: run_loops() (common/run_loops.hpp) with the io_uring
// loop, once this kernel has been found to run it. The interesting part is the loop (loop.hpp).
#include "server.hpp"

#include <fmt/format.h>

#include <cstdio>

#include "run_loops.hpp"
#include "uring/loop.hpp"

namespace shootout {

int run_uring(const ServeOptions& options, const Handler& handler) {
  if (const std::string& why = uring_unavailable(); !why.empty()) {
    fmt::print(stderr, "shootout serve: --model uring cannot run here: {}\n", why);
    return 2;
  }
  return run_loops<UringLoop>(options, handler);
}

}  // namespace shootout
