// What the two engines share: the socket they connect, and choosing one (engine.hpp).
#include "engine.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "asio_engine.hpp"
#include "worker.hpp"
#ifdef SHOOTOUT_HAVE_URING
#include "uring_engine.hpp"
#endif

namespace shootout::load {

const char* engine_name(EngineKind e) { return e == EngineKind::uring ? "uring" : "asio"; }

EngineKind parse_engine(std::string_view name) {
  if (name == "asio") return EngineKind::asio;
  if (name == "uring") return EngineKind::uring;
  throw LoadError("--engine: expected asio or uring, not '" + std::string(name) + "'");
}

const std::string& uring_engine_unavailable() {
#ifdef SHOOTOUT_HAVE_URING
  return UringEngine::unavailable();
#else
  static const std::string why = "this build has no liburing (apt-get install liburing-dev)";
  return why;
#endif
}

int open_load_socket(const Plan& plan, std::size_t index, bool nonblocking, std::error_code& ec) {
  auto failed = [&](int fd) {
    ec.assign(errno, std::system_category());
    if (fd >= 0) ::close(fd);
    return -1;
  };
  const int fd =
      ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return failed(fd);
  const int one = 1;
  if (!plan.sources.empty()) {
    // --source: bind the address only; IP_BIND_ADDRESS_NO_PORT leaves the port to connect(),
    // which picks one free for this 4-tuple, so each source address has its ~28,000 ephemeral
    // ports towards the one server port (a bind to port 0 would reserve a port per socket).
    if (::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0)
      return failed(fd);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(plan.sources[index % plan.sources.size()].to_uint());
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return failed(fd);
  }
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) return failed(fd);
  return fd;
}

std::unique_ptr<Engine> make_engine(const Plan& plan, Worker& worker, std::size_t first_index,
                                    std::size_t count) {
  if (plan.engine == EngineKind::uring) {
#ifdef SHOOTOUT_HAVE_URING
    return std::make_unique<UringEngine>(plan, worker, first_index, count);
#else
    throw LoadError("--engine uring: " + uring_engine_unavailable());
#endif
  }
  return std::make_unique<AsioEngine>(plan, worker, first_index, count);
}

}  // namespace shootout::load
