// The HTTP/1.1 probe: GET PATH with keep-alive (and -H headers); each response is parsed with
// Beast's parser, whose callbacks keep nothing but the status: the body is only counted, so a
// response of any size costs no allocation and no copy.
#include <fmt/format.h>

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <limits>
#include <optional>

#include "probe.hpp"

namespace shootout {

namespace {

class ResponseParser final : public boost::beast::http::basic_parser<false> {
 public:
  ResponseParser() {
    eager(true);
    // Not boost::none: Beast 1.74 compares the length with the optional, and none loses.
    body_limit(std::numeric_limits<std::uint64_t>::max());
    header_limit(64 * 1024);
  }
  int status = 0;

 private:
  using string_view = boost::beast::string_view;
  using error_code = boost::beast::error_code;
  using field = boost::beast::http::field;
  void on_request_impl(boost::beast::http::verb, string_view, string_view, int,
                       error_code&) override {}
  void on_response_impl(int code, string_view, int, error_code&) override { status = code; }
  void on_field_impl(field, string_view, string_view, error_code&) override {}
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(string_view body, error_code&) override { return body.size(); }
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
    return body.size();
  }
  void on_finish_impl(error_code&) override {}
};

bool is_error(int status) { return status < 200 || status > 399; }

class HttpProbeSession final : public ProbeSession {
 public:
  HttpProbeSession(const std::string& one, const std::string& batch) : one_(one), batch_(batch) {}

  void request(std::uint64_t, std::string& out) override { out += one_; }

  // Every request is the same: a batch is a prefix of the prepared one.
  std::string_view batch(std::uint64_t k, int count, std::string& scratch) override {
    const std::size_t want = one_.size() * static_cast<std::size_t>(count);
    if (count < 1 || want > batch_.size()) return ProbeSession::batch(k, count, scratch);
    return {batch_.data(), want};
  }

  // Parses as far as it can: a header split across reads is left unconsumed (Beast takes a
  // header only whole), a body is consumed as it comes.
  Scan scan(std::string_view in) override {
    std::size_t used = 0;
    while (used < in.size()) {
      if (!parser_) parser_.emplace();
      boost::beast::error_code ec;
      const std::size_t n =
          parser_->put(boost::asio::const_buffer(in.data() + used, in.size() - used), ec);
      used += n;
      bytes_ += n;
      if (ec == boost::beast::http::error::need_more) break;
      if (ec) return Scan::bad();
      if (parser_->is_done()) return finish(used);
    }
    return Scan::more(used);
  }

  // A response delimited by the end of the stream (no Content-Length) completes at EOF.
  Scan at_eof() override {
    if (!parser_ || !parser_->need_eof()) return Scan::bad();
    boost::beast::error_code ec;
    parser_->put_eof(ec);
    if (ec || !parser_->is_done()) return Scan::bad();
    return finish(0);
  }

  void reset() override {
    parser_.reset();
    bytes_ = 0;
  }

 private:
  Scan finish(std::size_t used) {
    const Scan s = Scan::done(used, is_error(parser_->status), bytes_, !parser_->keep_alive());
    parser_.reset();
    bytes_ = 0;
    return s;
  }

  const std::string& one_;
  const std::string& batch_;
  std::optional<ResponseParser> parser_;  // re-made in place for each response
  std::uint64_t bytes_ = 0;               // of the current response
};

class HttpProbe final : public Probe {
 public:
  explicit HttpProbe(const ProbeConfig& c) {
    one_ = fmt::format("GET {} HTTP/1.1\r\nHost: {}:{}\r\n", c.path, c.host, c.port);
    for (const auto& h : c.headers) one_ += h + "\r\n";
    one_ += "\r\n";
    for (int i = 0; i < std::max(c.pipeline, 1); ++i) batch_ += one_;
  }
  std::unique_ptr<ProbeSession> new_session(std::size_t) const override {
    return std::make_unique<HttpProbeSession>(one_, batch_);
  }

 private:
  std::string one_, batch_;
};

}  // namespace

SHOOTOUT_REGISTER_PROBE("http", [](const ProbeConfig& c) -> std::unique_ptr<Probe> {
  return std::make_unique<HttpProbe>(c);
});

}  // namespace shootout
