#include "run_loops.hpp"

#include "trace.hpp"

namespace shootout {

std::vector<int> open_loop_listeners(const ServeOptions& options) {
  // SO_REUSEPORT with several loops, or in a --workers worker (the master and the other workers
  // hold the same port).
  ListenSpec spec{options.host, options.port, options.backlog,
                  options.loops > 1 || options.workers > 1, true};
  std::vector<int> fds;
  try {
    for (int i = 0; i < options.loops; ++i) {
      fds.push_back(open_listener(spec));
      spec.port = local_port(fds.front());
    }
  } catch (...) {
    for (int fd : fds) ::close(fd);
    throw;
  }
  return fds;
}

void leave_after_grace(const ServeOptions& options) {
  if (!options.stats_file.empty()) write_stats_file(options.stats_file, options.model);
  trace::write();
  std::fflush(stdout);
  _exit(1);
}

}  // namespace shootout
