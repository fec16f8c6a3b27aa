// http: HTTP/1.1 with keep-alive and pipelining. Boost.Beast's parser reads the requests; this
// file only routes them and writes the responses.
//
// Routes: GET /  (13-byte "Hello, World!")   GET /sleep?ms=N   GET /cpu?us=N
//         GET /file?name=F   GET /bytes?n=N   — HEAD works wherever GET does.
// Errors: 404 unknown path, 405 other methods, 501 unknown methods (keep-alive); then closed:
//         400 malformed (ambiguous framing, a missing, repeated or invalid Host, a target in
//         no RFC 9112 form included), 505 an HTTP major version other than 1, 414 a request
//         line longer than the header limit, 431 a header section (or a chunked body's
//         trailer section) over the header limit, 413 a body over the body limit or a
//         chunk-size line over the header limit. docs/ROBUSTNESS.md lists RFC 9112's server
//         requirements and the test that checks each.
#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/status.hpp>
#include <charconv>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "handler.hpp"
#include "stats.hpp"

namespace shootout {

namespace {

namespace http = boost::beast::http;
using boost::beast::error_code;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
// RFC 3986 unreserved and sub-delims: what a reg-name is made of, besides %XX.
bool is_host_char(char c) {
  return is_alpha(c) || is_digit(c) ||
         std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
}

// RFC 9112 3.2 and RFC 3986 3.2.2: uri-host [":" port], where uri-host is an IP-literal
// ("[...]") or a reg-name (which covers IPv4 addresses). Userinfo ("user@") is not part of it.
// Empty is valid: a client sends an empty Host when the target URI has no authority.
bool valid_authority(std::string_view v) {
  std::size_t i = 0;
  if (!v.empty() && v.front() == '[') {
    const auto close = v.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : v.substr(1, close - 1))
      if (!is_host_char(c) && c != ':') return false;
    i = close + 1;
  } else {
    while (i < v.size() && v[i] != ':') {
      if (v[i] == '%') {
        if (i + 2 >= v.size() || !is_hex(v[i + 1]) || !is_hex(v[i + 2])) return false;
        i += 3;
      } else if (is_host_char(v[i])) {
        ++i;
      } else {
        return false;
      }
    }
  }
  if (i == v.size()) return true;
  if (v[i] != ':') return false;
  for (char c : v.substr(i + 1))
    if (!is_digit(c)) return false;
  return true;
}

// RFC 9112 3.2.2: a server MUST accept the absolute-form ("http://host:port/path?query") and
// use the target's own host, ignoring Host. Returns the origin-form of an http or https
// absolute-form target ("/path?query", "/" when the path is empty); nullopt when `t` is not
// one, or its authority is empty (RFC 9110 4.2.1) or invalid (userinfo included, 4.2.4).
std::optional<std::string> origin_form_of(std::string_view t) {
  const auto colon = t.find("://");
  if (colon == std::string_view::npos) return std::nullopt;
  std::string scheme(t.substr(0, colon));
  for (char& c : scheme) c = static_cast<char>(c | 0x20);  // schemes are case-insensitive
  if (scheme != "http" && scheme != "https") return std::nullopt;
  t.remove_prefix(colon + 3);
  const auto end = std::min(t.find('/'), t.find('?'));
  const std::string_view authority = t.substr(0, end);
  if (authority.empty() || !valid_authority(authority)) return std::nullopt;
  if (end == std::string_view::npos) return std::string("/");
  std::string origin = t[end] == '?' ? "/" : "";
  origin.append(t.substr(end));
  return origin;
}

// The version of the request line that starts `bytes`, read where Beast reads it: the 8 bytes
// after the second space, once they have arrived on the first line, when they are "HTTP/D.D".
// Beast checks the version as soon as those 8 bytes are there, before the line's CRLF, so this
// must not wait for the CRLF either: the verdict is then the same in every split.
struct LineVersion {
  char major;
  char minor;
  std::size_t minor_at;  // index of the minor digit in `bytes`
};
std::optional<LineVersion> request_line_version(std::string_view bytes) {
  const std::string_view line = bytes.substr(0, bytes.find("\r\n"));
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.size() < sp2 + 9) return std::nullopt;
  const std::string_view v = line.substr(sp2 + 1, 8);
  if (v.substr(0, 5) != "HTTP/" || !is_digit(v[5]) || v[6] != '.' || !is_digit(v[7]))
    return std::nullopt;
  return LineVersion{v[5], v[7], sp2 + 8};
}

