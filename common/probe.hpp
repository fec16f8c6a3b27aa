#pragma once
// The client side of a protocol: what the load generator sends, and how it tells where a
// response ends. A handler's file (the server side, handler.hpp) may have a probe file beside it
// (handlers/NAME_probe.cpp); `shootout load --handler NAME` then drives that protocol in every
// mode, with the same latency correction, error counts and JSON as HTTP and echo, which are two
// probes like any other (common/http_probe.cpp, common/echo_probe.cpp). Like a handler, a probe
// does no I/O: the load generator owns the sockets and hands it bytes.
//
// Per load connection the generator asks the Probe for a ProbeSession, then:
//   - to send, appends the bytes of requests k, k+1, ... (k counts from 0 on each new socket);
//   - for the bytes received, calls scan() until it says more: each call either finds the end
//     of a response (done: how long it was, whether it is an error answer, whether the server
//     closes after it), or wants more bytes, or finds bytes that cannot be a response (bad: the
//     connection is closed and counted as a body error).
//
// scan() is given the bytes received and not yet consumed: `used` says how many it consumed.
// A probe may consume nothing until a whole response is there (the simple way; the generator
// keeps the rest and calls again with more appended, up to kMaxUnconsumed bytes, past which the
// connection fails with a body error), or consume as it goes and keep its own state (HTTP and
// echo do, so a large body costs no memory).
//
// Example, a probe for the "len" handler of handler.hpp (answers each line with its length):
//
//   class LenProbeSession final : public ProbeSession {
//    public:
//     void request(std::uint64_t k, std::string& out) override {
//       out += fmt::format("line {}\n", k);
//     }
//     Scan scan(std::string_view in) override {
//       auto nl = in.find('\n');
//       if (nl == std::string_view::npos) return Scan::more();
//       return Scan::done(nl + 1, /*error=*/false);
//     }
//   };
//   class LenProbe final : public Probe {
//    public:
//     std::unique_ptr<ProbeSession> new_session(std::size_t) const override {
//       return std::make_unique<LenProbeSession>();
//     }
//   };
//   SHOOTOUT_REGISTER_PROBE("len", [](const ProbeConfig&) -> std::unique_ptr<Probe> {
//     return std::make_unique<LenProbe>();
//   });
//
// Threads: a Probe is built on the generator's main thread and immutable after; new_session()
// may be called from any thread. A ProbeSession belongs to one load connection and is used by
// that connection's worker thread only. Registration is as for handlers (handler.hpp).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "handler.hpp"  // the registration macros' helpers

namespace shootout {

// What the probe is told about the run (`shootout load`'s target and flags).
struct ProbeConfig {
  std::string host;
  std::uint16_t port = 0;
  std::string path = "/";            // the target's path: HTTP's request path; others may use it
                                     // to choose a workload (resp: /ping, /get, /set, /incr)
  std::vector<std::string> headers;  // -H "Name: value" (HTTP)
  std::size_t size = 0;              // --echo/--size: payload bytes a request (0: the default)
  int pipeline = 1;                  // requests a batch (closed loop)
};

// What scan() found.
struct Scan {
  enum class Kind : std::uint8_t { more, done, bad };
  Kind kind = Kind::more;
  std::size_t used = 0;      // bytes of `in` consumed
  bool error = false;        // done: an error answer (HTTP status not 2xx/3xx, RESP -ERR): it
                             // counts as a response and as an error (errors.status)
  bool closes = false;       // done: the server closes the connection after this response
  std::uint64_t length = 0;  // done: bytes of the whole response (bytes_read)

  static Scan more(std::size_t used = 0) { return {Kind::more, used, false, false, 0}; }
  static Scan done(std::size_t used, bool error, std::uint64_t length, bool closes = false) {
    return {Kind::done, used, error, closes, length};
  }
  static Scan done(std::size_t used, bool error) { return done(used, error, used); }
  static Scan bad() { return {Kind::bad, 0, false, false, 0}; }
};

// Unconsumed bytes the generator keeps for a probe before it gives up on the connection.
inline constexpr std::size_t kMaxUnconsumed = 1 << 20;

class ProbeSession {
 public:
  virtual ~ProbeSession() = default;
  // Appends the bytes of request k (0, 1, 2, ... on this socket).
  virtual void request(std::uint64_t k, std::string& out) = 0;
  // The bytes of requests k .. k+count-1, back to back. The default appends them to `scratch`
  // (cleared first, its capacity reused) and returns it; a probe whose requests do not vary may
  // return a view of memory it keeps (valid until this session's next call), so a send copies
  // nothing.
  virtual std::string_view batch(std::uint64_t k, int count, std::string& scratch) {
    scratch.clear();
    for (int i = 0; i < count; ++i) request(k + static_cast<std::uint64_t>(i), scratch);
    return scratch;
  }
  // `in`: the bytes received and not yet consumed (never empty). See the top of this file.
  virtual Scan scan(std::string_view in) = 0;
  // The server closed the stream mid-response: a response delimited by the end of the stream
  // (HTTP without Content-Length) is done here; anything else is bad (a read error).
  virtual Scan at_eof() { return Scan::bad(); }
  // A new socket: forget the previous one's state.
  virtual void reset() {}
};

class Probe {
 public:
  virtual ~Probe() = default;
  // `connection`: the load connection's global index (lets requests differ between them).
  virtual std::unique_ptr<ProbeSession> new_session(std::size_t connection) const = 0;
};

// Throws std::invalid_argument, with a message for the user, on a config it cannot serve.
using ProbeFactory = std::function<std::unique_ptr<Probe>(const ProbeConfig&)>;

// The probe registry, keyed by the handler's name; the same rules as the handler registry.
void register_probe(std::string_view name, ProbeFactory make);
std::unique_ptr<Probe> make_probe(std::string_view name, const ProbeConfig& config);
std::vector<std::string> probe_names();  // sorted
std::vector<std::string> duplicate_probes();

struct ProbeRegistration {
  ProbeRegistration(std::string_view name, ProbeFactory make) {
    register_probe(name, std::move(make));
  }
};

// One line at namespace scope, at the bottom of a probe's file.
#define SHOOTOUT_REGISTER_PROBE(name, factory)                                             \
  static const ::shootout::ProbeRegistration SHOOTOUT_REGISTRATION_CAT(shootout_probe_at_, \
                                                                       __LINE__) {         \
    name, factory                                                                          \
  }

}  // namespace shootout
