#pragma once
// Listening sockets and the `listening on HOST:PORT` line. Set-up only: these throw
// std::system_error with a message naming the address when the kernel refuses.
#include <cstdint>
#include <string>

namespace shootout {

struct ListenSpec {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0 = any free port
  int backlog = 4096;
  bool reuseport = false;  // SO_REUSEPORT: one listener per loop/thread, the kernel spreads
  bool nonblocking = false;
  bool listen = true;  // false: bound only (--workers' master keeps the port with it)
};

// socket + SO_REUSEADDR (+ SO_REUSEPORT) + bind (+ listen); close-on-exec. Returns the fd.
int open_listener(const ListenSpec& spec);

// The port a bound socket got (for port 0).
std::uint16_t local_port(int fd);

// Prints exactly "listening on HOST:PORT\n" to stdout and flushes it. Tests and the runner wait
// for this line. Call once, when the server accepts connections. In a --workers worker
// (announce_to_master called), tells the master through its pipe instead (common/workers.hpp).
void announce_listening(const std::string& host, std::uint16_t port);

// --workers: in a worker process, before its model runs (its main thread, while it is the only
// thread): from now on announce_listening() writes this process's pid to `fd` (the master's
// pipe; one 4-byte write, atomic on a pipe) and closes it, instead of printing. The master
// prints the one `listening on` line once every worker listens.
void announce_to_master(int fd);

// Sets TCP_NODELAY (responses are written whole; Nagle would delay pipelined ones).
void set_nodelay(int fd);

// True if a connected TCP socket's peer can send nothing more that we have not already read:
// it reset the connection (TCP_CLOSE), or it closed its side and the receive queue is empty
// (TCP_CLOSE_WAIT, FIONREAD 0). Reads nothing and consumes no pending error (TCP_INFO and
// FIONREAD only): a loop can ask about a connection without disturbing what its own receive
// will report. False if the socket is not TCP or the kernel cannot say.
bool peer_gone(int fd);

}  // namespace shootout