// Beast's request parser, kept to what the routes use: the request line is copied (a short
// target stays in the string's inline buffer), header fields are parsed, validated and counted
// by Beast (Content-Length / Transfer-Encoding conflicts, the header limit, keep-alive) but not
// stored, and a body is read and dropped (no route takes one; its limit is applied here). So
// a request costs no allocation, where http::request_parser<string_body> allocates a node per
// header field.
class RequestParser final : public http::basic_parser<true> {
 public:
  RequestParser(std::uint32_t header_limit, std::uint64_t body_limit) : body_limit_(body_limit) {
    this->header_limit(header_limit);
    // Counted here instead (on_header_impl, on_chunk_header_impl). Not boost::none: Beast
    // 1.74 compares a Content-Length with the optional, and none is less than every value.
    this->body_limit(std::numeric_limits<std::uint64_t>::max());
    // Not eager until the header is done (parse_from): put() stops at the end of the header,
    // so a body is always parsed in the bounded windows framing_status describes.
    eager(false);
  }
  RequestParser(RequestParser&&) = default;

  http::verb method() const { return method_; }
  // The target in origin-form ("/path?query"), whatever form the request used; "*" for
  // OPTIONS * and the authority for CONNECT, which no route serves.
  std::string_view target() const { return target_; }
  int version() const { return version_; }

