#pragma once
// serve_connection(): drives one Session over a blocking stream until the connection ends;
// serve_accepted(): what comes around it for an accepted connection.
//
// Every model whose connections each have their own flow of control uses it unchanged: a
// thread (threaded), a process (forked, prefork), a fiber (coroutine). Only the Io type differs,
// and that difference *is* the model:
//
//   struct Io {
//     // Waits at most `timeout` for bytes and reads some into a buffer the Io owns. Returns
//     // them (valid until the next read), or an empty view on EOF, timeout or error.
//     std::string_view read(std::chrono::milliseconds timeout);
//     bool write(std::string_view data);   // all of it, or false (connection is done)
//     WorkResult work(const Work& w);      // fulfils blocking work, however the model does
//     bool stopping() const;               // the server is shutting down
//   };
//
// Timeouts: while a request is partly received, the whole request must arrive within
// request_timeout of its first byte (slowloris); between requests, a keep-alive connection may
// stay idle for idle_timeout. At shutdown an idle connection is closed at once; one with a
// request in flight finishes that response first.
//
// Thread: the one that owns the connection. The caller owns the socket and closes it.
#include <chrono>
#include <exception>
#include <string>
#include <string_view>

#include "handler.hpp"
#include "log.hpp"
#include "net.hpp"
#include "serve_options.hpp"
#include "stats.hpp"

namespace shootout {

template <class Io>
void serve_connection(Session& session, Io& io, const ServeOptions& options) {
  using Clock = std::chrono::steady_clock;
  using std::chrono::milliseconds;
  std::string out;
  Next next = Next::read;
  Clock::time_point request_deadline{};
  for (;;) {
    if (!out.empty()) {
      if (!io.write(out)) return;
      out.clear();
    }
    switch (next) {
      case Next::close:
        return;
      case Next::resume:
        next = session.on_resume(out);
        continue;
      case Next::work:
        next = session.on_work_done(io.work(session.pending_work()), out);
        continue;
      case Next::read:
        break;
    }
    const bool mid = session.mid_request();
    if (!mid && io.stopping()) return;
    milliseconds timeout = options.idle_timeout;
    if (mid) {
      timeout = std::chrono::ceil<milliseconds>(request_deadline - Clock::now());
      if (timeout <= milliseconds::zero()) return;  // request too slow: drop the connection
    }
    std::string_view in = io.read(timeout);
    if (in.empty()) return;
    if (!mid) request_deadline = Clock::now() + options.request_timeout;
    next = session.on_input(in, out);
  }
}

// Everything a model with a flow of control per connection does with an accepted connection
// around serve_connection(): counts it, turns Nagle off (responses are written whole), makes
// the handler's session and runs `serve(session)`, which builds the model's Io and calls
// serve_connection(). An exception (no memory for the session, say) ends only this connection
// and is logged. Runs on the connection's own flow of control; the caller closes fd after.
template <class Serve>
void serve_accepted(int fd, const Handler& handler, Serve&& serve) noexcept {
  counters().connections.fetch_add(1, std::memory_order_relaxed);
  set_nodelay(fd);
  try {
    auto session = handler.new_session();
    serve(*session);
  } catch (const std::exception& e) {
    log_line("connection dropped: {}", e.what());
  }
}

}  // namespace shootout
