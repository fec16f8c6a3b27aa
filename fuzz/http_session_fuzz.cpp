// libFuzzer target: the http handler's session (Beast's request parser, the routes and the
// Next protocol together), fed arbitrary bytes in arbitrary splits, with no I/O at all.
//
// Input layout: byte 0 says how many of the next bytes are piece sizes (0..15); each of those
// bytes gives the size of one piece (1..64, used in turn, cycling); the rest is the request
// stream. So "\x00GET / ..." feeds the stream in one piece and "\x01\x00GET / ..." byte by byte.
//
// Each input is driven twice, once whole and once in the chosen pieces, the way every model
// drives a session (on_input after Next::read, on_resume after Next::resume, on_work_done after
// Next::work, nothing after Next::close). Work completes at once with a fake result: no sleep,
// no burnt CPU, no file opened; the clock is frozen (time() below). Then it checks (and aborts,
// which libFuzzer reports as a crash):
//   - both runs wrote the same bytes (Date values masked), closed alike and, if open, agree on
//     mid_request(): a split never changes the answer (check_split: no allowance);
//   - the output is a sequence of complete, well-formed responses (Beast's response parser),
//     one per request that a reference request parser finds in the stream (with the handler's
//     own rules written again: smuggling, body and framing limits, RFC 9112's Host, target,
//     version and empty-line rules), in order, a HEAD
//     answered without a body, each keep-alive exactly when its request keeps the connection;
//   - the session closed exactly when the last expected response closes the connection;
//   - every Work asked for is within the handler's limits (and a file path inside the root).
// ASan and UBSan (-fsanitize=fuzzer,address,undefined) catch memory and undefined behaviour.
#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "handler.hpp"

namespace {

using namespace shootout;
namespace http = boost::beast::http;

using fuzz::kHeaderLimit, fuzz::kBodyLimit, fuzz::kMaxBytes, fuzz::kMaxFile, fuzz::kRoot;
constexpr std::size_t kMaxResumes =
    100'000;  // a resume loop must end (pipelined output yields too)

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  fuzz::fail("http_session_fuzz", what, detail);
}

HandlerConfig fuzz_config() { return fuzz::config(); }

// Checks a Work request against the handler's promises, then "does" it at once. A file's
// result (contents, or one of the errors a read can give) is chosen from its path, so the two
// runs of one input see the same result.
WorkResult fake_work(const Work& w) {
  switch (w.kind) {
    case Work::Kind::sleep:
      if (w.amount > std::chrono::seconds(60)) fail("sleep longer than 60 s asked for");
      return {};
    case Work::Kind::cpu:
      if (w.amount > std::chrono::seconds(10)) fail("cpu longer than 10 s asked for");
      return {};
    case Work::Kind::file: {
      std::string_view path = w.path, root = kRoot;
      if (path.substr(0, root.size() + 1) != std::string(root) + "/")
        fail("file outside root", path);
      std::string_view name = path.substr(root.size() + 1);
      if (name.empty() || name.front() == '.' || name.find('/') != std::string_view::npos)
        fail("unsafe file name", path);
      if (w.limit != kMaxFile) fail("file limit is not --max-file", path);
      switch (std::hash<std::string_view>{}(path) % 5) {
        case 0:
          return {"contents of " + w.path, 0};
        case 1:
          return {{}, ENOENT};
        case 2:
          return {{}, EFBIG};
        case 3:
          return {{}, EACCES};
        default:
          return {{}, EIO};
      }
    }
  }
  fail("unknown work kind");
}

struct Run {
  std::string out;
  bool closed = false;
  bool mid_request = false;  // at the end: waiting for the rest of a request
};

// Follows the Next protocol until the session wants input again or closes.
void settle(Session& s, Next next, Run& run) {
  std::size_t resumes = 0;
  for (;;) {
    switch (next) {
      case Next::read:
        return;
      case Next::close:
        run.closed = true;
        return;
      case Next::resume:
        if (++resumes > kMaxResumes) fail("resume never ends");
        next = s.on_resume(run.out);
        break;
      case Next::work:
        next = s.on_work_done(fake_work(s.pending_work()), run.out);
        break;
    }
  }
}

// Feeds `stream` to a fresh session in pieces of the given sizes (cycled; none = one piece).
Run drive(const Handler& handler, std::string_view stream, const std::vector<std::size_t>& sizes) {
  Run run;
  auto session = handler.new_session();
  for (std::size_t i = 0; !stream.empty() && !run.closed; ++i) {
    std::size_t n =
        sizes.empty() ? stream.size() : std::min(stream.size(), sizes[i % sizes.size()]);
    settle(*session, session->on_input(stream.substr(0, n), run.out), run);
    stream.remove_prefix(n);
    run.mid_request = session->mid_request();  // callable at any time between calls
  }
  return run;
}

// What a response must look like, from an independent parse of the request stream with the
// same limits: one entry per request the session must answer, up to the one that closes.
struct Expect {
  bool head = false;   // HEAD: no body follows the header
  bool close = false;  // the connection closes after this response
};

