#pragma once
// FiberSocketIo: the Io of serve_connection() for a non-blocking socket owned by one fiber.
//
// It reads like BlockingSocketIo and keeps its promises, but where a thread would block in the
// kernel the fiber parks in its Reactor and the thread runs other fibers: a call tries the
// system call and parks on EAGAIN, except that a read following one that emptied the socket
// parks first (that recv would only say EAGAIN: a keep-alive client waits for our response
// before it sends). Readiness is level-triggered, so nothing is missed. Timeouts are the
// park's deadline on the Reactor's coarse deadline list (they fire up to 100 ms late), not
// SO_RCVTIMEO. Blocking work: /sleep parks the fiber on a timer (no thread sleeps); /cpu and
// /file run inline on the scheduler's thread, starving every other fiber of that thread until
// they finish, unless a WorkPool is given (--offload-cpu).
//
// Thread: the connection's fiber only. Does not own the fd (the caller forgets and closes it).
#include <chrono>
#include <string_view>

#include "handler.hpp"
#include "reactor.hpp"

namespace shootout {

class WorkPool;

class FiberSocketIo {
 public:
  // send_timeout bounds how long a write may make no progress (a client that stopped reading).
  // pool: nullptr runs /cpu and /file inline.
  FiberSocketIo(int fd, Reactor& reactor, WorkPool* pool, std::chrono::milliseconds send_timeout)
      : fd_(fd), reactor_(reactor), pool_(pool), send_timeout_(send_timeout) {}

  // The bytes live in the reactor's per-thread buffer: valid until this fiber parks.
  std::string_view read(std::chrono::milliseconds timeout);
  bool write(std::string_view data);
  WorkResult work(const Work& w);
  bool stopping() const { return reactor_.stopping(); }

 private:
  int fd_;
  Reactor& reactor_;
  WorkPool* pool_;
  std::chrono::milliseconds send_timeout_;
  // The last read left the socket empty. True at first: a new connection registers with the
  // poller before its first recv, as in the evented model, instead of trying one that may
  // only say EAGAIN.
  bool drained_ = true;
};

}  // namespace shootout
