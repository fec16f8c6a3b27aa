#include "process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace shootout::runner {

namespace {

std::mutex registry_mutex;
std::set<pid_t> registry;  // process groups of live children (pgid == child pid)

void registry_remove(pid_t p) {
  std::lock_guard lock(registry_mutex);
  registry.erase(p);
}

// In the child, between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(std::vector<char*>& args, std::vector<char*>& envp, int log_fd,
                             int cpu) {
  ::setpgid(0, 0);
  ::dup2(log_fd, STDOUT_FILENO);
  ::dup2(log_fd, STDERR_FILENO);
  int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    ::sched_setaffinity(0, sizeof set, &set);
  } else {
    // The runner itself may be pinned (--pin); an unpinned child gets every CPU back.
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int i = 0; i < CPU_SETSIZE; ++i) CPU_SET(i, &all);
    ::sched_setaffinity(0, sizeof all, &all);
  }
  // The runner blocks its stop signals for its sigwait thread; the child starts clean.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::execve(args[0], args.data(), envp.data());
  static const char msg[] = "exec failed\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  ::_exit(127);
}

int decode_status(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

}  // namespace

// Built before fork: the child may only make async-signal-safe calls, and the runner has other
// threads.
std::vector<std::string> child_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    bool replaced = false;
    for (const auto& x : extra) {
      auto eq = x.find('=');
      if (eq != std::string::npos &&
          entry.substr(0, eq + 1) == std::string_view(x).substr(0, eq + 1))
        replaced = true;
    }
    if (!replaced) env.emplace_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

Child::Child(const std::vector<std::string>& argv, const std::string& log_path, int cpu,
             const std::vector<std::string>& env)
    : log_path_(log_path) {
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open log " + log_path);
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> env_copy = child_environment(env);
  std::vector<char*> envp;
  for (auto& e : env_copy) envp.push_back(e.data());
  envp.push_back(nullptr);
  // Under the registry lock, so kill_all_children never misses a child between fork and add.
  std::lock_guard lock(registry_mutex);
  pid_ = ::fork();
  if (pid_ < 0) {
    ::close(log_fd);
    throw std::runtime_error("fork failed");
  }
  if (pid_ == 0) exec_child(args, envp, log_fd, cpu);
  ::setpgid(pid_, pid_);  // also in the parent: whichever runs first wins, both agree
  ::close(log_fd);
  registry.insert(pid_);
}

Child::~Child() {
  if (pid_ > 0 && !poll()) {
    kill_group();
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  registry_remove(pid_);
}

std::optional<int> Child::poll() {
  if (status_) return status_;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) {
    status_ = decode_status(st);
    registry_remove(pid_);
    // Whatever the leader left behind in its group (workers) goes too.
    ::kill(-pid_, SIGKILL);
  }
  return status_;
}

std::optional<std::string> Child::wait_for_line(const std::string& prefix,
                                                std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::ifstream in(log_path_);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(prefix, 0) == 0) return line;
    if (poll() || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::optional<int> Child::stop(int sig, std::chrono::milliseconds timeout) {
  if (poll()) return status_;
  ::kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (poll()) return status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill_group();
  int st = 0;
  ::waitpid(pid_, &st, 0);
  status_ = decode_status(st);
  registry_remove(pid_);
  return std::nullopt;
}

bool Child::await_group_gone(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (::kill(-pid_, 0) != 0 && errno == ESRCH) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void Child::kill_group() {
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
}

std::string Child::log_tail(std::size_t max_bytes) const { return file_tail(log_path_, max_bytes); }

void kill_all_children() {
  std::lock_guard lock(registry_mutex);
  for (pid_t p : registry) {
    ::kill(-p, SIGKILL);
    ::kill(p, SIGKILL);
  }
}

std::string command_output(const std::string& cmd) {
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    std::array<char, 512> buf{};
    while (std::fgets(buf.data(), buf.size(), p)) out += buf.data();
    ::pclose(p);
  }
  return out;
}

std::string first_line(std::string text) {
  auto nl = text.find('\n');
  if (nl != std::string::npos) text.resize(nl);
  return text;
}

std::string file_tail(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool wait_for_port(std::uint16_t port, std::chrono::milliseconds timeout, Child* child) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return true;
    if (child && child->poll()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::uint16_t free_port() {
  // Start at a pid-dependent place so two runners rarely try the same ports.
  constexpr int kLow = 20000, kSpan = 12000;
  int start = static_cast<int>(::getpid() * 7919 + ::time(nullptr)) % kSpan;
  for (int i = 0; i < kSpan; ++i) {
    auto port = static_cast<std::uint16_t>(kLow + (start + i) % kSpan);
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return port;
  }
  return 0;
}

}  // namespace shootout::runner
