// build/shootout-uring-lost-reset: does this kernel's multishot recv always report a reset that
// follows data? (docs/URING.md, "A reset the kernel does not report")
//
//   shootout-uring-lost-reset [CONNECTIONS] [BYTES] [DEFER]
//
// For each of CONNECTIONS (default 20,000) loopback connections: the server side arms one
// multishot recv from a provided-buffer ring, as the uring model does, and a forked client
// sends BYTES (default 43: half a request) and resets the connection (SO_LINGER 0, close) at a
// slightly different moment each time. The server then waits up to one second for the
// completion that ends the recv (the bytes, then -ECONNRESET). A connection whose recv is still
// armed after that second, while the socket is closed with ECONNRESET pending (TCP_INFO, a
// MSG_PEEK recv), is a reset the kernel did not report; each is printed, and the count at the
// end. DEFER=1 (default) sets the ring up as the model does (SINGLE_ISSUER, DEFER_TASKRUN),
// 0 without them. Exit 0 if none was lost, 1 if some were, 2 on a set-up error.
#include <fmt/format.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "uring_support.hpp"

namespace {

constexpr unsigned kBuffers = 64;
constexpr unsigned kBufferSize = 4096;
constexpr int kGroup = 0;

[[noreturn]] void die(const std::string& what, int err) {
  fmt::print(stderr, "shootout-uring-lost-reset: {}: {}\n", what, std::strerror(err));
  std::exit(2);
}

int tcp_state(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 ? info.tcpi_state : -1;
}

}  // namespace

int main(int argc, char** argv) {
  const long connections = argc > 1 ? std::atol(argv[1]) : 20'000;
  const long bytes = argc > 2 ? std::atol(argv[2]) : 43;
  const bool defer = argc > 3 ? std::atoi(argv[3]) != 0 : true;
  if (connections <= 0 || bytes <= 0 || bytes > 1 << 20) {
    fmt::print(stderr, "usage: shootout-uring-lost-reset [CONNECTIONS] [BYTES] [DEFER 0|1]\n");
    return 2;
  }
  const unsigned flags = defer ? IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN : 0;
  if (std::string why = shootout::uring_unavailable_for(flags, {IORING_OP_RECV}, true);
      !why.empty()) {
    fmt::print(stderr, "shootout-uring-lost-reset: {}\n", why);
    return 2;
  }
  io_uring ring{};
  io_uring_params params{};
  params.flags = flags;
  if (int r = io_uring_queue_init_params(64, &ring, &params); r < 0) die("io_uring_setup", -r);
  shootout::ProvidedBuffers buffers;
  buffers.set_up(ring, kBuffers, kBufferSize, kGroup);
  for (unsigned id = 0; id < kBuffers; ++id) buffers.give_back(static_cast<std::uint16_t>(id));
  buffers.publish();

  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t addr_len = sizeof addr;
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 16) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0)
    die("listening socket", errno);

  // A completion seen: its buffer, if it has one, goes back to the ring.
  auto take = [&](io_uring_cqe* cqe) {
    if (cqe->flags & IORING_CQE_F_BUFFER)
      buffers.give_back(static_cast<std::uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    io_uring_cqe_seen(&ring, cqe);
    buffers.publish();
  };
  const std::string data(static_cast<std::size_t>(bytes), 'x');
  std::mt19937 rng(1);
  long lost = 0;
  for (long i = 0; i < connections; ++i) {
    const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (client < 0 || connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      die("connect", errno);
    const int server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (server < 0) die("accept", errno);
    const unsigned delay_us = rng() % 100, spin = rng() % 5000;
    const pid_t pid = fork();
    if (pid < 0) die("fork", errno);
    if (pid == 0) {  // the client: bytes, then a reset, at a moment that varies
      usleep(delay_us);
      (void)!send(client, data.data(), data.size(), MSG_NOSIGNAL);
      for (unsigned k = 0; k < spin; ++k) asm volatile("" ::: "memory");  // a short wait
      linger lg{1, 0};
      setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      close(client);
      _exit(0);
    }
    close(client);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv_multishot(sqe, server, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
    io_uring_sqe_set_data64(sqe, 1);
    io_uring_submit(&ring);
    long received = 0;
    bool ended = false;
    while (!ended) {
      io_uring_cqe* cqe = nullptr;
      __kernel_timespec one_second{1, 0};
      if (io_uring_wait_cqe_timeout(&ring, &cqe, &one_second) == -ETIME) break;
      if (cqe->res > 0) received += cqe->res;
      ended = !(cqe->flags & IORING_CQE_F_MORE);
      take(cqe);
    }
    if (!ended) {
      char byte;
      const long peek = recv(server, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      const int peek_errno = errno;
      ++lost;
      const int state = tcp_state(server);
      fmt::print(
          "connection {}: {} of {} bytes reported, then nothing for 1 s; TCP state {}{}, "
          "a MSG_PEEK recv returns {} ({})\n",
          i, received, bytes, state, state == TCP_CLOSE ? " (CLOSE)" : "", peek,
          peek < 0 ? std::strerror(peek_errno) : "bytes");
      // Cancel the recv that is still armed, and take its last completion.
      io_uring_sqe* cancel = io_uring_get_sqe(&ring);
      io_uring_prep_cancel_fd(cancel, server, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(cancel, 2);
      io_uring_submit(&ring);
      for (int left = 2; left > 0; --left) {
        io_uring_cqe* cqe = nullptr;
        __kernel_timespec one_second{1, 0};
        if (io_uring_wait_cqe_timeout(&ring, &cqe, &one_second) != 0) break;
        take(cqe);
      }
    }
    close(server);
    waitpid(pid, nullptr, 0);
  }
  fmt::print("{} of {} resets after {} bytes not reported by a multishot recv ({})\n", lost,
             connections, bytes, defer ? "SINGLE_ISSUER, DEFER_TASKRUN" : "no set-up flags");
  io_uring_queue_exit(&ring);
  return lost == 0 ? 0 : 1;
}
