// build/shootout-floor-load: the floor under every closed-loop load generator's CPU per request
// on this machine, the client-side twin of build/shootout-floor-uring.
//
// A measuring instrument, not a load generator: C keep-alive connections to 127.0.0.1:PORT, each
// with one request in flight (the closed loop of wrk and `shootout load`), and only the work such
// a client cannot avoid: one ring (single issuer, deferred task work), a multishot recv per
// connection into one ring of provided buffers shared by all of them, one IORING_OP_SEND of the
// fixed request per response (posting no CQE when the socket takes it whole), and one
// io_uring_enter per batch of completions. No parser: the answer to the request is learnt once,
// from one blocking exchange before the run (its headers and Content-Length), and afterwards a
// response is that many bytes; so the server must answer every request with the same number of
// bytes (nginx's `return 200` and the models' GET / do: the Date header is of fixed width). No
// latency samples, no histogram, no timers but the run's end. bench/loadgen_vs_wrk.sh runs it
// beside wrk and `shootout load` (as the engine "floor"): what it spends per request is what
// the kernel's loopback TCP path costs a client, so a load generator cannot spend less than it.
//
// Usage: shootout-floor-load PORT CONNECTIONS SECONDS   (127.0.0.1 only; CONNECTIONS 1-20000,
// SECONDS > 0). Prints a JSON object to stdout: connections, seconds, responses_total,
// requests_per_s, errors. Exit status 2 on a wrong command line or if the ring cannot be set up
// (io_uring missing or disabled), 1 if it cannot connect or the first exchange fails. One thread.
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr unsigned kBufCount = 4096;  // a power of two, at most 32768
constexpr unsigned kBufSize = 2048;
constexpr int kBufGroup = 0;

enum Kind : std::uint8_t { kRecv, kSend };
std::uint64_t tag(Kind kind, std::uint32_t conn) { return kind | std::uint64_t{conn} << 8; }
Kind kind_of(std::uint64_t t) { return static_cast<Kind>(t & 0xff); }
std::uint32_t conn_of(std::uint64_t t) { return static_cast<std::uint32_t>(t >> 8); }

int usage() {
  std::fprintf(stderr,
               "usage: shootout-floor-load PORT CONNECTIONS SECONDS   (127.0.0.1; CONNECTIONS "
               "1-20000, SECONDS > 0)\n");
  return 2;
}

bool parse_long(const char* s, long lo, long hi, long& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtol(s, &end, 10);
  return *s != '\0' && *end == '\0' && errno == 0 && out >= lo && out <= hi;
}

int connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// One blocking exchange on `fd`: the length of the whole answer (headers and Content-Length
// bytes of body), or 0 if it is not a complete answer with a Content-Length.
std::size_t answer_length(int fd, std::string_view request) {
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size()))
    return 0;
  std::string got;
  char buf[4096];
  for (;;) {
    const auto end = got.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::string head = got.substr(0, end);
      for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      const auto at = head.find("\r\ncontent-length:");
      if (at == std::string::npos) return 0;
      const std::size_t total = end + 4 + std::strtoul(head.c_str() + at + 17, nullptr, 10);
      if (got.size() >= total) return got.size() == total ? total : 0;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return 0;
    got.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace

int main(int argc, char** argv) {
  long port = 0, conns = 0, seconds = 0;
  if (argc != 4 || !parse_long(argv[1], 1, 65535, port) || !parse_long(argv[2], 1, 20000, conns) ||
      !parse_long(argv[3], 1, 3600, seconds))
    return usage();
  const std::string request =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n";

  std::vector<int> fds;
  for (long i = 0; i < conns; ++i) {
    const int fd = connect_to(static_cast<std::uint16_t>(port));
    if (fd < 0) {
      std::fprintf(stderr, "shootout-floor-load: connect to 127.0.0.1:%ld (connection %ld): %s\n",
                   port, i + 1, std::strerror(errno));
      return 1;
    }
    fds.push_back(fd);
  }
  const std::size_t answer = answer_length(fds[0], request);
  if (answer == 0) {
    std::fprintf(stderr,
                 "shootout-floor-load: the first answer was not one complete HTTP response with "
                 "a Content-Length\n");
    return 1;
  }

  io_uring ring{};
  io_uring_params params{};
  // CLAMP: at 20,000 connections the CQ asked for is past the kernel's largest; it gets that.
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
                 IORING_SETUP_CLAMP;
  params.cq_entries = 4 * static_cast<unsigned>(conns) + 1024;
  if (int r = io_uring_queue_init_params(static_cast<unsigned>(conns) + 64, &ring, &params);
      r < 0) {
    std::fprintf(stderr, "shootout-floor-load: io_uring_queue_init_params: %s%s\n",
                 std::strerror(-r),
                 r == -EPERM || r == -ENOSYS || r == -EINVAL
                     ? " (io_uring needs Linux 6.1+ and must not be disabled)"
                     : "");
    return 2;
  }
  const std::size_t br_bytes = kBufCount * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, br_bytes + std::size_t{kBufCount} * kBufSize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    std::fprintf(stderr, "shootout-floor-load: mmap: %s\n", std::strerror(errno));
    return 1;
  }
  auto* br = static_cast<io_uring_buf_ring*>(mem);
  char* bufs = static_cast<char*>(mem) + br_bytes;
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(br);
  reg.ring_entries = kBufCount;
  reg.bgid = kBufGroup;
  if (int r = io_uring_register_buf_ring(&ring, &reg, 0); r < 0) {
    std::fprintf(stderr, "shootout-floor-load: io_uring_register_buf_ring: %s\n",
                 std::strerror(-r));
    return 2;
  }
  io_uring_buf_ring_init(br);
  for (unsigned bid = 0; bid < kBufCount; ++bid)
    io_uring_buf_ring_add(br, bufs + std::size_t{bid} * kBufSize, kBufSize,
                          static_cast<unsigned short>(bid), io_uring_buf_ring_mask(kBufCount),
                          static_cast<int>(bid));
  io_uring_buf_ring_advance(br, kBufCount);

  auto sqe = [&ring] {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    if (s == nullptr) {
      io_uring_submit(&ring);
      s = io_uring_get_sqe(&ring);
    }
    return s;
  };
  auto arm_recv = [&](std::uint32_t c) {
    io_uring_sqe* s = sqe();
    io_uring_prep_recv_multishot(s, fds[c], nullptr, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = kBufGroup;
    io_uring_sqe_set_data64(s, tag(kRecv, c));
  };
  auto send_request = [&](std::uint32_t c) {
    io_uring_sqe* s = sqe();
    io_uring_prep_send(s, fds[c], request.data(), request.size(), MSG_NOSIGNAL | MSG_WAITALL);
    s->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(s, tag(kSend, c));
  };

  std::vector<std::size_t> got(fds.size(), 0);  // bytes of the answer in flight received
  std::vector<std::uint8_t> live(fds.size(), 1);
  unsigned long responses = 0, errors = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  for (std::uint32_t c = 0; c < fds.size(); ++c) {
    arm_recv(c);
    send_request(c);
  }
  __kernel_timespec wait{.tv_sec = 0, .tv_nsec = 100'000'000};
  while (std::chrono::steady_clock::now() < end) {
    io_uring_cqe* first = nullptr;
    int r = io_uring_submit_and_wait_timeout(&ring, &first, 1, &wait, nullptr);
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      std::fprintf(stderr, "shootout-floor-load: io_uring_submit_and_wait_timeout: %s\n",
                   std::strerror(-r));
      return 1;
    }
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const std::uint32_t c = conn_of(cqe->user_data);
      if (kind_of(cqe->user_data) == kSend) {  // only a failed or short send posts a CQE
        if (live[c]) ++errors;
        live[c] = 0;
        continue;
      }
      if (cqe->flags & IORING_CQE_F_BUFFER) {
        const auto bid = static_cast<unsigned short>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        io_uring_buf_ring_add(br, bufs + std::size_t{bid} * kBufSize, kBufSize, bid,
                              io_uring_buf_ring_mask(kBufCount), 0);
        io_uring_buf_ring_advance(br, 1);
      }
      if (!live[c]) continue;
      if (cqe->res > 0) {
        got[c] += static_cast<std::size_t>(cqe->res);
        if (got[c] >= answer) {  // one request in flight: at most one answer, so == answer
          got[c] -= answer;
          ++responses;
          send_request(c);
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) arm_recv(c);
      } else if (cqe->res == -ENOBUFS) {
        if (!(cqe->flags & IORING_CQE_F_MORE)) arm_recv(c);
      } else {  // the server closed or reset the connection
        ++errors;
        live[c] = 0;
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "{\"connections\": %ld, \"seconds\": %.3f, \"responses_total\": %lu, \"requests_per_s\": "
      "%.1f, \"errors\": %lu}\n",
      conns, elapsed, responses, static_cast<double>(responses) / elapsed, errors);
  return 0;
}
