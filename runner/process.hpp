#pragma once
// Child processes the runner starts (our servers, nginx, Apache) and the registry that lets
// Ctrl-C kill every one of them.
//
// Each child runs in its own process group, so killing the group also kills what it forked
// (the forked model's children, Apache's and nginx's workers). Its stdout and stderr go to a
// log file in the results folder: nothing can block on a full pipe, and the log is where a
// failed point's reason comes from.
//
// Threads: a Child is owned and used by one thread (the sweep's). The registry
// (kill_all_children) may be called from any thread, including the runner's signal thread.
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace shootout::runner {

// This process's environment with `extra` ("NAME=value" each) set over it: what a child of the
// runner (or a peer started by `shootout peer`) gets. Any thread.
std::vector<std::string> child_environment(const std::vector<std::string>& extra);

class Child {
 public:
  // Starts argv (argv[0] is a path) with stdout+stderr appended to `log_path`. `cpu` >= 0 pins
  // it to that CPU before exec. `env` ("NAME=value" each) is set in the child's environment,
  // over the runner's own. Throws std::runtime_error if fork fails; an exec failure shows up as
  // exit status 127 with the reason in the log.
  Child(const std::vector<std::string>& argv, const std::string& log_path, int cpu = -1,
        const std::vector<std::string>& env = {});
  ~Child();  // SIGKILL to the group and reap, if still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Exit status if it has exited (128+signal when killed), nullopt while running.
  std::optional<int> poll();
  // Waits up to `timeout` for a line of the log that starts with `prefix`; returns it, or
  // nullopt on timeout or if the child exits first.
  std::optional<std::string> wait_for_line(const std::string& prefix,
                                           std::chrono::milliseconds timeout);
  // Sends `sig` to the child (not the group) and waits up to `timeout` for it to exit. On
  // timeout the whole group is SIGKILLed and nullopt returned.
  std::optional<int> stop(int sig, std::chrono::milliseconds timeout);
  void kill_group();
  // After it has exited: waits up to `timeout` for every process of its group to be gone (a
  // killed Apache master's 23,000 prefork children take seconds to exit); true if they are.
  bool await_group_gone(std::chrono::milliseconds timeout) const;
  // The last `max_bytes` of the log (for failure reasons).
  std::string log_tail(std::size_t max_bytes = 600) const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> status_;
};

// SIGKILLs the process group of every Child that is still alive. Any thread; async-unsafe
// (takes a mutex), so call it from a normal thread such as a sigwait thread.
void kill_all_children();

// The log of any file: the last `max_bytes`.
std::string file_tail(const std::string& path, std::size_t max_bytes);

// Everything `cmd` (run by /bin/sh) writes on its standard output; empty if it cannot start.
// For short commands (versions, git describe): it blocks until the command ends.
std::string command_output(const std::string& cmd);
// `text` up to its first newline.
std::string first_line(std::string text);

// Waits until a TCP connect to 127.0.0.1:port succeeds, up to `timeout`, or until `child`
// (if given) exits.
bool wait_for_port(std::uint16_t port, std::chrono::milliseconds timeout, Child* child = nullptr);

// A free loopback TCP port for a peer, below the ephemeral range (ip_local_port_range starts
// at 32768): a port inside it could be picked as the source port of our own connect() while
// the peer is not listening yet, and loopback would then "connect" the socket to itself.
// Racy by nature (checked by bind, then closed); good enough for a peer started right after.
std::uint16_t free_port();

}  // namespace shootout::runner
