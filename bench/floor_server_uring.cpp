// build/shootout-floor-uring: the floor under every io_uring server's CPU per request on this
// machine, the completion-model twin of build/shootout-floor.
//
// A measuring instrument, not a model: one ring (single issuer, deferred task work, a CQ large
// enough that a batch never overflows it) and only the work a keep-alive HTTP server on io_uring
// cannot avoid: a multishot accept on the listener, a multishot recv per connection into one
// ring of provided buffers shared by all connections (each buffer goes back to the kernel as soon
// as its CQE is handled), one IORING_OP_SEND per read that completed requests (n requests in one
// read are n copies of the response in one send, from a static buffer, as shootout-floor does:
// without pipelining, one send per request), and one io_uring_enter per loop iteration
// (io_uring_submit_and_wait: everything queued goes in, the wait for the next completions in the
// same call), whose CQEs are consumed as one batch. A send the socket takes whole posts no CQE
// (IOSQE_CQE_SKIP_SUCCESS): the loop has nothing to do then, and the CQE of a send that completed
// inline would end the very enter that submitted it, one more enter per batch. Nothing else: no
// parser (a request is "\r\n\r\n" seen in one read, so one that straddles two buffers of 2 KiB
// is not answered), no timers, no output queue of its own (MSG_WAITALL has the kernel finish a
// send the socket took in part; one that fails closes the connection, after cancelling its
// recv), no limits. A recv that ends (-ENOBUFS, or a CQE without IORING_CQE_F_MORE) is armed
// again; SIGTERM and SIGINT arrive through a signalfd polled by the ring. bench/evented_vs_nginx.sh
// runs it beside shootout-floor: what it spends per request is the kernel's share under
// completion, as shootout-floor's is under readiness.
//
// On exit it prints one line to stderr if anything skewed the measurement: recvs re-armed
// after -ENOBUFS, batches that found the CQ overflowed, or enters made only because the SQ was
// full.
//
// Usage: shootout-floor-uring [port]   (127.0.0.1 only; port 0 or none picks one; prints
// "listening on 127.0.0.1:PORT"). Stops on SIGTERM or SIGINT. One thread. Needs liburing and
// Linux 6.1 or later (IORING_SETUP_DEFER_TASKRUN); if the ring cannot be set up it says why and
// exits with status 2.
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string_view>
#include <vector>

#include "floor_common.hpp"
#include "net.hpp"

namespace {

using shootout::floor::kResponse;
using shootout::floor::port_from_args;
using shootout::floor::requests_in;

// Sizes: a batch holds about one recv CQE per connection with data (sends post a CQE only when
// they fail) and queues about one send per recv CQE, so 10,000 connections need about 10,000
// buffers and SQEs; the CQ has room to spare.
constexpr unsigned kSqEntries = 16384;
constexpr unsigned kCqEntries = 65536;
constexpr unsigned kBufCount = 16384;  // a power of two, at most 32768
constexpr unsigned kBufSize = 2048;
constexpr int kBufGroup = 0;

// What a CQE is for, in user_data: kind (low 8 bits), copies sent (next 8), the connection's
// generation (next 16: a CQE from a closed connection whose fd was reused is recognised) and
// the fd (high 32).
enum Kind : std::uint8_t { kAccept, kRecv, kSend, kCancel, kSignal };

std::uint64_t tag(Kind kind, int fd = 0, std::uint16_t gen = 0, int copies = 0) {
  return kind | static_cast<std::uint64_t>(copies) << 8 | static_cast<std::uint64_t>(gen) << 16 |
         static_cast<std::uint64_t>(static_cast<std::uint32_t>(fd)) << 32;
}
Kind kind_of(std::uint64_t t) { return static_cast<Kind>(t & 0xff); }
int copies_of(std::uint64_t t) { return static_cast<int>(t >> 8 & 0xff); }
std::uint16_t gen_of(std::uint64_t t) { return static_cast<std::uint16_t>(t >> 16); }
int fd_of(std::uint64_t t) { return static_cast<int>(t >> 32); }

int setup_failed(const char* what, int err) {
  std::fprintf(stderr, "shootout-floor-uring: %s failed: %s (%s)%s\n", what, strerrorname_np(err),
               std::strerror(err),
               err == EINVAL || err == ENOSYS || err == EPERM
                   ? "; io_uring needs Linux 6.1+ and must not be disabled (sysctl "
                     "kernel.io_uring_disabled, seccomp)"
                   : "");
  return 2;
}

struct Floor {
  io_uring ring{};
  io_uring_buf_ring* br = nullptr;
  char* bufs = nullptr;
  std::vector<std::uint16_t> gen;       // by fd: bumped when the fd is closed
  std::vector<std::uint8_t> receiving;  // by fd: its multishot recv is armed
  unsigned long enobufs = 0, overflows = 0, sq_full = 0;

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    if (s == nullptr) {  // the SQ is full: submit what is queued, without waiting
      ++sq_full;
      io_uring_submit(&ring);
      s = io_uring_get_sqe(&ring);
    }
    return s;
  }

