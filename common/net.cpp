#include "net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <system_error>

namespace shootout {

namespace {
[[noreturn]] void fail(const std::string& what, const ListenSpec& s) {
  throw std::system_error(errno, std::generic_category(),
                          what + " " + s.host + ":" + std::to_string(s.port));
}
}  // namespace

int open_listener(const ListenSpec& s) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(s.port);
  if (inet_pton(AF_INET, s.host.c_str(), &addr.sin_addr) != 1) {
    errno = EINVAL;
    fail("not an IPv4 address:", s);
  }
  int flags = SOCK_STREAM | SOCK_CLOEXEC | (s.nonblocking ? SOCK_NONBLOCK : 0);
  int fd = ::socket(AF_INET, flags, 0);
  if (fd < 0) fail("socket for", s);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (s.reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    ::close(fd);
    fail("SO_REUSEPORT on", s);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    fail("bind", s);
  }
  if (s.listen && ::listen(fd, s.backlog) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    fail("listen", s);
  }
  return fd;
}

std::uint16_t local_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::system_error(errno, std::generic_category(), "getsockname");
  return ntohs(addr.sin_port);
}

namespace {
int master_fd = -1;  // announce_to_master(): written on the worker's main thread before any other
}  // namespace

void announce_to_master(int fd) { master_fd = fd; }

void announce_listening(const std::string& host, std::uint16_t port) {
  if (master_fd >= 0) {
    const std::int32_t pid = ::getpid();
    if (::write(master_fd, &pid, sizeof pid) != sizeof pid)
      std::fprintf(stderr, "shootout[%d]: cannot tell the master this worker listens\n", int{pid});
    ::close(master_fd);
    master_fd = -1;
    return;
  }
  std::printf("listening on %s:%u\n", host.c_str(), unsigned{port});
  std::fflush(stdout);
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool peer_gone(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return false;
  if (info.tcpi_state == TCP_CLOSE) return true;
  if (info.tcpi_state != TCP_CLOSE_WAIT) return false;
  int unread = 0;
  return ioctl(fd, FIONREAD, &unread) == 0 && unread == 0;
}

}  // namespace shootout
