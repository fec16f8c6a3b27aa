#include "server_process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace shootout::test {

std::string shootout_binary() { return SHOOTOUT_BINARY; }

namespace {

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#elif defined(__i386__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_I386;
#else
#error "forbid_io_uring: add this architecture's AUDIT_ARCH_ constant"
#endif

// A seccomp filter: io_uring_setup fails with ENOSYS (what a kernel without io_uring says), a
// system call of another architecture kills the process (its numbers mean other calls), every
// other call is allowed. Inherited across exec (with no_new_privs).
bool forbid_io_uring() {
  static sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
}

// In the child, between fork and exec: only async-signal-safe calls. Returns false if the uid
// switch or the seccomp filter failed.
bool set_up_child(const ChildSetup& setup) {
  if (setup.netns_fd >= 0 && setns(setup.netns_fd, CLONE_NEWNET) != 0) return false;
  if (setup.nofile > 0) {
    rlimit rl{static_cast<rlim_t>(setup.nofile), static_cast<rlim_t>(setup.nofile)};
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (setup.uid != 0) {
    // Groups first: after setuid the process may no longer change them.
    if (setgroups(0, nullptr) != 0 || setgid(setup.gid) != 0 || setuid(setup.uid) != 0)
      return false;
  }
  if (setup.nproc > 0) {
    // After the switch: the kernel checks RLIMIT_NPROC against the new uid's task count.
    rlimit rl{static_cast<rlim_t>(setup.nproc), static_cast<rlim_t>(setup.nproc)};
    setrlimit(RLIMIT_NPROC, &rl);
  }
  if (setup.forbid_io_uring && !forbid_io_uring()) return false;
  return true;
}
}  // namespace

Process::Process(std::vector<std::string> argv, long nofile)
    : Process(std::move(argv), ChildSetup{nofile, 0, 0, 0}) {}

Process::Process(std::vector<std::string> argv, const ChildSetup& setup) {
  // `started` closes in the child at exec (O_CLOEXEC) or at its exit: the parent waits for that,
  // so that what the child set up (its uid, its limits) is in force once the constructor returns.
  // Without the wait, a test that counts a uid's tasks raced the child's setuid.
  int out[2], err[2], started[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(started, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    if (!set_up_child(setup)) _exit(126);
    // The test runner may block signals; the child starts clean.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  ::close(started[1]);
  char byte;
  while (::read(started[0], &byte, 1) < 0 && errno == EINTR) {
  }
  ::close(started[0]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  fcntl(err_fd_, F_SETFL, O_NONBLOCK);
}

Process::~Process() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

void Process::drain(int fd, std::string& into, bool block_ms) {
  if (block_ms) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 20);
  }
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return;
    into.append(buf, static_cast<std::size_t>(n));
  }
}

std::string Process::wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t scanned = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    drain(out_fd_, out_, true);
    for (;;) {
      auto nl = out_.find('\n', scanned);
      if (nl == std::string::npos) break;
      std::string line = out_.substr(scanned, nl - scanned);
      scanned = nl + 1;
      if (line.rfind(prefix, 0) == 0) return line;
    }
    if (!running()) break;
  }
  drain(err_fd_, err_, false);
  throw std::runtime_error("no line starting with '" + prefix + "'; stdout: " + out_ +
                           " stderr: " + err_);
}

int Process::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reaped_) {
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    drain(out_fd_, out_, true);
    drain(err_fd_, err_, false);
  }
  return status_;
}

bool Process::running() {
  if (reaped_) return false;
  return wait(std::chrono::milliseconds(0)) == -1;
}

void Process::signal(int sig) {
  if (!reaped_) ::kill(pid_, sig);
}

std::string Process::stdout_text() {
  drain(out_fd_, out_, false);
  return out_;
}

std::string Process::stderr_text() {
  drain(err_fd_, err_, false);
  return err_;
}

namespace {
std::vector<std::string> serve_argv(std::vector<std::string> args) {
  std::vector<std::string> argv{shootout_binary(), "serve", "--port", "0"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}
}  // namespace

ServerProcess::ServerProcess(std::vector<std::string> args, long nofile)
    : ServerProcess(std::move(args), ChildSetup{nofile, 0, 0, 0}) {}

ServerProcess::ServerProcess(std::vector<std::string> args, const ChildSetup& setup)
    : proc_(serve_argv(std::move(args)), setup) {
  port_ = wait_for_port(proc_, std::chrono::seconds(20));
}

std::uint16_t wait_for_port(Process& proc, std::chrono::milliseconds timeout) {
  std::string line = proc.wait_for_line("listening on ", timeout);
  return static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
}

int ServerProcess::stop(std::chrono::milliseconds timeout) {
  proc_.signal(SIGTERM);
  return proc_.wait(timeout);
}

std::uint64_t requests_seen(ServerProcess& s, const std::string& stats_file) {
  s.process().signal(SIGUSR1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::ifstream f(stats_file);
  auto j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("requests")) return 0;
  return j["requests"].get<std::uint64_t>();
}

bool await_requests(ServerProcess& s, const std::string& stats_file, std::uint64_t n,
                    std::chrono::milliseconds bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (requests_seen(s, stats_file) < n)
    if (std::chrono::steady_clock::now() > deadline) return false;
  return true;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> kids;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return kids;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(dir + "/" + e->d_name + "/children");
    pid_t k;
    while (f >> k) kids.push_back(k);
  }
  closedir(d);
  return kids;
}

namespace {
std::string status_field(pid_t pid, const std::string& key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) return line.substr(key.size() + 1);
  return {};
}
}  // namespace

long status_kib(pid_t pid, const std::string& key) {
  auto v = status_field(pid, key);
  return v.empty() ? -1 : std::stol(v);
}

int thread_count(pid_t pid) {
  auto v = status_field(pid, "Threads");
  return v.empty() ? 0 : std::stoi(v);
}

int fd_count(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) return -1;
  int n = 0;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n;
}

bool has_zombie_child(pid_t pid) {
  for (pid_t k : children_of(pid)) {
    auto state = status_field(k, "State");
    if (state.find('Z') != std::string::npos) return true;
  }
  return false;
}

}  // namespace shootout::test