// The handler's own rule against request smuggling (common/http_handler.cpp), which Beast does
// not apply: a Transfer-Encoding whose last coding is not chunked, or any Transfer-Encoding in
// HTTP/1.0, is rejected as soon as the header is complete.
bool unreliable_framing(const http::request_parser<http::string_body>& p) {
  if (!p.is_header_done()) return false;
  const auto& req = p.get();
  return req.find(http::field::transfer_encoding) != req.end() &&
         (!p.chunked() || req.version() < 11);
}

// uri-host [":" port] (RFC 3986 3.2.2), checked by character sets, where the handler scans
// character by character. (Not std::regex: libstdc++ matches recursively, a frame per
// character, and the fuzzer makes long values.)
bool authority_ok(std::string_view a) {
  static constexpr std::string_view kRegName =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=";
  static const std::string kRegNameOrPct = std::string(kRegName) + "%";
  static const std::string kLiteral = std::string(kRegName) + ":";
  auto is_hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  std::string_view port;
  if (!a.empty() && a.front() == '[') {
    const auto close = a.find(']');
    if (close == std::string_view::npos) return false;
    const auto inner = a.substr(1, close - 1);
    if (inner.empty() || inner.find_first_not_of(kLiteral) != std::string_view::npos) return false;
    port = a.substr(close + 1);
  } else {
    const auto colon = a.find(':');
    const auto host = a.substr(0, colon);
    if (host.find_first_not_of(kRegNameOrPct) != std::string_view::npos) return false;
    for (auto at = host.find('%'); at != std::string_view::npos; at = host.find('%', at + 1))
      if (at + 2 >= host.size() || !is_hex(host[at + 1]) || !is_hex(host[at + 2])) return false;
    port = colon == std::string_view::npos ? std::string_view{} : a.substr(colon);
  }
  return port.empty() ||
         (port.front() == ':' && port.find_first_not_of("0123456789", 1) == std::string_view::npos);
}

// RFC 9112 3.2 as the handler reads it, once the request line has been parsed (Beast parses
// it as soon as its CRLF is there, before the rest of the header): a target that is not
// origin-form, asterisk-form for OPTIONS, authority-form for CONNECT or an http(s)
// absolute-form with a valid non-empty authority is refused (answered, then closed).
bool target_refused(const http::request_parser<http::string_body>& p) {
  const auto& req = p.get();
  const std::string_view target(req.target().data(), req.target().size());
  auto absolute_ok = [](std::string_view t) {
    std::string lower(t.substr(0, 8));
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::size_t skip = lower.rfind("http://", 0) == 0 ? 7 : lower.rfind("https://", 0) == 0 ? 8 : 0;
    if (skip == 0) return false;
    const auto authority = t.substr(skip, t.substr(skip).find_first_of("/?"));
    return !authority.empty() && authority_ok(authority);
  };
  return !((!target.empty() && target.front() == '/') ||
           (target == "*" && req.method() == http::verb::options) ||
           (req.method() == http::verb::connect && !target.empty() && authority_ok(target)) ||
           absolute_ok(target));
}

// And once the header is whole: two Host fields, an invalid one, or none in HTTP/1.1.
bool host_refused(const http::request_parser<http::string_body>& p) {
  const auto& req = p.get();
  const auto hosts = req.count(http::field::host);
  if (hosts > 1 || (hosts == 0 && req.version() >= 11)) return true;
  const auto host = req[http::field::host];
  return hosts == 1 && !authority_ok(std::string_view(host.data(), host.size()));
}

