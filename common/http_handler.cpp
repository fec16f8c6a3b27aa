// http: HTTP/1.1 with keep-alive and pipelining. Boost.Beast's parser reads the requests; this
// file only routes them and writes the responses.
//
// Routes: GET /  (13-byte "Hello, World!")   GET /sleep?ms=N   GET /cpu?us=N
//         GET /file?name=F   GET /bytes?n=N   — HEAD works wherever GET does.
// Errors: 404 unknown path, 405 other methods (keep-alive); 400 malformed, 431 header section
//         too large, 413 body too large (each answered, then the connection is closed).
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <charconv>
#include <ctime>
#include <optional>

#include "builtin_handlers.hpp"
#include "stats.hpp"

namespace shootout {

namespace {

namespace http = boost::beast::http;
using Parser = http::request_parser<http::string_body>;
using Request = http::request<http::string_body>;

constexpr std::size_t kChunk = 64 * 1024;        // /bytes body produced this much at a time
constexpr std::uint64_t kMaxSleepMs = 60'000;
constexpr std::uint64_t kMaxCpuUs = 10'000'000;

// "Sun, 22 Nov 2026 22:05:15 GMT", formatted at most once a second per thread.
std::string_view http_date() {
  thread_local std::time_t cached = 0;
  thread_local char text[40] = {};
  std::time_t now = std::time(nullptr);
  if (now != cached) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = now;
  }
  return text;
}

struct Head {
  http::status status = http::status::ok;
  std::uint64_t length = 0;
  bool close = false;
  bool http10_keep_alive = false;
  std::string_view type = "text/plain";
  std::string_view extra = {};  // more header lines, each ending in \r\n
};

void write_head(std::string& out, const Head& h) {
  out += "HTTP/1.1 ";
  out += std::to_string(static_cast<unsigned>(h.status));
  out += ' ';
  out += http::obsolete_reason(h.status);
  out += "\r\nServer: shootout\r\nDate: ";
  out += http_date();
  out += "\r\nContent-Type: ";
  out += h.type;
  out += "\r\nContent-Length: ";
  out += std::to_string(h.length);
  out += "\r\n";
  out += h.extra;
  if (h.close)
    out += "Connection: close\r\n";
  else if (h.http10_keep_alive)
    out += "Connection: keep-alive\r\n";
  out += "\r\n";
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

  Next on_input(std::string_view in, std::string& out) override {
    if (!busy_) busy_ = std::make_unique<Busy>();
    busy_->input.append(in);
    return parse_requests(out);
  }

  Next on_resume(std::string& out) override {
    auto& b = *busy_;
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(b.bytes_left, kChunk));
    out.append(n, 'x');
    b.bytes_left -= n;
    return b.bytes_left > 0 ? Next::resume : after_response(out);
  }

