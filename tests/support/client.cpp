#include "client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <stdexcept>

namespace shootout::test {

Conn::Conn(std::uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    if (fd_ >= 0) ::close(fd_);
    throw std::runtime_error(std::string("connect: ") + std::strerror(e));
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_timeout_ms(15'000);
}

Conn::~Conn() { close(); }

Conn::Conn(Conn&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)) { o.fd_ = -1; }

void Conn::set_timeout_ms(int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool Conn::send(std::string_view data) { return send_all(fd_, data); }

std::string Conn::read_some() {
  char b[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, b, sizeof b, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return {};
    return std::string(b, static_cast<std::size_t>(n));
  }
}

std::string Conn::read_all() {
  std::string all = std::move(buf_);
  buf_.clear();
  for (;;) {
    std::string s = read_some();
    if (s.empty()) return all;
    all += s;
  }
}

bool Conn::closed_by_peer() {
  char b[4096];
  for (;;) {
    ssize_t n = ::recv(fd_, b, sizeof b, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

void Conn::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

void Conn::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Response read_response(Conn& c, bool head_request) {
  namespace http = boost::beast::http;
  http::response_parser<http::string_body> p;
  p.body_limit(2ull << 30);
  p.skip(head_request);
  p.eager(true);
  std::string& buf = c.buffer();
  for (;;) {
    if (!buf.empty()) {
      boost::beast::error_code ec;
      std::size_t used = p.put(boost::asio::buffer(buf), ec);
      buf.erase(0, used);
      if (ec && ec != http::error::need_more) return {};
      if (p.is_done()) break;
      if (used > 0 && ec != http::error::need_more) continue;
    }
    std::string more = c.read_some();
    if (more.empty()) {
      // EOF before any byte: no response at all (Beast would complete an empty parser as 200).
      if (!p.got_some()) return {};
      // EOF: a response whose body runs to EOF is complete now
      boost::beast::error_code ec;
      p.put_eof(ec);
      if (ec || !p.is_done()) return {};
      break;
    }
    buf += more;
  }
  auto msg = p.release();
  Response r;
  r.status = static_cast<int>(msg.result_int());
  for (const auto& f : msg) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    r.headers[name] = std::string(f.value());
  }
  r.body = std::move(msg.body());
  r.keep_alive = msg.keep_alive();
  return r;
}

std::string get_request(std::string_view target, std::string_view extra_headers) {
  std::string r = "GET ";
  r += target;
  r += " HTTP/1.1\r\nHost: test\r\n";
  r += extra_headers;
  r += "\r\n";
  return r;
}

Response http_get(std::uint16_t port, std::string_view target) {
  Conn c(port);
  c.send(get_request(target));
  return read_response(c);
}

long slowest_round_trip_ms(std::uint16_t port, int n) {
  using Clock = std::chrono::steady_clock;
  Clock::duration slowest{};
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    http_get(port, "/");
    slowest = std::max(slowest, Clock::now() - t0);
  }
  return std::max<long>(
      1, static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count()));
}

}  // namespace shootout::test
