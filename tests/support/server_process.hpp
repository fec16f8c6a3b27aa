#pragma once
// Test support: real processes. Not thread-safe; one test thread uses each object.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace shootout::test {

// Path of build/shootout (the SHOOTOUT_BINARY compile definition).
std::string shootout_binary();

// What the child changes about itself between fork and exec. The default changes nothing.
struct ChildSetup {
  long nofile = 0;  // > 0: RLIMIT_NOFILE (soft and hard)
  // != 0: the child drops root for this uid and gid, with no supplementary groups, before exec.
  // Root ignores RLIMIT_NPROC; an unprivileged uid is held to it (faults_test.cpp).
  uid_t uid = 0;
  gid_t gid = 0;
  long nproc = 0;  // > 0: RLIMIT_NPROC, set after the uid switch (threads count too)
  // true: a seccomp filter (installed last, after PR_SET_NO_NEW_PRIVS) makes io_uring_setup fail
  // with ENOSYS, as a container's profile does; every other system call is allowed.
  bool forbid_io_uring = false;
  // >= 0: a network namespace's descriptor (/run/netns/NAME) the child enters (setns) before
  // exec, as `ip netns exec` does; the caller keeps it open. The child exits 126 if it cannot.
  int netns_fd = -1;
};

// A child process with stdout (and optionally stderr) captured through pipes.
class Process {
 public:
  // Starts argv[0] (a path) with argv and returns once the child has exec'd (or exited), so
  // its set-up is in force. Throws std::runtime_error if fork fails. `nofile` > 0 sets the
  // child's RLIMIT_NOFILE before exec.
  explicit Process(std::vector<std::string> argv, long nofile = 0);
  // The same, with the child set up as `setup` says. If the uid switch fails the child exits
  // with status 126 before exec, as it does if the seccomp filter cannot be installed.
  Process(std::vector<std::string> argv, const ChildSetup& setup);
  ~Process();  // SIGKILL and reap if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Reads stdout until a line starting with `prefix` arrives (returned without newline), or
  // throws after `timeout` or on EOF.
  std::string wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout);
  // Waits for exit; returns the exit status, 128+signal if killed, or -1 on timeout (then the
  // process is still running).
  int wait(std::chrono::milliseconds timeout);
  bool running();
  void signal(int sig);
  std::string stdout_text();  // what has been read from stdout so far (plus what is pending)
  std::string stderr_text();  // everything the child wrote on stderr so far

 private:
  void drain(int fd, std::string& into, bool block_ms);
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  std::string out_, err_;
  int status_ = -1;
  bool reaped_ = false;
};

// Waits for the process's "listening on HOST:PORT" line (net.hpp's announce_listening) and
// returns PORT; throws after `timeout` or on EOF.
std::uint16_t wait_for_port(Process& proc, std::chrono::milliseconds timeout);

// `build/shootout serve --port 0 <args>` started and waited for: ready to take connections.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args, long nofile = 0);
  ServerProcess(std::vector<std::string> args, const ChildSetup& setup);
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return proc_.pid(); }
  Process& process() { return proc_; }
  // SIGTERM, then wait up to `timeout` for the exit status (see Process::wait).
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  Process proc_;
  std::uint16_t port_ = 0;
};

// The server's own request count: sends SIGUSR1, so the server (started with
// --stats-file stats_file) rewrites its stats file, and reads "requests" from it (0 if the file
// is not there yet). Call it in a bounded loop to wait for the server to reach a count.
std::uint64_t requests_seen(ServerProcess& s, const std::string& stats_file);
// Asks requests_seen until it reaches n; false if it has not within `bound` (generous: a slow
// or sanitized host gets there, and only a failing test waits that long). Tests use it to
// order what they do after the server has taken a request, instead of sleeping.
bool await_requests(ServerProcess& s, const std::string& stats_file, std::uint64_t n,
                    std::chrono::milliseconds bound = std::chrono::seconds(60));

// Child processes of `pid` (from /proc/PID/task/*/children).
std::vector<pid_t> children_of(pid_t pid);
// A size field of /proc/PID/status in KiB ("VmRSS", "VmHWM": the peak resident set); -1 if
// the field or the process is absent.
long status_kib(pid_t pid, const std::string& key);
// Number of threads of `pid` (/proc/PID/status).
int thread_count(pid_t pid);
// Open descriptors of `pid` (/proc/PID/fd).
int fd_count(pid_t pid);
// True if any child of `pid` is a zombie.
bool has_zombie_child(pid_t pid);

}  // namespace shootout::test