 private:
  // RFC 9112 3.2: a request target is origin-form, absolute-form (accepted, and routed by its
  // path), authority-form (CONNECT only) or asterisk-form (OPTIONS only); anything else is
  // 400. (Beast calls this only for HTTP/1.0 and 1.1: see request_line_version.)
  void on_request_impl(http::verb method, boost::beast::string_view,
                       boost::beast::string_view target, int version, error_code& ec) override {
    method_ = method;
    version_ = version;
    const std::string_view t(target.data(), target.size());
    if ((!t.empty() && t.front() == '/') || (t == "*" && method == http::verb::options) ||
        (method == http::verb::connect && valid_authority(t) && !t.empty())) {
      target_.assign(t);
    } else if (auto origin = origin_form_of(t)) {
      target_ = std::move(*origin);
    } else {
      ec = http::error::bad_target;
    }
    if (ec && target_.empty()) target_ = "?";  // a request line was read: 400, never 414
  }
  void on_response_impl(int, boost::beast::string_view, int, error_code&) override {}
  void on_field_impl(http::field f, boost::beast::string_view, boost::beast::string_view value,
                     error_code&) override {
    if (f == http::field::transfer_encoding) transfer_encoding_ = true;
    if (f == http::field::host) {
      ++hosts_;
      host_valid_ = host_valid_ && valid_authority({value.data(), value.size()});
    }
  }
  // RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host, and to any
  // request with two Host fields or an invalid one (checked first: it is the request's own
  // fault whatever its framing says). Beast takes a Transfer-Encoding whose last coding is
  // not chunked ("gzip", "chunked, identity", "chunked, chunked") to mean "no body", so the
  // body would be parsed as the next request: request smuggling. RFC 9112 6.1 and 6.3: such a
  // request, and any HTTP/1.0 request with Transfer-Encoding, has unreliable framing: answer
  // 400 and close.
  void on_header_impl(error_code& ec) override {
    if (hosts_ > 1 || (hosts_ == 0 && version_ >= 11) || !host_valid_)
      ec = http::error::bad_field;
    else if (content_length() && *content_length() > body_limit_)
      ec = http::error::body_limit;  // where Beast's own check would have answered
    else if (transfer_encoding_ && (!chunked() || version_ < 11))
      ec = http::error::bad_transfer_encoding;
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(boost::beast::string_view body, error_code&) override {
    return body.size();
  }
  // The body limit counts each chunk once, when its chunk-size line has been parsed whole.
  // Beast 1.74 takes a chunk's size off its own limit before it parses the line's extensions,
  // and again each time it parses the line anew because an extension ran past the end of the
  // bytes received (a quoted string that crosses the CRLF), so a malformed chunk-size line
  // that arrived in several reads was answered 413 instead of 400 (found by fuzz/).
  void on_chunk_header_impl(std::uint64_t size, boost::beast::string_view,
                            error_code& ec) override {
    if (size > body_limit_ - body_seen_) {
      ec = http::error::body_limit;
      return;
    }
    body_seen_ += size;
  }
  std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                                 error_code&) override {
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  http::verb method_ = http::verb::unknown;
  std::string target_;
  int version_ = 11;
  int hosts_ = 0;                   // Host fields seen
  bool host_valid_ = true;          // ... and each of them valid
  bool transfer_encoding_ = false;  // the request has a Transfer-Encoding field
  std::uint64_t body_limit_;        // --body-limit
  std::uint64_t body_seen_ = 0;     // chunked: the sizes of the chunks announced so far
};

constexpr std::size_t kChunk = 64 * 1024;  // /bytes body produced this much at a time
// Pipelined requests are answered until this much output is waiting, then the session yields
// (Next::resume) and parses the rest once the model has sent it: what one read costs in memory
// is bounded by this plus one response, however many requests the read held.
constexpr std::size_t kYieldOutput = 64 * 1024;
constexpr std::uint64_t kMaxSleepMs = 60'000;
constexpr std::uint64_t kMaxCpuUs = 10'000'000;

// "\r\nServer: shootout\r\nDate: Sun, 22 Nov 2026 22:05:15 GMT\r\nContent-Type: ": the
// part of every response head between the status line and the content type, rebuilt at most
// once a second per thread (each thread its own copy: no lock).
std::string_view server_and_date() {
  thread_local std::time_t cached = 0;
  thread_local char text[96] = {};
  thread_local std::size_t size = 0;
  std::time_t now = std::time(nullptr);
  if (now != cached) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    size = std::strftime(text, sizeof text,
                         "\r\nServer: shootout\r\nDate: %a, %d %b %Y %H:%M:%S GMT"
                         "\r\nContent-Type: ",
                         &tm);
    cached = now;
  }
  return {text, size};
}

// Copies s to p, which has room for it; returns the end. (An empty view may have a null
// data(), which memcpy must not be given even for 0 bytes.)
char* put(char* p, std::string_view s) {
  if (s.empty()) return p;
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

struct Head {
  http::status status = http::status::ok;
  std::uint64_t length = 0;
  bool close = false;
  bool http10_keep_alive = false;
  std::string_view type = "text/plain";
  std::string_view extra = {};  // more header lines, each ending in \r\n
};

// The head is composed in place, in room reserved once: every response goes through here.
void write_head(std::string& out, const Head& h) {
  const std::string_view reason = http::obsolete_reason(h.status);
  const std::string_view middle = server_and_date();
  const std::string_view connection = h.close               ? "Connection: close\r\n"
                                      : h.http10_keep_alive ? "Connection: keep-alive\r\n"
                                                            : "";
  constexpr std::string_view kLength = "\r\nContent-Length: ";
  const std::size_t room = 13 + reason.size() + middle.size() + h.type.size() + kLength.size() +
                           20 + 2 + h.extra.size() + connection.size() + 2;
  const std::size_t at = out.size();
  out.resize(at + room);
  char* p = out.data() + at;
  p = put(p, "HTTP/1.1 ");
  const auto code = static_cast<unsigned>(h.status);  // three digits, 100 to 599
  *p++ = static_cast<char>('0' + code / 100);
  *p++ = static_cast<char>('0' + code / 10 % 10);
  *p++ = static_cast<char>('0' + code % 10);
  *p++ = ' ';
  p = put(p, reason);
  p = put(p, middle);
  p = put(p, h.type);
  p = put(p, kLength);
  p = std::to_chars(p, p + 20, h.length).ptr;
  p = put(p, "\r\n");
  p = put(p, h.extra);
  p = put(p, connection);
  p = put(p, "\r\n");
  out.resize(static_cast<std::size_t>(p - out.data()));
}

// The value of `key` in a query string "a=1&b=2" as an unsigned number; nullopt if absent or
// not a plain decimal.
std::optional<std::uint64_t> query_number(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = pair.find('=');
    if (eq == std::string_view::npos || pair.substr(0, eq) != key) continue;
    auto value = pair.substr(eq + 1);
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc{} || end != value.data() + value.size() || value.empty()) return {};
    return n;
  }
  return {};
}

