#include "control.hpp"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <system_error>

#include "log.hpp"
#include "stats.hpp"
#include "trace.hpp"

namespace shootout {

namespace {
sigset_t server_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGCHLD}) sigaddset(&set, s);
  return set;
}

// Signals the server has no use for whose default action would end the process. Someone else's
// SIGHUP (a closed terminal, a "reload" meant for nginx), SIGALRM or real-time signal must not
// take the server down or cut its responses, so they are ignored. Left at their defaults on
// purpose: SIGQUIT and SIGKILL (a person's "die now"), the fault signals (SIGSEGV, SIGBUS,
// SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS: a fault must stay fatal, and sanitizers catch
// them), SIGXCPU and SIGXFSZ (limits someone set on purpose), SIGPROF (a profiler's).
void ignore_unused_signals() {
  for (int s : {SIGHUP, SIGPIPE, SIGALRM, SIGVTALRM, SIGIO, SIGPWR, SIGSTKFLT})
    std::signal(s, SIG_IGN);
  for (int s = SIGRTMIN; s <= SIGRTMAX; ++s) std::signal(s, SIG_IGN);
}

// How a forked child installs its stop handler. Normally sigaction(). Under ThreadSanitizer,
// the sigaction of libc itself: TSan, in a child forked from a multi-threaded process (the
// forked model's parent has a control thread), ignores every interceptor from the fork on,
// expecting an exec, and only queues a signal for its handler, to be delivered at the next
// interceptor, which it no longer runs: the child would never see SIGTERM (found in the forked
// variants of the suites: "children still busy after the grace period"). The kernel must call
// the handler directly. Resolved in the parent (dlopen after fork is not safe); TSan's checks in
// such a child are off anyway, so bypassing it there hides nothing.
using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);
SigactionFn child_sigaction() {
#if defined(__SANITIZE_THREAD__)
  static const SigactionFn libc = [] {
    void* lib = ::dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    void* fn = lib ? ::dlsym(lib, "sigaction") : nullptr;
    return fn ? reinterpret_cast<SigactionFn>(fn) : &::sigaction;
  }();
  return libc;
#else
  return &::sigaction;
#endif
}
}  // namespace

void block_server_signals() {
  child_sigaction();        // resolved here, in the parent, before any fork
  ignore_unused_signals();  // SIGPIPE among them: writes use MSG_NOSIGNAL anyway
  sigset_t set = server_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void unblock_signals_in_child(void (*on_stop)(int)) {
  // SIGUSR1 and SIGUSR2 mean something to the parent's control thread only: a child (which
  // has none) ignores them, so one sent to the whole process group ends no connection.
  for (int s : {SIGUSR1, SIGUSR2}) std::signal(s, SIG_IGN);
  std::signal(SIGCHLD, SIG_DFL);
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  child_sigaction()(SIGTERM, &sa, nullptr);
  child_sigaction()(SIGINT, &sa, nullptr);
  sigset_t set = server_signals();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

void exit_after_grace(const std::string& stats_file, const std::string& model, std::size_t busy,
                      std::chrono::milliseconds grace) {
  log_line("{} connections still busy after the {} ms grace period; exiting", busy, grace.count());
  if (!stats_file.empty()) write_stats_file(stats_file, model);
  trace::write();  // threads still busy may tear their last events
  std::fflush(stdout);
  _exit(1);
}

SignalActions::SignalActions(SignalCallbacks callbacks, std::string stats_file, std::string model)
    : callbacks_(std::move(callbacks)),
      stats_file_(std::move(stats_file)),
      model_(std::move(model)) {}

void SignalActions::write_stats() const {
  if (!stats_file_.empty() && !write_stats_file(stats_file_, model_))
    log_line("cannot write stats file {}", stats_file_);
}

void SignalActions::on_signal(int sig) {
  switch (sig) {
    case SIGUSR1: {
      std::unique_lock<std::mutex> lock;
      if (callbacks_.stats_lock) lock = std::unique_lock(*callbacks_.stats_lock);
      write_stats();
      break;
    }
    case SIGCHLD:
      if (callbacks_.on_child) callbacks_.on_child();
      break;
    case SIGTERM:
    case SIGINT:
      if (stopping_) {
        log_line("second stop signal: exiting now");
        _exit(1);
      }
      stopping_ = true;
      callbacks_.on_stop();
      break;
    default:  // SIGUSR2 from outside (SignalFd): the server has no use for it
      break;
  }
}

SignalControl::SignalControl(Callbacks callbacks, std::string stats_file, std::string model)
    : actions_(std::move(callbacks), std::move(stats_file), std::move(model)) {
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {  // EAGAIN: the task limit (RLIMIT_NPROC, pids cgroup)
    throw std::system_error(e.code(), "cannot start the control thread");
  }
  // Return only once the thread is in run(): a thread still starting up may hold a lock of the
  // C library or of a sanitizer runtime (its allocator, as ASan's thread set-up does), and a
  // fork() made meanwhile by the forked model would hand its child that lock, held forever.
  started_.wait(false);
}

SignalControl::~SignalControl() {
  // SIGUSR2, sent by this destructor after quitting_ is set, is the control thread's own "quit"
  // signal. One from outside, with quitting_ still false, is ignored (see run()).
  quitting_.store(true);
  pthread_kill(thread_.native_handle(), SIGUSR2);
  thread_.join();
  actions_.write_stats();
}

void SignalControl::run() {
  started_.store(true);
  started_.notify_one();
  const sigset_t set = server_signals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    // Only our own SIGUSR2 ends the thread: if an outside one did, nobody would receive
    // SIGTERM and SIGINT any more (blocked in every thread), and the server could not be
    // stopped. quitting_ is set before the destructor sends its SIGUSR2, so that one (or an
    // outside one merged with it) is always seen with quitting_ true.
    if (sig == SIGUSR2) {
      if (quitting_.load()) return;
      continue;
    }
    actions_.on_signal(sig);
  }
}

SignalFd::SignalFd(SignalCallbacks callbacks, std::string stats_file, std::string model)
    : actions_(std::move(callbacks), std::move(stats_file), std::move(model)) {
  const sigset_t set = server_signals();
  fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
}

SignalFd::~SignalFd() {
  ::close(fd_);
  actions_.write_stats();
}

void SignalFd::handle() {
  signalfd_siginfo info[8];
  for (;;) {
    ssize_t n = ::read(fd_, info, sizeof info);
    if (n <= 0) return;  // EAGAIN: none left
    for (std::size_t i = 0; i < static_cast<std::size_t>(n) / sizeof info[0]; ++i)
      actions_.on_signal(static_cast<int>(info[i].ssi_signo));
  }
}

}  // namespace shootout
