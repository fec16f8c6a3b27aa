// select backend: two bitmaps of FD_SETSIZE bits, copied and walked on every wait. An fd_set
// has no room for a descriptor at or above FD_SETSIZE; FD_SET on one writes past the end of
// the bitmap, so add() refuses such descriptors before touching anything.
#include <sys/select.h>

#include <algorithm>
#include <cerrno>

#include "poller.hpp"

namespace shootout {

namespace {

class SelectPoller final : public Poller {
 public:
  SelectPoller() {
    FD_ZERO(&read_);
    FD_ZERO(&write_);
  }

  std::string_view name() const override { return "select"; }

  int do_add(int fd, std::uint32_t events) override {
    if (fd < 0 || fd >= FD_SETSIZE) return EINVAL;
    if (watched_[fd]) return EEXIST;
    watched_[fd] = true;
    max_fd_ = std::max(max_fd_, fd);
    set(fd, events);
    return 0;
  }

  int do_modify(int fd, std::uint32_t events) override {
    if (fd < 0 || fd >= FD_SETSIZE || !watched_[fd]) return ENOENT;
    set(fd, events);
    return 0;
  }

  void do_remove(int fd) override {
    if (fd < 0 || fd >= FD_SETSIZE || !watched_[fd]) return;
    set(fd, 0);
    watched_[fd] = false;
    while (max_fd_ >= 0 && !watched_[max_fd_]) --max_fd_;
  }

  int do_wait(std::vector<PollEvent>& ready, int timeout_ms) override {
    ready.clear();
    fd_set r = read_, w = write_;  // select overwrites its arguments: pass copies
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int n = ::select(max_fd_ + 1, &r, &w, nullptr, timeout_ms < 0 ? nullptr : &tv);
    if (n <= 0) return 0;                    // timeout, or EINTR
    for (int fd = 0; fd <= max_fd_; ++fd) {  // the O(N) walk, over every possible descriptor
      std::uint32_t ev = (FD_ISSET(fd, &r) ? kReadable : 0u) | (FD_ISSET(fd, &w) ? kWritable : 0u);
      if (ev) ready.push_back({fd, ev});
    }
    return static_cast<int>(ready.size());
  }

 private:
  void set(int fd, std::uint32_t events) {
    if (events & kReadable)
      FD_SET(fd, &read_);
    else
      FD_CLR(fd, &read_);
    if (events & kWritable)
      FD_SET(fd, &write_);
    else
      FD_CLR(fd, &write_);
  }

  fd_set read_, write_;            // the interest sets
  bool watched_[FD_SETSIZE] = {};  // added, whatever its events
  int max_fd_ = -1;
};

}  // namespace

std::unique_ptr<Poller> make_select_poller() { return std::make_unique<SelectPoller>(); }

}  // namespace shootout
