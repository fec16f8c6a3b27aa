// epoll backend: the kernel keeps the interest list; epoll_wait hands back only what is ready.
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "poller.hpp"

namespace shootout {

namespace {

std::uint32_t to_epoll(std::uint32_t events) {
  return ((events & kReadable) ? EPOLLIN : 0u) | ((events & kWritable) ? EPOLLOUT : 0u);
}

std::uint32_t from_epoll(std::uint32_t e) {
  return ((e & EPOLLIN) ? kReadable : 0u) | ((e & EPOLLOUT) ? kWritable : 0u) |
         ((e & (EPOLLERR | EPOLLHUP)) ? kHangup : 0u) | ((e & EPOLLRDHUP) ? kPeerClosed : 0u);
}

class EpollPoller final : public Poller {
 public:
  explicit EpollPoller(Trigger trigger)
      : epfd_(::epoll_create1(EPOLL_CLOEXEC)),
        flags_(trigger == Trigger::edge ? static_cast<std::uint32_t>(EPOLLET | EPOLLRDHUP) : 0u),
        events_(64) {
    if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  }
  ~EpollPoller() override { ::close(epfd_); }
  EpollPoller(const EpollPoller&) = delete;
  EpollPoller& operator=(const EpollPoller&) = delete;

  std::string_view name() const override { return "epoll"; }
  bool edge_triggered() const override { return flags_ != 0; }

  int do_add(int fd, std::uint32_t events) override { return ctl(EPOLL_CTL_ADD, fd, events); }
  int do_modify(int fd, std::uint32_t events) override { return ctl(EPOLL_CTL_MOD, fd, events); }
  void do_remove(int fd) override { ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }
  void do_closing(int) override {}  // close() takes it off the interest list

  int do_wait(std::vector<PollEvent>& ready, int timeout_ms) override {
    ready.clear();
    int n = ::epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
    if (n <= 0) return 0;  // timeout, or EINTR
    for (int i = 0; i < n; ++i)
      ready.push_back({events_[i].data.fd, from_epoll(events_[i].events)});
    // A full batch means more may be waiting: take more next time (bounded, so one wait never
    // hands the loop an unbounded amount of work).
    if (static_cast<std::size_t>(n) == events_.size() && events_.size() < kMaxBatch)
      events_.resize(events_.size() * 2);
    return n;
  }

 private:
  static constexpr std::size_t kMaxBatch = 4096;

  int ctl(int op, int fd, std::uint32_t events) {
    epoll_event ev{};
    // Edge mode: EPOLL_CTL_MOD and ADD still report a descriptor that is ready at that moment,
    // so a caller that stops and restarts watching (a connection waiting on work) loses nothing.
    ev.events = to_epoll(events) | flags_;
    ev.data.fd = fd;
    return ::epoll_ctl(epfd_, op, fd, &ev) == 0 ? 0 : errno;
  }

  int epfd_;
  std::uint32_t flags_;              // EPOLLET | EPOLLRDHUP in edge mode, else 0
  std::vector<epoll_event> events_;  // epoll_wait's output buffer, reused
};

}  // namespace

std::unique_ptr<Poller> make_epoll_poller(Trigger trigger) {
  return std::make_unique<EpollPoller>(trigger);
}

}  // namespace shootout
