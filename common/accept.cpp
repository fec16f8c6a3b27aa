#include "accept.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net.hpp"
#include "stats.hpp"

namespace shootout {

namespace {
constexpr int kFirstWaitMs = 10, kLongestWaitMs = 500;
}  // namespace

AcceptFailure classify_accept_error(int err) {
  switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:  // a firewall rule refused that connection
      return AcceptFailure::retry;
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
      return AcceptFailure::drained;
    case EINVAL:
    case EBADF:
    case ENOTSOCK:
      return AcceptFailure::shut;
    default:  // EMFILE, ENFILE, ENOBUFS, ENOMEM, and what we do not know: do not spin on it
      return AcceptFailure::starved;
  }
}

std::chrono::milliseconds AcceptBackoff::next_wait(int err) {
  int wait = wait_ms_.load(std::memory_order_relaxed);
  wait = wait == 0 ? kFirstWaitMs : std::min(wait * 2, kLongestWaitMs);
  wait_ms_.store(wait, std::memory_order_relaxed);
  std::uint64_t dropped = 0;
  if (log_.allow(&dropped))
    log_line("accept: {}; retrying in {} ms ({} more not logged)", std::strerror(err), wait,
             dropped);
  counters().errors.fetch_add(1, std::memory_order_relaxed);
  return std::chrono::milliseconds(wait);
}

Accepted accept_connection(int listen_fd, int flags, AcceptBackoff& backoff) {
  Accepted a;
  a.fd = ::accept4(listen_fd, nullptr, nullptr, flags);
  if (a.fd >= 0) {
    backoff.reset();
    return a;
  }
  a.err = errno;
  a.failure = classify_accept_error(a.err);
  return a;
}

Listener::Listener(const ServeOptions& options)
    : host_(options.host),
      fd_(open_listener({options.host, options.port, options.backlog, false, false})) {}

void Listener::announce() const { announce_listening(host_, local_port(fd_)); }

void Listener::shut() { ::shutdown(fd_, SHUT_RDWR); }

void Listener::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void refuse_connection(std::string_view what, std::string_view why) {
  static RateLimit rl;
  std::uint64_t dropped = 0;
  if (rl.allow(&dropped))
    log_line("{} ({}); closing the connection ({} more dropped)", what, why, dropped);
  counters().errors.fetch_add(1, std::memory_order_relaxed);
}

bool shed_with_spare(int listen_fd, int& spare_fd) {
  if (spare_fd < 0) return false;
  ::close(spare_fd);
  int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) ::close(fd);
  spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0 && spare_fd >= 0;
}

}  // namespace shootout
