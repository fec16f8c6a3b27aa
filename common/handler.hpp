#pragma once
// The protocol core: a handler turns bytes in into bytes out. It never does I/O.
//
// A model (forked, threaded, evented, coroutine) owns the sockets. For each connection it asks
// the Handler for a Session and then drives it with three calls. Each call appends the bytes to
// send to `out` and returns what the session wants next:
//
//   Next::read    send `out`, then call on_input() with the next bytes that arrive
//   Next::resume  send `out`; when it has *all* been written, call on_resume()   (back-pressure:
//                 a large body is produced a chunk at a time, and the answers to many
//                 pipelined requests a batch at a time, never all at once)
//   Next::work    send `out`, then fulfil pending_work() and call on_work_done() (blocking work:
//                 the model decides how, e.g. inline, on a timer, on a helper pool, in a fiber)
//   Next::close   send `out`, then close the connection
//
// A session consumes every byte it is given (it buffers what it cannot use yet), so the model
// never keeps unconsumed input. After returning resume or work, a session must not be fed input
// until a later call returns Next::read. While idle (between requests) a session holds no
// buffers, so an idle connection costs only the few bytes of the session object itself.
//
// Example: a handler that answers every line with its length.
//
//   class LenSession final : public Session {
//     std::string line_;
//    public:
//     Next on_input(std::string_view in, std::string& out) override {
//       for (char c : in) {
//         if (c != '\n') { line_ += c; continue; }
//         out += std::to_string(line_.size()) + "\n";
//         line_.clear();
//       }
//       return Next::read;
//     }
//     bool mid_request() const override { return !line_.empty(); }
//   };
//   class LenHandler final : public Handler {
//    public:
//     std::unique_ptr<Session> new_session() const override {
//       return std::make_unique<LenSession>();
//     }
//   };
//   // and one line at the bottom of the file, which is all it takes to be `--handler len`:
//   SHOOTOUT_REGISTER_HANDLER("len", [](const HandlerConfig&) -> std::unique_ptr<Handler> {
//     return std::make_unique<LenHandler>();
//   });
//
// Where handler files live: common/ (http, echo: the built-ins) and handlers/ (every other;
// common/CMakeLists.txt globs handlers/*.cpp, and links them so no registration is dropped by
// the linker). A shared object loaded with --handler-lib (plugin.hpp) registers the same way.
//
// Threads: a Handler is immutable after construction; new_session() may be called from any
// thread. A Session is used by one thread at a time (the thread, process or fiber that owns its
// connection); it is not thread-safe.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shootout {

// Blocking work a session asks its model to carry out.
struct Work {
  enum class Kind : std::uint8_t { sleep, cpu, file };
  Kind kind = Kind::sleep;
  std::chrono::microseconds amount{0};  // sleep: how long to wait; cpu: how long to burn
  std::string path;                     // file: absolute path, already confined to the root
  std::uint64_t limit = 0;              // file: largest size to read (EFBIG past it)
};

// What the model hands back when the work is done.
struct WorkResult {
  std::string data;  // file: the file's contents
  int error = 0;     // file: errno from open/read (0 on success); sleep/cpu: always 0
};

enum class Next : std::uint8_t { read, resume, work, close };

class Session {
 public:
  virtual ~Session() = default;
  // Bytes that arrived. `in` may be any split of the stream, including one byte.
  virtual Next on_input(std::string_view in, std::string& out) = 0;
  // Called after Next::resume once everything sent so far has been written.
  virtual Next on_resume(std::string& out);
  // Called after Next::work with the result of pending_work().
  virtual Next on_work_done(WorkResult result, std::string& out);
  // The work asked for by the last Next::work. Valid until on_work_done().
  virtual const Work& pending_work() const;
  // True while part of a request has arrived: the model applies the request (slowloris)
  // timeout instead of the keep-alive idle timeout.
  virtual bool mid_request() const { return false; }
};

// Limits and settings every handler receives (flags of `shootout serve`).
struct HandlerConfig {
  std::size_t header_limit = 8 * 1024;     // bytes of request line + headers, else 431
  std::uint64_t body_limit = 1024 * 1024;  // bytes of request body, else 413
  std::string file_root;                   // directory served by /file ("" = /file is 404)
  std::uint64_t max_bytes = 1ull << 30;    // largest n of /bytes?n=
  std::uint64_t max_file = 64ull << 20;    // largest file /file will read
};

class Handler {
 public:
  virtual ~Handler() = default;
  virtual std::unique_ptr<Session> new_session() const = 0;
};

using HandlerFactory = std::function<std::unique_ptr<Handler>(const HandlerConfig&)>;

// The registry: every handler, by name. Handlers add themselves with SHOOTOUT_REGISTER_HANDLER
// (a static object whose constructor calls register_handler) before main() runs, or while a
// plug-in is dlopen()ed. Registering happens on one thread at a time (static initialisation,
// load_handler_library()); the lookups below may be called from any thread once it is over.
//
// register_handler() keeps the first factory of a name; a second one is not used and is
// listed by duplicate_handlers() (a plug-in that does that is refused: plugin.hpp).
void register_handler(std::string_view name, HandlerFactory make);
// Returns nullptr for an unknown name.
std::unique_ptr<Handler> make_handler(std::string_view name, const HandlerConfig& config);
std::vector<std::string> handler_names();  // sorted
std::vector<std::string> duplicate_handlers();

struct HandlerRegistration {
  HandlerRegistration(std::string_view name, HandlerFactory make) {
    register_handler(name, std::move(make));
  }
};

#define SHOOTOUT_REGISTRATION_CAT2(a, b) a##b
#define SHOOTOUT_REGISTRATION_CAT(a, b) SHOOTOUT_REGISTRATION_CAT2(a, b)
// One line at namespace scope, at the bottom of a handler's file: registers `name` (a string
// literal) with `factory` (a function or lambda: const HandlerConfig& -> unique_ptr<Handler>).
#define SHOOTOUT_REGISTER_HANDLER(name, factory)                                               \
  static const ::shootout::HandlerRegistration SHOOTOUT_REGISTRATION_CAT(shootout_handler_at_, \
                                                                         __LINE__) {           \
    name, factory                                                                              \
  }

// Fulfils a Work request on the calling thread, blocking it: nanosleep for sleep, a busy loop
// for cpu, open+read for file. Used by models that run work inline, and by helper pools.
WorkResult run_work_inline(const Work& work);

}  // namespace shootout