  Next on_work_done(WorkResult result, std::string& out) override {
    auto& b = *busy_;
    switch (b.work.kind) {
      case Work::Kind::sleep:
        reply(out, http::status::ok, "slept " + std::to_string(b.work.amount.count() / 1000) +
                                         " ms\n");
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

  bool mid_request() const override {
    return busy_ && (busy_->parser || busy_->consumed < busy_->input.size());
  }

 private:
  // Everything a request in progress needs. Freed between requests, so an idle keep-alive
  // connection holds only the session object (two pointers and a vtable pointer).
  struct Busy {
    std::string input;           // bytes received and not yet consumed by the parser
    std::size_t consumed = 0;    // prefix of `input` already parsed
    std::optional<Parser> parser;
    Work work;                   // the blocking work of the current request
    std::uint64_t bytes_left = 0;  // /bytes: body still to produce
    bool close = false;          // the current request ends the connection
    bool http10 = false;
    bool head = false;           // HEAD: headers only
  };

  // Parses and answers every complete request in the buffer, in order, until one needs work,
  // a resume or a close, or the buffer runs out.
  Next parse_requests(std::string& out) {
    auto& b = *busy_;
    while (b.consumed < b.input.size()) {
      if (!b.parser) {
        b.parser.emplace();
        b.parser->header_limit(static_cast<std::uint32_t>(config_.header_limit));
        b.parser->body_limit(config_.body_limit);
        b.parser->eager(true);
      }
      boost::beast::error_code ec;
      b.consumed += b.parser->put(
          boost::asio::buffer(b.input.data() + b.consumed, b.input.size() - b.consumed), ec);
      if (ec == http::error::need_more) break;
      if (ec) return reject(ec, out);
      if (!b.parser->is_done()) continue;
      Request req = b.parser->release();
      b.parser.reset();
      Next next = respond(req, out);
      if (next != Next::read) return next;
    }
    b.input.erase(0, b.consumed);
    b.consumed = 0;
    if (b.input.empty() && !b.parser) busy_.reset();  // idle: hold nothing
    return Next::read;
  }

  // After a response is complete: close, or go on with pipelined requests.
  Next after_response(std::string& out) {
    if (busy_->close) return Next::close;
    return parse_requests(out);
  }

  Next reject(const boost::beast::error_code& ec, std::string& out) {
    auto status = ec == http::error::header_limit ? http::status::request_header_fields_too_large
                  : ec == http::error::body_limit ? http::status::payload_too_large
                                                  : http::status::bad_request;
    counters().requests.fetch_add(1, std::memory_order_relaxed);
    busy_->close = true;
    busy_->head = false;
    busy_->http10 = false;
    reply(out, status, std::string(http::obsolete_reason(status)) + "\n");
    return Next::close;
  }

  Next respond(const Request& req, std::string& out) {
    counters().requests.fetch_add(1, std::memory_order_relaxed);
    auto& b = *busy_;
    b.close = !req.keep_alive();
    b.http10 = req.version() < 11;
    b.head = req.method() == http::verb::head;
    if (req.method() != http::verb::get && !b.head) {
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
    if (path == "/sleep") return ask_time(Work::Kind::sleep, query_number(query, "ms"),
                                          kMaxSleepMs, 1000, out);
    if (path == "/cpu") return ask_time(Work::Kind::cpu, query_number(query, "us"),
                                        kMaxCpuUs, 1, out);
    if (path == "/file") return ask_file(query_string(query, "name"), out);
    if (path == "/bytes") return start_bytes(query_number(query, "n"), out);
    reply(out, http::status::not_found, "not found\n");
    return after_response_inline();
  }

  // A response that needed no work is complete: keep parsing in the caller's loop unless the
  // request closes the connection.
  Next after_response_inline() const { return busy_->close ? Next::close : Next::read; }

  Next ask_time(Work::Kind kind, std::optional<std::uint64_t> n, std::uint64_t max,
                std::uint64_t us_per_unit, std::string& out) {
    if (!n || *n > max) {
      reply(out, http::status::bad_request,
            "expects a number from 0 to " + std::to_string(max) + "\n");
      return after_response_inline();
    }
    busy_->work = Work{kind, std::chrono::microseconds(*n * us_per_unit), {}, 0};
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
    busy_->work = Work{Work::Kind::file, {}, config_.file_root + "/" + std::string(*name),
                       config_.max_file};
    return Next::work;
  }

  Next start_bytes(std::optional<std::uint64_t> n, std::string& out) {
    if (!n || *n > config_.max_bytes) {
      reply(out, http::status::bad_request,
            "expects n from 0 to " + std::to_string(config_.max_bytes) + "\n");
      return after_response_inline();
    }
    write_head(out, head_for(http::status::ok, *n));
    if (busy_->head) return after_response_inline();
    // The first chunk goes out now; the rest one chunk per on_resume, as the socket drains.
    std::uint64_t first = std::min<std::uint64_t>(*n, kChunk);
    out.append(static_cast<std::size_t>(first), 'x');
    busy_->bytes_left = *n - first;
    return busy_->bytes_left > 0 ? Next::resume : after_response_inline();
  }

  void reply_file(std::string& out, WorkResult r) {
    if (r.error == 0) {
      Head h = head_for(http::status::ok, r.data.size());
      h.type = "application/octet-stream";
      write_head(out, h);
      if (!busy_->head) out += r.data;
      return;
    }
    auto status = (r.error == ENOENT || r.error == ENOTDIR) ? http::status::not_found
                  : r.error == EFBIG                        ? http::status::payload_too_large
                  : (r.error == EACCES || r.error == ELOOP || r.error == EISDIR ||
                     r.error == EINVAL)
                      ? http::status::forbidden
                      : http::status::internal_server_error;
    reply(out, status, std::string(http::obsolete_reason(status)) + "\n");
  }

  Head head_for(http::status status, std::uint64_t length) const {
    Head h;
    h.status = status;
    h.length = length;
    h.close = busy_->close;
    h.http10_keep_alive = busy_->http10 && !busy_->close;
    return h;
  }

  void reply(std::string& out, http::status status, std::string_view body,
             std::string_view extra = {}) {
    Head h = head_for(status, body.size());
    h.extra = extra;
    write_head(out, h);
    if (!busy_->head) out += body;
  }

  const HandlerConfig& config_;
  std::unique_ptr<Busy> busy_;
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

std::unique_ptr<Handler> make_http_handler(const HandlerConfig& config) {
  return std::make_unique<HttpHandler>(config);
}

}  // namespace shootout
