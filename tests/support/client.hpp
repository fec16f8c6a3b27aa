#pragma once
// Test support: a small blocking TCP and HTTP client. Every socket has a 15 s receive timeout
// so a broken server fails the test instead of hanging it. Responses are parsed by Beast's
// response parser (never by hand).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace shootout::test {

// Owns a connected socket to 127.0.0.1:port.
class Conn {
 public:
  explicit Conn(std::uint16_t port);  // throws std::runtime_error if connect fails
  ~Conn();
  Conn(Conn&& o) noexcept;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  int fd() const { return fd_; }
  bool send(std::string_view data);
  // Reads whatever arrives next (blocking); empty on EOF, timeout or error.
  std::string read_some();
  // Reads until EOF (or timeout); returns everything.
  std::string read_all();
  // True if the peer closed: read returns EOF (after any buffered data was consumed).
  bool closed_by_peer();
  void shutdown_write();
  void close();
  void set_timeout_ms(int ms);
  // Bytes received but not consumed by read_response.
  std::string& buffer() { return buf_; }

 private:
  int fd_ = -1;
  std::string buf_;
};

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool keep_alive = false;
  bool ok() const { return status != 0; }
};

// Parses the next response from the connection (using its buffer for pipelined leftovers).
// head_request: the response to a HEAD carries no body. Returns status 0 on EOF/timeout/garbage.
Response read_response(Conn& c, bool head_request = false);

// "GET target HTTP/1.1\r\nHost: t\r\n\r\n" plus extra header lines (each ending in \r\n).
// Writes all of `data` to a blocking socket (MSG_NOSIGNAL); false if the socket broke first.
bool send_all(int fd, std::string_view data);

std::string get_request(std::string_view target, std::string_view extra_headers = {});

// One GET on a fresh connection.
Response http_get(std::uint16_t port, std::string_view target);

// A calibration for tests whose check is "B is answered while A is still running": the longest
// of `n` round trips of GET / on fresh connections to the server at `port`, measured now, in
// milliseconds (at least 1). Such a test sizes A at many times this, so that the ordering it
// checks holds on a slow, loaded or sanitized host as well as on a fast one.
long slowest_round_trip_ms(std::uint16_t port, int n = 20);

}  // namespace shootout::test