  void arm_accept(int lfd) {
    io_uring_sqe* s = sqe();
    io_uring_prep_multishot_accept(s, lfd, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, tag(kAccept));
  }

  void arm_recv(int fd) {
    io_uring_sqe* s = sqe();
    io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = kBufGroup;
    io_uring_sqe_set_data64(s, tag(kRecv, fd, gen[fd]));
    receiving[fd] = 1;
  }

  void give_back(unsigned bid) {
    io_uring_buf_ring_add(br, bufs + std::size_t{bid} * kBufSize, kBufSize,
                          static_cast<unsigned short>(bid), io_uring_buf_ring_mask(kBufCount), 0);
    io_uring_buf_ring_advance(br, 1);
  }

  // Cancels the recv if it is still armed (the socket stays open while a request holds it).
  void close_conn(int fd) {
    if (receiving[fd]) {
      io_uring_sqe* s = sqe();
      io_uring_prep_cancel64(s, tag(kRecv, fd, gen[fd]), 0);
      io_uring_sqe_set_data64(s, tag(kCancel));  // its CQE is ignored
    }
    ::close(fd);
    ++gen[fd];
    receiving[fd] = 0;
  }

  void on_accept(int fd) {
    if (static_cast<std::size_t>(fd) >= gen.size()) {
      gen.resize(fd + 1024);
      receiving.resize(fd + 1024);
    }
    shootout::set_nodelay(fd);
    arm_recv(fd);
  }

  void on_recv(const io_uring_cqe* cqe, const char* out) {
    std::uint64_t t = cqe->user_data;
    int fd = fd_of(t);
    bool current = gen[fd] == gen_of(t);
    int reqs = 0;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
      unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
      if (current && cqe->res > 0)
        reqs =
            requests_in({bufs + std::size_t{bid} * kBufSize, static_cast<std::size_t>(cqe->res)});
      give_back(bid);
    }
    if (!current) return;  // from a connection already closed
    if (cqe->res > 0) {
      if (reqs > 64) reqs = 64;
      if (reqs > 0) {
        io_uring_sqe* s = sqe();
        io_uring_prep_send(s, fd, out, static_cast<std::size_t>(reqs) * kResponse.size(),
                           MSG_NOSIGNAL | MSG_WAITALL);
        s->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(s, tag(kSend, fd, gen[fd], reqs));
      }
      if (!(cqe->flags & IORING_CQE_F_MORE)) arm_recv(fd);
    } else if (cqe->res == -ENOBUFS) {  // every buffer was in use: the multishot ended
      ++enobufs;
      if (!(cqe->flags & IORING_CQE_F_MORE)) arm_recv(fd);
    } else {  // EOF or an error; the multishot has ended
      receiving[fd] = 0;
      close_conn(fd);
    }
  }

  // Only a send that failed, or that the kernel could finish only in part, posts a CQE.
  void on_send(const io_uring_cqe* cqe) {
    std::uint64_t t = cqe->user_data;
    int fd = fd_of(t);
    if (gen[fd] != gen_of(t)) return;
    if (cqe->res != copies_of(t) * static_cast<int>(kResponse.size())) close_conn(fd);
  }
};

}  // namespace

