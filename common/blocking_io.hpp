#pragma once
// BlockingSocketIo: the Io of serve_connection() for a blocking socket owned by one thread or
// process (threaded and forked models). Blocking work runs inline: the thread (or process)
// sleeps, burns CPU or reads the file itself, and its connection waits meanwhile.
//
// Timeouts use SO_RCVTIMEO (and SO_SNDTIMEO for a reader that stalls), set only when the wanted
// timeout changes, so the usual request costs one read(2) and one write(2) and no extra system
// call.
//
// Thread: the connection's owner only. Does not own the fd (the caller closes it).
#include <atomic>
#include <chrono>
#include <string_view>

#include "handler.hpp"
#include "serve_options.hpp"

namespace shootout {

class BlockingSocketIo {
 public:
  // send_timeout bounds how long a write may make no progress (a client that stopped reading).
  BlockingSocketIo(int fd, const std::atomic<bool>& stopping,
                   std::chrono::milliseconds send_timeout);

  std::string_view read(std::chrono::milliseconds timeout);
  bool write(std::string_view data);
  WorkResult work(const Work& w) { return run_work_inline(w); }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }

 private:
  int fd_;
  const std::atomic<bool>& stopping_;
  std::chrono::milliseconds timeout_set_{0};  // SO_RCVTIMEO now on the socket (0 = none)
  char buf_[16 * 1024];
};

// The whole of a connection in the threaded and forked models: serve_accepted() and
// serve_connection() over a BlockingSocketIo on fd, until the connection ends or `stopping`
// rises while it is idle. The caller closes fd.
void serve_blocking(int fd, const Handler& handler, const ServeOptions& options,
                    const std::atomic<bool>& stopping) noexcept;

}  // namespace shootout