std::optional<std::string_view> query_string(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == key) return pair.substr(eq + 1);
  }
  return {};
}

// A file name that cannot leave the served directory: one path component of [A-Za-z0-9._-],
// not starting with a dot (so neither "." nor ".." nor hidden files).
bool safe_file_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

class HttpSession final : public Session {
 public:
  explicit HttpSession(const HandlerConfig& config) : config_(config) {}

  // Complete requests are parsed straight from `in`; only the bytes of a request still
  // incomplete (or queued behind one that waits for work) are copied into the session.
  Next on_input(std::string_view in, std::string& out) override {
    if (busy_ && (busy_->parser || !busy_->input.empty())) {
      busy_->input.append(in);
      return parse_requests(out);
    }
    return parse_from(in, out);
  }

  Next on_resume(std::string& out) override {
    auto& b = *busy_;
    if (b.bytes_left == 0) return parse_requests(out);  // after a yield: the pipelined rest
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(b.bytes_left, kChunk));
    out.append(n, 'x');
    b.bytes_left -= n;
    return b.bytes_left > 0 ? Next::resume : after_response(out);
  }

  Next on_work_done(WorkResult result, std::string& out) override {
    auto& b = *busy_;
    switch (b.work.kind) {
      case Work::Kind::sleep:
        reply(out, http::status::ok,
              "slept " + std::to_string(b.work.amount.count() / 1000) + " ms\n");
        break;
      case Work::Kind::cpu:
        reply(out, http::status::ok, "burned " + std::to_string(b.work.amount.count()) + " us\n");
        break;
      case Work::Kind::file:
        reply_file(out, std::move(result));
        break;
    }
    return after_response(out);
  }

  const Work& pending_work() const override { return busy_->work; }

  bool mid_request() const override { return busy_ && (busy_->parser || !busy_->input.empty()); }

 private:
  // What a request that cannot be answered from one read needs: the bytes not parsed yet, the
  // parser of a request half received, the work or body still to produce. Allocated only then
  // and freed once answered, so an idle keep-alive connection holds only the session object.
  struct Busy {
    std::string input;                    // bytes received and not yet parsed
    std::optional<RequestParser> parser;  // a request whose header is complete, its body not
    Work work;                            // the blocking work of the current request
    std::uint64_t bytes_left = 0;         // /bytes: body still to produce
  };

  Busy& busy() {
    if (!busy_) busy_ = std::make_unique<Busy>();
    return *busy_;
  }

  // Parses and answers the complete requests in the session's own buffer.
  Next parse_requests(std::string& out) {
    std::string pending = std::move(busy_->input);
    busy_->input.clear();
    Next next = parse_from(pending, out);
    if (busy_ && busy_->input.empty() && busy_->input.capacity() < pending.capacity()) {
      pending.clear();
      busy_->input.swap(pending);  // keep the larger buffer for the next bytes
    }
    return next;
  }

  // Parses and answers every complete request in `in`, in order, until one needs work, a
  // resume or a close, or the bytes run out. What is left unparsed goes to busy().input (a
  // header still arriving from its first byte); a request whose header is complete but whose
  // body is not keeps its parser in busy().parser.
  Next parse_from(std::string_view in, std::string& out) {
    std::string patched;  // `in` with a request line's version rewritten, when one needs it
    std::size_t used = 0;
    Next next = Next::read;
    while (used < in.size() && next == Next::read) {
      std::optional<RequestParser> local;
      std::optional<RequestParser>& p = busy_ && busy_->parser ? busy_->parser : local;
      if (!p) {
        // RFC 9112 2.2: a server SHOULD ignore at least one empty line (CRLF) received before
        // a request line (a client may end a body with an extra CRLF). All are: each costs a
        // byte of input and nothing else.
        while (in.substr(used, 2) == "\r\n") used += 2;
        if (used == in.size()) break;
        if (in.substr(used) == "\r") break;  // maybe another empty line: wait for its LF
        // (Beast refuses a lone CR at once, where the same CR with its LF is skipped here.)
        // RFC 9112 2.3: a higher minor version of HTTP/1 SHOULD be read as the highest this
        // server speaks; Beast refuses all but 1.0 and 1.1, so 1.2 to 1.9 become 1.1 first
        // (in a copy: a rare request, and `in` is the caller's).
        const auto v = request_line_version(in.substr(used, config_.header_limit));
        if (v && v->major == '1' && v->minor > '1') {
          const std::size_t at = v->minor_at + used;
          if (in.data() != patched.data()) {
            patched.assign(in);
            in = patched;
          }
          patched[at] = '1';
        }
        p.emplace(static_cast<std::uint32_t>(config_.header_limit), config_.body_limit);
      }
      // In a body, Beast is given at most the header limit at a time: see framing_status.
      const bool body = p->is_header_done();
      if (body) p->eager(true);
      const std::size_t window =
          body ? std::min(in.size() - used, config_.header_limit) : in.size() - used;
      error_code ec;
      const std::size_t start = used;
      std::size_t n = p->put(boost::asio::buffer(in.data() + used, window), ec);
      used += n;
      if (ec == http::error::need_more) {
        if (!p->is_header_done()) {
          // A header still arriving is parsed again from its first byte when the rest comes,
          // so its bytes stay buffered and its parser is dropped, even when Beast consumed
          // some of them. Beast 1.74 does consume the request line and every whole field
          // line it finds before the need_more (n > 0), but its header_limit counts from
          // wherever a put() starts: a parser kept across reads would let the header grow
          // by the bytes it had already consumed, so the same stream got 431 in one read and
          // was answered in others (found by fuzz/). RFC 9112 defines a message by its
          // octets, never by how they arrive: parsed from its first byte, the header gets the
          // same limit and the same verdict in every split. The cost, a header re-parsed per
          // read while it trickles in, is bounded by the header limit.
          used -= n;
          p.reset();
          break;
        }
        if (&p == &local) busy().parser.emplace(std::move(*local));  // a body still arriving
        if (n > 0 && used < in.size()) continue;  // the window ended: go on from where it did
        if (n == 0 && window == config_.header_limit) {
          next = reject(framing_status(in.substr(used, window)), out);
          break;
        }
        break;  // the bytes ran out
      }
      if (ec) {
        // Beast refuses every version but 1.0 and 1.1 as malformed; RFC 9110 6.2 has 505
        // for a well-formed one whose major version this server does not speak.
        const auto version = ec == http::error::bad_version
                                 ? request_line_version(in.substr(start, config_.header_limit))
                                 : std::nullopt;
        next = reject(version && version->major != '1' ? http::status::http_version_not_supported
                                                       : status_of(ec, p->target().empty()),
                      out);
        break;
      }
      if (!p->is_done()) {
        // Beast took bytes (a whole header, part of a body) without error but the request is
        // not complete: that state lives in the parser, which must outlive this read, or the
        // rest of the body would be parsed as a new request (found by fuzz/).
        if (&p == &local) busy().parser.emplace(std::move(*local));
        continue;
      }
      if (&p == &local) {
        next = respond(*local, out);  // the common case: a whole request in one read
      } else {
        RequestParser done = std::move(*busy_->parser);  // respond() may replace busy_
        busy_->parser.reset();
        next = respond(done, out);
      }
      // Enough output for one send: the rest waits in busy().input until it has gone out, so
      // a client that pipelines without reading is held back by its own socket, as nginx
      // holds it (one request at a time), instead of growing our output queue.
      if (next == Next::read && out.size() >= kYieldOutput && used < in.size()) next = Next::resume;
    }
    if (used < in.size() && next != Next::close) busy().input.append(in.substr(used));
    if (busy_ && busy_->input.empty() && !busy_->parser && next == Next::read)
      busy_.reset();  // idle: hold nothing
    return next;
  }

  // After a response is complete: close, or go on with pipelined requests.
  Next after_response(std::string& out) {
    if (close_) return Next::close;
    if (!busy_) return Next::read;
    return parse_requests(out);
  }

  // no_request_line: the parser has not got a whole request line yet, so a header_limit error
  // means the request line alone is too long: 414, as nginx and Apache answer, not 431.
  static http::status status_of(const boost::beast::error_code& ec, bool no_request_line) {
    return ec == http::error::header_limit
               ? (no_request_line ? http::status::uri_too_long
                                  : http::status::request_header_fields_too_large)
           : ec == http::error::body_limit ? http::status::payload_too_large
                                           : http::status::bad_request;
  }

  // A chunked body's framing is bounded by the header limit. Beast 1.74 consumes chunk data
  // as it comes, but it waits for a chunk-size line (with its extensions) and for the last
  // chunk's trailer section to be whole, and bounds neither: their bytes would stay buffered
  // and be put again with every read. So a body is put at most a header limit at a time
  // (parse_from), and when Beast can take nothing from a full window, the line or section it
  // waits for is longer than the limit: the verdict depends on the bytes alone, not on how
  // they were split into reads, and what a connection holds and re-reads per read is bounded
  // (RFC 9112 7.1.1 and 7.1.2 ask a server to limit both). `window` starts where Beast waits
  // (after the CRLF that ends the previous chunk's data, if any): with a whole line in it,
  // that line was a last chunk ("0...") and the trailer section is too long: 431, for its
  // fields are header fields (RFC 9110 6.5); otherwise a chunk-size line is: 413, as Apache
  // answers, for it is the body's framing.
  static http::status framing_status(std::string_view window) {
    const std::size_t from = window.substr(0, 2) == "\r\n" ? 2 : 0;
    return window.find("\r\n", from) != std::string_view::npos
               ? http::status::request_header_fields_too_large
               : http::status::payload_too_large;
  }

  Next reject(http::status status, std::string& out) {
    counters().requests.fetch_add(1, std::memory_order_relaxed);
    close_ = true;
    head_ = false;
    http10_ = false;
    reply(out, status, std::string(http::obsolete_reason(status)) + "\n");
    return Next::close;
  }

  Next respond(const RequestParser& req, std::string& out) {
    counters().requests.fetch_add(1, std::memory_order_relaxed);
    close_ = !req.keep_alive();
    http10_ = req.version() < 11;
    head_ = req.method() == http::verb::head;
    // RFC 9110 9.1 and 15.5.6: a method this server does not know is 501; one it knows but
    // no route takes is 405, with the methods that are allowed.
    if (req.method() == http::verb::unknown) {
      reply(out, http::status::not_implemented, "only GET and HEAD\n");
      return after_response_inline();
    }
    if (req.method() != http::verb::get && !head_) {
      reply(out, http::status::method_not_allowed, "only GET and HEAD\n", "Allow: GET, HEAD\r\n");
      return after_response_inline();
    }
    std::string_view target = req.target();
    auto qmark = target.find('?');
    std::string_view path = target.substr(0, qmark);
    std::string_view query = qmark == std::string_view::npos ? "" : target.substr(qmark + 1);

    if (path == "/") {
      reply(out, http::status::ok, "Hello, World!");
      return after_response_inline();
    }
    if (path == "/sleep")
      return ask_time(Work::Kind::sleep, query_number(query, "ms"), kMaxSleepMs, 1000, out);
    if (path == "/cpu")
      return ask_time(Work::Kind::cpu, query_number(query, "us"), kMaxCpuUs, 1, out);
    if (path == "/file") return ask_file(query_string(query, "name"), out);
    if (path == "/bytes") return start_bytes(query_number(query, "n"), out);
    reply(out, http::status::not_found, "not found\n");
    return after_response_inline();
  }

  // A response that needed no work is complete: keep parsing in the caller's loop unless the
  // request closes the connection.
  Next after_response_inline() const { return close_ ? Next::close : Next::read; }

  Next ask_time(Work::Kind kind, std::optional<std::uint64_t> n, std::uint64_t max,
                std::uint64_t us_per_unit, std::string& out) {
    if (!n || *n > max) {
      reply(out, http::status::bad_request,
            "expects a number from 0 to " + std::to_string(max) + "\n");
      return after_response_inline();
    }
    busy().work = Work{kind, std::chrono::microseconds(*n * us_per_unit), {}, 0};
    return Next::work;
  }

  Next ask_file(std::optional<std::string_view> name, std::string& out) {
    if (!name || !safe_file_name(*name)) {
      reply(out, http::status::bad_request, "name must be a plain file name\n");
      return after_response_inline();
    }
    if (config_.file_root.empty()) {
      reply(out, http::status::not_found, "no file root configured (serve --root DIR)\n");
      return after_response_inline();
    }
    busy().work =
        Work{Work::Kind::file, {}, config_.file_root + "/" + std::string(*name), config_.max_file};
    return Next::work;
  }

  Next start_bytes(std::optional<std::uint64_t> n, std::string& out) {
    if (!n || *n > config_.max_bytes) {
      reply(out, http::status::bad_request,
            "expects n from 0 to " + std::to_string(config_.max_bytes) + "\n");
      return after_response_inline();
    }
    write_head(out, head_for(http::status::ok, *n));
    if (head_) return after_response_inline();
    // The first chunk goes out now; the rest one chunk per on_resume, as the socket drains.
    std::uint64_t first = std::min<std::uint64_t>(*n, kChunk);
    out.append(static_cast<std::size_t>(first), 'x');
    if (*n == first) return after_response_inline();
    busy().bytes_left = *n - first;
    return Next::resume;
  }

  void reply_file(std::string& out, WorkResult r) {
    if (r.error == 0) {
      Head h = head_for(http::status::ok, r.data.size());
      h.type = "application/octet-stream";
      write_head(out, h);
      if (!head_) out += r.data;
      return;
    }
    auto status =
        (r.error == ENOENT || r.error == ENOTDIR) ? http::status::not_found
        : r.error == EFBIG                        ? http::status::payload_too_large
        : (r.error == EACCES || r.error == ELOOP || r.error == EISDIR || r.error == EINVAL)
            ? http::status::forbidden
            : http::status::internal_server_error;
    reply(out, status, std::string(http::obsolete_reason(status)) + "\n");
  }

  Head head_for(http::status status, std::uint64_t length) const {
    Head h;
    h.status = status;
    h.length = length;
    h.close = close_;
    h.http10_keep_alive = http10_ && !close_;
    return h;
  }

  void reply(std::string& out, http::status status, std::string_view body,
             std::string_view extra = {}) {
    Head h = head_for(status, body.size());
    h.extra = extra;
    write_head(out, h);
    if (!head_) out += body;
  }

  const HandlerConfig& config_;
  std::unique_ptr<Busy> busy_;
  bool close_ = false;   // the current request ends the connection
  bool http10_ = false;  // ... is HTTP/1.0
  bool head_ = false;    // ... is HEAD: headers only
};

class HttpHandler final : public Handler {
 public:
  explicit HttpHandler(HandlerConfig config) : config_(std::move(config)) {}
  std::unique_ptr<Session> new_session() const override {
    return std::make_unique<HttpSession>(config_);
  }

 private:
  HandlerConfig config_;
};

}  // namespace

SHOOTOUT_REGISTER_HANDLER("http", [](const HandlerConfig& config) -> std::unique_ptr<Handler> {
  return std::make_unique<HttpHandler>(config);
});

}  // namespace shootout
