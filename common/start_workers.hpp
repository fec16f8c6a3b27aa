#pragma once
// start_workers(): how a server starts a fixed pool of workers (threaded --pool threads, forked
// --prefork processes, evented --loops threads if it wanted): one after the other, and on the
// first the kernel refuses, a clear line on stderr ("cannot create pool thread 3 of 256:
// Resource temporarily unavailable") and false, so the server stops what it started and exits
// with status 1 instead of serving with part of its pool.
//
// Thread: the caller's (the server's main thread); start() runs there.
#include <cerrno>
#include <cstring>

#include "log.hpp"

namespace shootout {

// Calls start() `count` times; start() returns false, with errno set, when a worker could not
// be started. `what` names one worker after "cannot " ("fork pool process").
template <class Start>
bool start_workers(int count, const char* what, Start start) {
  for (int i = 0; i < count; ++i) {
    if (start()) continue;
    log_line("cannot {} {} of {}: {}", what, i + 1, count, std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace shootout
