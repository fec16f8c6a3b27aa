#pragma once
// What the two floor servers (build/shootout-floor: epoll; build/shootout-floor-uring:
// io_uring) share: the answer they send, how they count requests in a read, and their command
// line. Header-only; each floor is one small program.
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace shootout::floor {

// The evented model's answer to GET /, byte for byte but for the date.
constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\nServer: shootout\r\nDate: Mon, 30 Nov 2026 00:00:00 GMT\r\n"
    "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

// Requests completed in one read: the number of "\r\n\r\n" in it.
inline int requests_in(std::string_view data) {
  int n = 0;
  for (auto at = data.find("\r\n\r\n"); at != data.npos; at = data.find("\r\n\r\n", at + 4)) ++n;
  return n;
}

// `NAME [port]`: the port (0 when none is given, which picks one), or -1 after printing the
// usage for anything else (the caller exits 2).
inline long port_from_args(const char* name, int argc, char** argv) {
  long port = 0;
  if (argc == 2) {
    char* end = nullptr;
    port = std::strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || port < 0 || port > 65535) argc = 3;
  }
  if (argc > 2) {
    std::fprintf(stderr, "usage: %s [port]   (0-65535; 0 or none picks one)\n", name);
    return -1;
  }
  return port;
}

}  // namespace shootout::floor
