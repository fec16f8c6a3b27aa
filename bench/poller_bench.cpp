// Poller scaling: one ready descriptor among N registered, for select, poll and epoll.
//
// N descriptors are the two ends of N/2 idle socketpairs (an idle socket is never readable).
// One iteration writes one byte into the last pair, asks the poller which descriptor is
// readable, finds it, and reads the byte back: one wake-up. The byte is written before the
// call, so no sleep is timed, only the poller's own work: select and poll walk every
// descriptor in order (hooking a wait-queue entry onto each idle one before they reach the
// ready one, last), epoll only copies out its ready list. ns_per_op is the time of one
// wake-up, including what user space does to find the ready descriptor (select and poll hand
// back the whole set, which the caller scans; epoll hands back only the ready list).
// poller_baseline is the write + read alone, to subtract. Timed with the thread's CPU clock
// (user + system), since nothing here blocks.
//   poller_select/fds:N   N up to 1000 (select cannot name a descriptor >= FD_SETSIZE, 1024)
//   poller_poll/fds:N     the pollfd array passed in full on every call
//   poller_epoll/fds:N    registered once (epoll_ctl); epoll_wait, level-triggered
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "bench_util.hpp"

namespace shootout::bench {

namespace {

// N registered descriptors; writing into `writer` makes `ready`, the last
// (highest) of the N, readable.
// Owns every descriptor; closes them all on destruction.
class IdleSockets {
 public:
  explicit IdleSockets(std::size_t n) {
    fds_.reserve(n + 1);
    for (std::size_t i = 0; i < n; i += 2) {  // n even: N/2 pairs
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
      fds_.push_back(sv[0]);
      fds_.push_back(sv[1]);
    }
    ok_ = fds_.size() >= n;
  }
  ~IdleSockets() {
    for (int fd : fds_) close(fd);
  }
  IdleSockets(const IdleSockets&) = delete;
  IdleSockets& operator=(const IdleSockets&) = delete;

  bool ok() const { return ok_; }
  const std::vector<int>& fds() const { return fds_; }
  int writer() const { return fds_[fds_.size() - 2]; }
  int ready() const { return fds_.back(); }

 private:
  std::vector<int> fds_;
  bool ok_ = false;
};

std::size_t fds_wanted(const benchmark::State& state) {
  return static_cast<std::size_t>(state.range(0));
}

void poller_baseline(benchmark::State& state) {
  IdleSockets s(2);
  if (!s.ok()) return state.SkipWithError("socketpair failed");
  auto t0 = thread_cpu_now();
  for (auto _ : state)
    if (!write_byte(s.writer()) || !read_byte(s.ready())) {
      state.SkipWithError("socket I/O failed");
      break;
    }
  report_per_op(state, thread_cpu_now() - t0, static_cast<double>(state.iterations()));
}

void poller_select(benchmark::State& state) {
  IdleSockets s(fds_wanted(state));
  if (!s.ok()) return state.SkipWithError("socketpair failed (raise the descriptor limit)");
  fd_set interest;
  FD_ZERO(&interest);
  int maxfd = -1;
  for (int fd : s.fds()) {
    if (fd >= FD_SETSIZE) return state.SkipWithError("descriptor above FD_SETSIZE");
    FD_SET(fd, &interest);
    maxfd = std::max(maxfd, fd);
  }
  auto t0 = thread_cpu_now();
  for (auto _ : state) {
    write_byte(s.writer());
    fd_set readable = interest;  // select overwrites its argument: a fresh copy every call
    int n = select(maxfd + 1, &readable, nullptr, nullptr, nullptr);
    int found = -1;
    for (int fd : s.fds())
      if (FD_ISSET(fd, &readable)) found = fd;
    if (n != 1 || found != s.ready() || !read_byte(found)) {
      state.SkipWithError("select did not report the one ready descriptor");
      break;
    }
  }
  report_per_op(state, thread_cpu_now() - t0, static_cast<double>(state.iterations()));
}

void poller_poll(benchmark::State& state) {
  IdleSockets s(fds_wanted(state));
  if (!s.ok()) return state.SkipWithError("socketpair failed (raise the descriptor limit)");
  std::vector<pollfd> pfds;
  for (int fd : s.fds()) pfds.push_back(pollfd{fd, POLLIN, 0});
  auto t0 = thread_cpu_now();
  for (auto _ : state) {
    write_byte(s.writer());
    int n = poll(pfds.data(), pfds.size(), -1);
    int found = -1;
    for (const pollfd& p : pfds)
      if (p.revents & POLLIN) found = p.fd;
    if (n != 1 || found != s.ready() || !read_byte(found)) {
      state.SkipWithError("poll did not report the one ready descriptor");
      break;
    }
  }
  report_per_op(state, thread_cpu_now() - t0, static_cast<double>(state.iterations()));
}

void poller_epoll(benchmark::State& state) {
  IdleSockets s(fds_wanted(state));
  if (!s.ok()) return state.SkipWithError("socketpair failed (raise the descriptor limit)");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return state.SkipWithError("epoll_create1 failed");
  for (int fd : s.fds()) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(ep);
      return state.SkipWithError("epoll_ctl failed");
    }
  }
  epoll_event events[64];
  auto t0 = thread_cpu_now();
  for (auto _ : state) {
    write_byte(s.writer());
    int n = epoll_wait(ep, events, 64, -1);
    if (n != 1 || events[0].data.fd != s.ready() || !read_byte(events[0].data.fd)) {
      state.SkipWithError("epoll_wait did not report the one ready descriptor");
      break;
    }
  }
  report_per_op(state, thread_cpu_now() - t0, static_cast<double>(state.iterations()));
  close(ep);
}

}  // namespace

void register_poller_benchmarks(const Preset& preset) {
  const std::vector<long> small = {10, 1000};
  const std::vector<long> full = {10, 100, 1000, 10000};
  const auto& sizes = preset.ci ? small : full;
  add(preset, "poller_baseline", poller_baseline);
  auto* sel = add(preset, "poller_select", poller_select)->ArgName("fds");
  auto* pol = add(preset, "poller_poll", poller_poll)->ArgName("fds");
  auto* epo = add(preset, "poller_epoll", poller_epoll)->ArgName("fds");
  for (long n : sizes) {
    if (n < FD_SETSIZE) sel->Arg(n);
    pol->Arg(n);
    epo->Arg(n);
  }
}

}  // namespace shootout::bench