int main(int argc, char** argv) {
  const long port = port_from_args("shootout-floor-uring", argc, argv);
  if (port < 0) return 2;
  // The signals wait in a signalfd that the ring polls: no EINTR, no window between a check of
  // a flag and the wait.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC);
  if (sfd < 0) {
    std::fprintf(stderr, "shootout-floor-uring: signalfd: %s\n", std::strerror(errno));
    return 1;
  }
  int lfd;
  try {
    lfd = shootout::open_listener({.port = static_cast<std::uint16_t>(port)});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shootout-floor-uring: %s\n", e.what());
    return 1;
  }

  Floor f;
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  params.cq_entries = kCqEntries;
  if (int r = io_uring_queue_init_params(kSqEntries, &f.ring, &params); r < 0)
    return setup_failed("io_uring_queue_init_params", -r);
  std::size_t br_bytes = kBufCount * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, br_bytes + std::size_t{kBufCount} * kBufSize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    std::fprintf(stderr, "shootout-floor-uring: mmap of the buffers: %s\n", std::strerror(errno));
    return 1;
  }
  f.br = static_cast<io_uring_buf_ring*>(mem);  // page-aligned, as the kernel requires
  f.bufs = static_cast<char*>(mem) + br_bytes;
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(f.br);
  reg.ring_entries = kBufCount;
  reg.bgid = kBufGroup;
  if (int r = io_uring_register_buf_ring(&f.ring, &reg, 0); r < 0)
    return setup_failed("io_uring_register_buf_ring", -r);
  io_uring_buf_ring_init(f.br);
  for (unsigned bid = 0; bid < kBufCount; ++bid)
    io_uring_buf_ring_add(f.br, f.bufs + std::size_t{bid} * kBufSize, kBufSize,
                          static_cast<unsigned short>(bid), io_uring_buf_ring_mask(kBufCount),
                          static_cast<int>(bid));
  io_uring_buf_ring_advance(f.br, kBufCount);
  f.gen.resize(1024);
  f.receiving.resize(1024);

  static char out[64 * kResponse.size()];  // 64 answers, written once: a read's go out in one send
  for (std::size_t at = 0; at < sizeof out; at += kResponse.size())
    std::memcpy(out + at, kResponse.data(), kResponse.size());

  f.arm_accept(lfd);
  io_uring_sqe* s = f.sqe();
  io_uring_prep_poll_add(s, sfd, POLLIN);
  io_uring_sqe_set_data64(s, tag(kSignal));
  shootout::announce_listening("127.0.0.1", shootout::local_port(lfd));

  bool stop = false;
  while (!stop) {
    int r = io_uring_submit_and_wait(&f.ring, 1);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      std::fprintf(stderr, "shootout-floor-uring: io_uring_submit_and_wait: %s\n",
                   std::strerror(-r));
      return 1;
    }
    if (IO_URING_READ_ONCE(*f.ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) ++f.overflows;
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&f.ring, head, cqe) {
      ++seen;
      switch (kind_of(cqe->user_data)) {
        case kAccept:
          if (cqe->res >= 0) f.on_accept(cqe->res);
          if (!(cqe->flags & IORING_CQE_F_MORE)) f.arm_accept(lfd);
          break;
        case kRecv:
          f.on_recv(cqe, out);
          break;
        case kSend:
          f.on_send(cqe);
          break;
        case kCancel:
          break;
        case kSignal:
          stop = true;
          break;
      }
    }
    io_uring_cq_advance(&f.ring, seen);
  }
  if (f.enobufs + f.overflows + f.sq_full > 0)
    std::fprintf(stderr,
                 "shootout-floor-uring: %lu recvs re-armed after ENOBUFS, %lu batches with the CQ "
                 "overflowed, %lu extra enters for a full SQ\n",
                 f.enobufs, f.overflows, f.sq_full);
  return 0;
}