std::vector<Expect> expected_responses(std::string_view stream) {
  std::vector<Expect> all;
  std::string patched;  // the stream's rest with a request line's version rewritten
  std::optional<http::request_parser<http::string_body>> p;
  // The handler counts a chunked body against its limit itself (common/http_handler.cpp): the
  // chunk sizes added up, each once its chunk-size line is complete, extensions included.
  // Beast checks a chunk's size before the line's extensions, so a line whose extension never
  // ends would be 413 here and still waiting in the handler. A Content-Length over the limit is
  // rejected as soon as the header is complete by both.
  std::uint64_t chunks = 0;  // the sizes of the current request's chunks so far
  auto count_chunk = [&chunks](std::uint64_t size, boost::beast::string_view,
                               boost::beast::error_code& ec) {
    if (size > kBodyLimit - chunks)
      ec = http::error::body_limit;
    else
      chunks += size;
  };
  while (!stream.empty()) {
    if (!p) {
      while (stream.substr(0, 2) == "\r\n") stream.remove_prefix(2);  // RFC 9112 2.2
      if (stream.empty() || stream == "\r") break;  // a CR that may start one more: waits
      // RFC 9112 2.3: HTTP/1.2 to 1.9 are read as 1.1 (Beast takes only 1.0 and 1.1): the 8
      // bytes after the first line's second space, within the header limit, once they are there.
      const auto line = stream.substr(0, std::min(stream.find("\r\n"), kHeaderLimit));
      const auto sp1 = line.find(' ');
      const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
      if (sp2 != std::string_view::npos && line.size() >= sp2 + 9 &&
          line.substr(sp2 + 1, 7) == "HTTP/1." && line[sp2 + 8] >= '2' && line[sp2 + 8] <= '9') {
        std::string copy(stream);
        copy[sp2 + 8] = '1';
        patched = std::move(copy);
        stream = patched;
      }
      p.emplace();  // not eager: put() stops once the header is complete, to set up the body
      p->header_limit(static_cast<std::uint32_t>(kHeaderLimit));
      p->body_limit(kBodyLimit);
      p->on_chunk_header(count_chunk);
      chunks = 0;
    }
    // A body is given to the parser a header limit at a time; a chunk-size line or a trailer
    // section that does not fit in one such window is refused (413, 431), as in the handler.
    const bool body = p->is_header_done();
    const std::size_t window = body ? std::min(stream.size(), kHeaderLimit) : stream.size();
    boost::beast::error_code ec;
    const std::size_t n = p->put(boost::asio::buffer(stream.data(), window), ec);
    stream.remove_prefix(n);
    if (!ec && !body && p->is_header_done()) {
      if (p->chunked()) p->body_limit(std::numeric_limits<std::uint64_t>::max());  // counted
      p->eager(true);
    }
    const bool framing_too_long =
        body && ec == http::error::need_more && n == 0 && window == kHeaderLimit;
    const bool line_parsed = !p->get().target().empty();  // Beast never takes an empty one
    if ((ec && ec != http::error::need_more) || framing_too_long ||
        (!body && line_parsed && target_refused(*p)) ||
        (!body && p->is_header_done() && (unreliable_framing(*p) || host_refused(*p)))) {
      all.push_back({false, true});  // answered 400/413/414/431/505, then closed
      break;
    }
    if (ec == http::error::need_more && n > 0 && !stream.empty()) continue;  // window ended
    if (ec) break;  // need_more: the rest of the request never came
    if (!p->is_done()) continue;
    // The parser's keep_alive() (every Connection field), not the message's (the first only).
    all.push_back({p->get().method() == http::verb::head, !p->keep_alive()});
    if (all.back().close) break;
    p.reset();
  }
  return all;
}

// Checks `out` is exactly the expected responses, each complete and well formed.
void check_responses(std::string_view out, const std::vector<Expect>& want, bool closed) {
  std::size_t i = 0;
  for (; !out.empty(); ++i) {
    if (i >= want.size()) fail("more responses than requests", out);
    http::response_parser<http::string_body> p;
    p.body_limit(kMaxBytes + 1);
    p.eager(true);
    p.skip(want[i].head);
    boost::beast::error_code ec;
    std::size_t used = p.put(boost::asio::buffer(out.data(), out.size()), ec);
    if (ec || !p.is_done()) fail("malformed or incomplete response", out);
    const auto& res = p.get();
    if (res[http::field::content_length].empty()) fail("response without Content-Length", out);
    if (res.keep_alive() == want[i].close) fail("keep-alive does not follow the request", out);
    out.remove_prefix(used);
  }
  if (i != want.size()) fail("a request was not answered");
  if (closed != (!want.empty() && want.back().close)) fail("closed when it should not (or not)");
}

// Date changes once a second: masked, so the check holds with a real clock too (time() is
// frozen above).
std::string mask_dates(std::string s) {
  static constexpr std::string_view kDate = "\r\nDate: ";
  for (auto at = s.find(kDate); at != std::string::npos; at = s.find(kDate, at + 1))
    for (auto j = at + kDate.size(); j < s.size() && s[j] != '\r'; ++j) s[j] = '#';
  return s;
}

// A split never changes the answer: both runs wrote the same bytes (Date masked) and closed
// alike, and when both are still open they agree whether a request is half received (which
// picks the server's request timeout or its idle timeout). No allowance: this check used to
// let a malformed request be rejected in one run and rejected differently, or later, in the
// other, blamed on Beast 1.74 re-parsing bytes after a need_more. The differences were the
// handler's, and are fixed (docs/SANITIZERS.md, "What the fuzzer found"): a header is parsed
// from its first byte until it is complete, and the body limit counts each chunk once.
void check_split(const Run& whole, const Run& split, std::string_view stream) {
  if (mask_dates(whole.out) == mask_dates(split.out) && whole.closed == split.closed &&
      (whole.closed || whole.mid_request == split.mid_request))
    return;
  auto state = [](const Run& r) {
    return std::string(r.closed ? " (closed)" : r.mid_request ? " (mid-request)" : "");
  };
  fail("a split changed the output", "whole" + state(whole) + ":\n" + whole.out + "\nsplit" +
                                         state(split) + ":\n" + split.out + "\nstream:\n" +
                                         std::string(stream));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t cuts = std::min<std::size_t>(data[0] % 16, size - 1);
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < cuts; ++i) sizes.push_back(data[1 + i] % 64 + 1);
  std::string_view stream(reinterpret_cast<const char*>(data) + 1 + cuts, size - 1 - cuts);

  static const auto handler = make_handler("http", fuzz_config());
  Run whole = drive(*handler, stream, {});
  Run split = drive(*handler, stream, sizes);
  check_split(whole, split, stream);
  check_responses(whole.out, expected_responses(stream), whole.closed);
  return 0;
}
