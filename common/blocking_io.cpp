#include "blocking_io.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>

#include "serve_connection.hpp"

namespace shootout {

namespace {
timeval to_timeval(std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  return tv;
}
}  // namespace

BlockingSocketIo::BlockingSocketIo(int fd, const std::atomic<bool>& stopping,
                                   std::chrono::milliseconds send_timeout)
    : fd_(fd), stopping_(stopping) {
  timeval tv = to_timeval(send_timeout);
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string_view BlockingSocketIo::read(std::chrono::milliseconds timeout) {
  if (timeout != timeout_set_) {
    timeval tv = to_timeval(timeout);
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    timeout_set_ = timeout;
  }
  for (;;) {
    ssize_t n = ::recv(fd_, buf_, sizeof buf_, 0);
    if (n > 0) return {buf_, static_cast<std::size_t>(n)};
    if (n < 0 && errno == EINTR) continue;
    return {};  // EOF, timeout (EAGAIN), reset: the connection is done
  }
}

bool BlockingSocketIo::write(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void serve_blocking(int fd, const Handler& handler, const ServeOptions& options,
                    const std::atomic<bool>& stopping) noexcept {
  serve_accepted(fd, handler, [&](Session& session) {
    BlockingSocketIo io(fd, stopping, options.idle_timeout);
    serve_connection(session, io, options);
  });
}

}  // namespace shootout
