// poll backend: the interest list is our array, passed to the kernel whole on every wait and
// walked whole afterwards. The reference the other backends are tested against.
#include <poll.h>

#include <cerrno>

#include "poller.hpp"

namespace shootout {

namespace {

short to_poll(std::uint32_t events) {
  int e = ((events & kReadable) ? POLLIN : 0) | ((events & kWritable) ? POLLOUT : 0);
  return static_cast<short>(e);
}

std::uint32_t from_poll(short r) {
  return ((r & POLLIN) ? kReadable : 0u) | ((r & POLLOUT) ? kWritable : 0u) |
         ((r & (POLLERR | POLLHUP | POLLNVAL)) ? kHangup : 0u);
}

class PollPoller final : public Poller {
 public:
  std::string_view name() const override { return "poll"; }

  int do_add(int fd, std::uint32_t events) override {
    if (fd < 0) return EBADF;
    if (watched(fd)) return EEXIST;
    if (static_cast<std::size_t>(fd) >= index_.size()) index_.resize(fd + 1, -1);
    index_[fd] = static_cast<int>(fds_.size());
    fds_.push_back({fd, to_poll(events), 0});
    return 0;
  }

  int do_modify(int fd, std::uint32_t events) override {
    if (!watched(fd)) return ENOENT;
    fds_[index_[fd]].events = to_poll(events);
    return 0;
  }

  // Moves the last entry into the hole: O(1), and the array stays dense for poll().
  void do_remove(int fd) override {
    if (!watched(fd)) return;
    int at = index_[fd];
    fds_[at] = fds_.back();
    index_[fds_[at].fd] = at;
    fds_.pop_back();
    index_[fd] = -1;
  }

  int do_wait(std::vector<PollEvent>& ready, int timeout_ms) override {
    ready.clear();
    int n = ::poll(fds_.data(), fds_.size(), timeout_ms);
    if (n <= 0) return 0;           // timeout, or EINTR
    for (const pollfd& p : fds_) {  // the O(N) walk that epoll avoids
      if (p.revents == 0) continue;
      ready.push_back({p.fd, from_poll(p.revents)});
      if (static_cast<int>(ready.size()) == n) break;
    }
    return static_cast<int>(ready.size());
  }

 private:
  bool watched(int fd) const {
    return fd >= 0 && static_cast<std::size_t>(fd) < index_.size() && index_[fd] >= 0;
  }

  std::vector<pollfd> fds_;  // what poll() watches, dense
  std::vector<int> index_;   // fd -> position in fds_, or -1
};

}  // namespace

std::unique_ptr<Poller> make_poll_poller() { return std::make_unique<PollPoller>(); }

}  // namespace shootout
