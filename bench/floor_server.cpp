// build/shootout-floor: the floor under every epoll server's CPU per request on this machine.
//
// A measuring instrument, not a model: an edge-triggered epoll loop that does only the system
// calls a keep-alive HTTP server cannot avoid (one recv and one send per request, epoll_wait
// between batches) and nothing else: no parser (a request is "\r\n\r\n" seen in one read), no
// timers (epoll_wait never times out), no output queue (a send the socket refuses in part
// closes the connection), no limits. bench/evented_vs_nginx.sh runs it beside nginx and the
// evented model: what it spends per request is the kernel's share, which no server code can
// take away; the rest of a server's cost is what its own code adds.
//
// Usage: shootout-floor [port]   (127.0.0.1 only; port 0 or none picks one; prints
// "listening on 127.0.0.1:PORT"). Stops on SIGTERM or SIGINT. One thread.
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string_view>

#include "floor_common.hpp"
#include "net.hpp"

namespace {

using shootout::floor::kResponse;
using shootout::floor::port_from_args;
using shootout::floor::requests_in;

volatile sig_atomic_t stop = 0;

}  // namespace

int main(int argc, char** argv) {
  const long port = port_from_args("shootout-floor", argc, argv);
  if (port < 0) return 2;
  struct sigaction sa {};
  sa.sa_handler = [](int) { stop = 1; };
  ::sigaction(SIGTERM, &sa, nullptr);  // no SA_RESTART: epoll_wait returns EINTR
  ::sigaction(SIGINT, &sa, nullptr);
  int lfd;
  try {
    lfd = shootout::open_listener({.port = static_cast<std::uint16_t>(port), .nonblocking = true});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shootout-floor: %s\n", e.what());
    return 1;
  }
  shootout::announce_listening("127.0.0.1", shootout::local_port(lfd));
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{EPOLLIN, {.fd = lfd}};
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

  static char in[64 * 1024];
  static char out[64 * kResponse.size()];  // 64 answers, written once: a read's go out in one send
  for (std::size_t at = 0; at < sizeof out; at += kResponse.size())
    std::memcpy(out + at, kResponse.data(), kResponse.size());
  epoll_event ready[512];
  while (!stop) {
    int n = ::epoll_wait(ep, ready, 512, -1);
    for (int i = 0; i < n; ++i) {
      int fd = ready[i].data.fd;
      if (fd == lfd) {
        for (int c; (c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
          shootout::set_nodelay(c);
          epoll_event cev{EPOLLIN | EPOLLRDHUP | EPOLLET, {.fd = c}};
          ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      // One read per readiness, as the evented model does (a shorter read drained the socket).
      ssize_t got = ::recv(fd, in, sizeof in, 0);
      int reqs = got > 0 ? requests_in({in, static_cast<std::size_t>(got)}) : 0;
      if (reqs > 64) reqs = 64;
      std::size_t len = static_cast<std::size_t>(reqs) * kResponse.size();
      bool ok = got > 0 || (got < 0 && errno == EAGAIN);
      if (ok && len > 0) ok = ::send(fd, out, len, MSG_NOSIGNAL) == static_cast<ssize_t>(len);
      if (!ok || (ready[i].events & EPOLLRDHUP)) ::close(fd);  // also leaves the epoll set
    }
  }
  return 0;
}
