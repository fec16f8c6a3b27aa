// libFuzzer target: a whole connection. The bytes a client sends, cut into arbitrary reads,
// go through serve_connection() (common/serve_connection.hpp), the driver the threaded, forked
// and coroutine models share, over the http handler's session; an Io stands in for the socket.
// Where http_session_fuzz checks the session against an independent parse of the stream, this
// checks the driver and the session together against the session driven directly:
//   - the bytes written are exactly those of the same stream fed to a session in one piece
//     and followed through the Next protocol (so no read, write, resume or work is lost,
//     doubled or reordered by the driver, whatever the reads' sizes);
//   - the connection ends: serve_connection() returns, at the session's close or at the end
//     of the stream, and never reads again after the session closed;
//   - no single write is larger than the session's yield (64 KiB of pipelined answers) plus
//     one response: what one read can cost in output memory is bounded, however many
//     requests it held (issue #17).
// Input layout as fuzz/http_session_fuzz.cpp's, so the two share fuzz/corpus/: byte 0 says
// how many of the next bytes are read sizes (0..15), each of those gives one read's size
// (1..255, cycled), the rest is the stream. Work completes at once with a fake result; the
// clock of the Date header is frozen.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "handler.hpp"
#include "serve_connection.hpp"
#include "serve_options.hpp"

namespace {

using namespace shootout;

// The session yields once 64 KiB of answers wait; the response that crossed the line may add
// one /bytes chunk (64 KiB) and a head, or a small answer.
constexpr std::size_t kMostInOneWrite = 64 * 1024 + 64 * 1024 + 1024;
constexpr std::size_t kMaxSteps = 200'000;  // session calls for one input: it must end

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  fuzz::fail("connection_fuzz", what, detail);
}

// Blocking work "done" at once; a file's result is chosen from its path, the same each time.
WorkResult fake_work(const Work& w) {
  if (w.kind != Work::Kind::file) return {};
  if (std::hash<std::string>{}(w.path) % 2 == 0) return {"contents of " + w.path, 0};
  return {{}, ENOENT};
}

// The socket: reads hand out the stream in the chosen sizes, then EOF; writes are kept.
class FuzzIo {
 public:
  FuzzIo(std::string_view stream, const std::vector<std::size_t>& sizes)
      : stream_(stream), sizes_(sizes) {}

  std::string_view read(std::chrono::milliseconds) {
    if (++steps_ > kMaxSteps) fail("the driver keeps reading");
    if (stream_.empty()) return {};
    const std::size_t n =
        sizes_.empty() ? stream_.size() : std::min(stream_.size(), sizes_[reads_ % sizes_.size()]);
    ++reads_;
    std::string_view piece = stream_.substr(0, n);
    stream_.remove_prefix(n);
    return piece;
  }
  bool write(std::string_view data) {
    if (++steps_ > kMaxSteps) fail("the driver keeps writing");
    if (data.empty()) fail("an empty write");
    if (data.size() > kMostInOneWrite)
      fail("one write larger than the yield allows", std::to_string(data.size()));
    out_.append(data);
    return true;
  }
  WorkResult work(const Work& w) {
    if (++steps_ > kMaxSteps) fail("the driver keeps asking for work");
    return fake_work(w);
  }
  bool stopping() const { return false; }

  const std::string& out() const { return out_; }

 private:
  std::string_view stream_;
  const std::vector<std::size_t>& sizes_;
  std::size_t reads_ = 0, steps_ = 0;
  std::string out_;
};

// The reference: the whole stream to a session at once, then the Next protocol followed
// until the session wants input again (the stream is over) or closes.
std::string reference(const Handler& handler, std::string_view stream, bool* closed) {
  auto session = handler.new_session();
  std::string out;
  *closed = false;
  if (stream.empty()) return out;
  Next next = session->on_input(stream, out);
  for (std::size_t steps = 0;; ++steps) {
    if (steps > kMaxSteps) fail("the session never settles");
    switch (next) {
      case Next::read:
        return out;
      case Next::close:
        *closed = true;
        return out;
      case Next::resume:
        next = session->on_resume(out);
        break;
      case Next::work:
        next = session->on_work_done(fake_work(session->pending_work()), out);
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::unique_ptr<Handler> handler = make_handler("http", fuzz::config());
  if (size == 0) return 0;
  const std::size_t count = std::min<std::size_t>(data[0] % 16, size - 1);
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < count; ++i) sizes.push_back(std::max<std::size_t>(1, data[1 + i]));
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1 + count, size - 1 - count);

  ServeOptions options;
  options.request_timeout = std::chrono::hours(1);  // no deadline can pass during one input
  options.idle_timeout = std::chrono::hours(1);
  auto session = handler->new_session();
  FuzzIo io(stream, sizes);
  serve_connection(*session, io, options);

  bool closed = false;
  const std::string expected = reference(*handler, stream, &closed);
  if (io.out() != expected)
    fail("the connection wrote other bytes than the session driven directly",
         io.out().substr(0, 1000) + "\n---- expected ----\n" + expected.substr(0, 1000));
  return 0;
}
