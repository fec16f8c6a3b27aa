#include "fiber_socket_io.hpp"

#include <sys/socket.h>

#include <boost/fiber/operations.hpp>
#include <cerrno>

#include "trace.hpp"
#include "work_pool.hpp"

namespace shootout {

std::string_view FiberSocketIo::read(std::chrono::milliseconds timeout) {
  std::span<char> buf = reactor_.read_buffer();
  FiberClock::time_point deadline{};  // taken when we first park: most reads never need it
  // The last read emptied the socket (it returned less than a buffer): then a recv now would
  // almost always say EAGAIN (a keep-alive client waits for our response before it sends), so
  // park first. Readiness is level-triggered, so bytes that did arrive meanwhile wake us at once.
  bool park_first = drained_;
  for (;;) {
    if (!park_first) {
      ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n > 0) {
        drained_ = static_cast<std::size_t>(n) < buf.size();
        return {buf.data(), static_cast<std::size_t>(n)};
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return {};  // EOF, reset
    }
    park_first = false;
    // Nothing yet. At shutdown an idle (or half-received) connection ends here, as a thread's
    // read ends on SHUT_RD in the threaded model.
    if (reactor_.stopping()) return {};
    if (deadline == FiberClock::time_point{}) deadline = FiberClock::now() + timeout;
    if (!reactor_.wait(fd_, kReadable, deadline)) return {};  // timed out
  }
}

bool FiberSocketIo::write(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return false;  // reset, EPIPE
    // The socket buffer is full: park until it drains, for at most send_timeout per stall.
    if (!reactor_.wait(fd_, kWritable, FiberClock::now() + send_timeout_)) return false;
  }
  return true;
}

WorkResult FiberSocketIo::work(const Work& w) {
  if (w.kind == Work::Kind::sleep) {
    boost::this_fiber::sleep_for(w.amount);  // a scheduler timer: the thread runs other fibers
    return {};
  }
  if (pool_) return pool_->run(w, reactor_);
  trace::Span span("inline work", "work");
  return run_work_inline(w);  // the whole thread (every fiber on it) waits for this
}

}  // namespace shootout
