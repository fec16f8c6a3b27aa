#pragma once
// The poller seam: the one place an event loop talks to the kernel's readiness API.
//
// A Poller only *reports* readiness; the caller dispatches. Backends are picked at run time by
// name, so one binary can compare them under the same load:
//
//   epoll   the interest list lives in the kernel (a red-black tree); wait() returns only the
//           ready descriptors: O(ready) per call.
//   poll    the interest list is an array we pass in on every call; the kernel and then we walk
//           all of it: O(watched) per call.
//   select  like poll, with fixed-size bitmaps: descriptors at or above FD_SETSIZE (1024) cannot
//           be watched at all, and add() refuses them with EINVAL instead of writing past the
//           end of an fd_set.
//
// All three are level-triggered by default: a descriptor stays ready until the caller drains
// it, so the caller may read once per wake-up and come back later. epoll can also be
// edge-triggered (Trigger::edge, as nginx runs it): a descriptor is reported once each time it
// becomes ready, so the caller must take everything or remember that more is waiting. For a
// stream socket a read shorter than the buffer means the receive queue was empty at that
// moment; data arriving later is a new edge. Not so for an end that came with the data: the
// peer's FIN or RST is part of the same edge, so the edge-triggered epoll also reports
// kPeerClosed (and kHangup on a reset), and the caller must read on until EOF or the error.
// What edge-triggering saves: a level-triggered epoll puts every reported descriptor back on
// its ready list and polls it again on the next wait, only to find it drained. poll and select
// have no edge mode: asked for one, they stay level-triggered and say so (edge_triggered()).
//
// Rules for callers:
//   - closing(fd) just before close(fd): poll and select would report a closed descriptor
//     (POLLNVAL or EBADF). epoll needs no call there: closing the last descriptor of an open
//     file takes it off every interest list, so a connection costs one epoll_ctl, not two.
//     Use remove() instead for a descriptor that stays open or was dup()ed (a paused listener).
//   - kHangup is always reported when the kernel says so; it need not be asked for. select
//     cannot tell a hang-up from readability, so there it shows up as kReadable only.
//
// Thread: a Poller belongs to the loop that created it; every call comes from that loop's
// thread. Owns its kernel object (the epoll descriptor), not the watched descriptors.
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "owner_thread.hpp"

namespace shootout {

enum PollEvents : std::uint32_t {
  kReadable = 1,
  kWritable = 2,
  kHangup = 4,      // error or hang-up
  kPeerClosed = 8,  // edge-triggered epoll only: the peer shut its side (EPOLLRDHUP), so a
                    // read will end in EOF after the data, though no new edge will say so
};

enum class Trigger { level, edge };

struct PollEvent {
  int fd;
  std::uint32_t events;  // PollEvents bits
};

class Poller {
 public:
  virtual ~Poller() = default;

  // "epoll" | "poll" | "select". Throws std::invalid_argument for another name,
  // std::system_error if the kernel refuses (epoll_create1). Trigger::edge is a request: only
  // epoll grants it.
  static std::unique_ptr<Poller> create(std::string_view backend, Trigger trigger = Trigger::level);
  // The backend names create() accepts, for usage messages.
  static constexpr std::string_view kBackends[] = {"epoll", "poll", "select"};

  virtual std::string_view name() const = 0;
  // True if each readiness is reported once per edge (see above), false if level-triggered.
  virtual bool edge_triggered() const { return false; }

  // Start, change, stop watching fd for `events` (kReadable|kWritable; 0 watches for hang-up
  // only). add/modify return 0 or an errno value: EEXIST (add of a watched fd), ENOENT (modify
  // of an unwatched fd), EINVAL (select: fd >= FD_SETSIZE, with no memory touched), or what the
  // kernel said. remove() of an unwatched fd does nothing.
  int add(int fd, std::uint32_t events) {
    owner_.check("Poller::add");
    return do_add(fd, events);
  }
  int modify(int fd, std::uint32_t events) {
    owner_.check("Poller::modify");
    return do_modify(fd, events);
  }
  void remove(int fd) {
    owner_.check("Poller::remove");
    do_remove(fd);
  }
  // remove(), for a descriptor the caller closes next and never dup()ed.
  void closing(int fd) {
    owner_.check("Poller::closing");
    do_closing(fd);
  }

  // Waits up to timeout_ms (-1: no limit) and fills `ready` (cleared first), one entry per
  // ready descriptor. Returns the count; 0 on timeout or EINTR.
  int wait(std::vector<PollEvent>& ready, int timeout_ms) {
    owner_.check("Poller::wait");
    return do_wait(ready, timeout_ms);
  }

  // The owning loop's thread, when it starts running: from then on, the calls above from any
  // other thread abort in builds that check threads (owner_thread.hpp).
  void bind_to_this_thread() { owner_.bind(); }

 private:
  virtual int do_add(int fd, std::uint32_t events) = 0;
  virtual int do_modify(int fd, std::uint32_t events) = 0;
  virtual void do_remove(int fd) = 0;
  virtual void do_closing(int fd) { do_remove(fd); }
  virtual int do_wait(std::vector<PollEvent>& ready, int timeout_ms) = 0;

  [[no_unique_address]] OwnerThread owner_;
};

// The backends, for create() and for tests that name one directly.
std::unique_ptr<Poller> make_epoll_poller(Trigger trigger = Trigger::level);
std::unique_ptr<Poller> make_poll_poller();
std::unique_ptr<Poller> make_select_poller();

}  // namespace shootout
