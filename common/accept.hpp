#pragma once
// Accepting connections, once for every model: what an accept4(2) error means, how long to back
// off when the server is out of descriptors or memory, and what to do with a connection that
// was accepted but cannot be served. Each model keeps only *how* it waits: a thread sleep
// (threaded, forked: accept_blocking()), a fiber sleep (coroutine), a loop timer (evented,
// which also sheds with a spare descriptor first).
//
// The back-off doubles from 10 ms to 500 ms while the failures go on and starts again at 10 ms
// after an accept succeeds: a fixed 10 ms made a pool of 256 accepting threads try 25,600 times
// a second (15% of a core) while out of descriptors.
//
// Threads: any thread may call everything here. One AcceptBackoff is shared by all the accepters
// of a server (in the forked model, each process has its own copy).
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "log.hpp"
#include "serve_options.hpp"

namespace shootout {

// What a failed accept4(2) means for the accepter.
enum class AcceptFailure {
  retry,    // EINTR, ECONNABORTED, EPROTO, EPERM: that one is gone; try the next at once
  drained,  // EAGAIN: the backlog is empty (non-blocking listener); wait for readability
  starved,  // EMFILE, ENFILE, ENOBUFS, ENOMEM (and anything unknown): leave the connection in
            // the backlog and back off
  shut,     // EINVAL, EBADF, ENOTSOCK: the listener was shut (stop) or is gone; stop accepting
};
AcceptFailure classify_accept_error(int err);

class AcceptBackoff {
 public:
  // After a starved accept with errno `err`: logs (at most once a second), counts an error, and
  // returns how long to wait before the next try.
  std::chrono::milliseconds next_wait(int err);
  // After a successful accept.
  void reset() {
    if (wait_ms_.load(std::memory_order_relaxed) != 0) wait_ms_.store(0, std::memory_order_relaxed);
  }

 private:
  std::atomic<int> wait_ms_{0};
  RateLimit log_;
};

// One accept4(listen_fd, flags): a connection (fd >= 0, and the back-off is reset), or why not.
// The caller that waits after a starved failure asks backoff.next_wait(err) how long.
struct Accepted {
  int fd = -1;
  AcceptFailure failure = AcceptFailure::retry;
  int err = 0;  // accept4's errno
};
Accepted accept_connection(int listen_fd, int flags, AcceptBackoff& backoff);

// A thread's accept loop on a blocking listener (threaded, forked, prefork workers): while
// admit() (which may wait for a free slot, and returns false once the server stops), accepts
// one connection and hands it to spawn(fd), which owns it from then on. Starved, the thread
// sleeps the back-off. Returns when admit() says no or the listener is shut.
template <class Admit, class Spawn>
void accept_blocking(int listen_fd, AcceptBackoff& backoff, Admit admit, Spawn spawn) {
  while (admit()) {
    const Accepted a = accept_connection(listen_fd, SOCK_CLOEXEC, backoff);
    if (a.fd >= 0)
      spawn(a.fd);
    else if (a.failure == AcceptFailure::shut)
      return;
    else if (a.failure == AcceptFailure::starved)
      std::this_thread::sleep_for(backoff.next_wait(a.err));
  }
}

// The blocking listening socket of the threaded and forked models, with its back-off (the
// coroutine and evented models keep a non-blocking listener per scheduler or loop instead).
// Set-up throws std::system_error naming the address. Owns the socket. In the forked model each
// child has its own copy of this object and of the descriptor.
class Listener {
 public:
  explicit Listener(const ServeOptions& options);
  ~Listener() { close(); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Prints "listening on HOST:PORT" (what tests and the runner wait for).
  void announce() const;
  // Any thread, at stop: wakes every accept() blocked on this socket, in this process and in
  // every child that shares it, and from then on refuses newcomers instead of queueing them.
  void shut();
  // Closes the descriptor (a child that serves one connection does not keep the listener).
  void close();
  // accept_blocking() on this socket, with its back-off; any thread, as often as wanted.
  template <class Admit, class Spawn>
  void accept_each(Admit admit, Spawn spawn) {
    accept_blocking(fd_, backoff_, std::move(admit), std::move(spawn));
  }

 private:
  const std::string host_;
  int fd_;
  AcceptBackoff backoff_;
};

// The loop models' spare-descriptor trick, out of descriptors (EMFILE, ENFILE): give back the
// descriptor held for this moment (`spare_fd`, /dev/null), accept the waiting client on it and
// close it at once (the client sees the connection closed rather than hanging in the backlog),
// then take the spare again. Returns true if a client was shed and the spare is held again; the
// caller backs off otherwise. Needs a non-blocking listener.
bool shed_with_spare(int listen_fd, int& spare_fd);

// A connection the server accepted but has no thread, process or fiber for: counts an error
// and logs `what` and `why` ("cannot fork", "Resource temporarily unavailable") at most once a
// second. The caller closes the connection, which the client sees closed unanswered.
void refuse_connection(std::string_view what, std::string_view why);

}  // namespace shootout
