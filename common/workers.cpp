#include "workers.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include "control.hpp"
#include "log.hpp"
#include "net.hpp"
#include "start_workers.hpp"
#include "stats.hpp"

namespace shootout {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::chrono::seconds kStableAfter{10};  // a worker that ran this long restarts at once
constexpr milliseconds kFirstBackoff{100};        // else: 100 ms, 200 ms, ... up to
constexpr milliseconds kLongestBackoff{10'000};
constexpr std::chrono::seconds kStartTimeout{60};  // every worker listening, at start-up
constexpr std::chrono::seconds kDrainMargin{5};    // past --grace: the workers' own exit
constexpr std::chrono::seconds kReapAfterKill{10};

std::string describe(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status),
                       ::strsignal(WTERMSIG(status)));
  return fmt::format("ended (wait status {})", status);
}

long long ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<milliseconds>(b - a).count();
}

// The master of run_workers(); everything runs on its one thread.
class Master {
 public:
  Master(const ServeOptions& options, const std::function<int(const ServeOptions&)>& run_worker)
      : options_(options), run_worker_(run_worker), workers_(options.workers) {}
  ~Master() {
    for (int fd : {bound_fd_, ready_[0], ready_[1]})
      if (fd >= 0) ::close(fd);
  }
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  int run() {
    // The port, bound and kept but never listened on: the kernel hands connections only to
    // listening sockets of the SO_REUSEPORT group, the workers'.
    bound_fd_ = open_listener({options_.host, options_.port, options_.backlog, true, false, false});
    worker_options_ = options_;
    worker_options_.port = local_port(bound_fd_);
    worker_options_.stats_file.clear();  // the master's to write
    if (::pipe2(ready_, O_CLOEXEC) != 0)
      throw std::system_error(errno, std::generic_category(), "pipe for the workers");
    ::fcntl(ready_[0], F_SETFL, O_NONBLOCK);
    // Destroyed (writing the stats file a last time) after every worker has been reaped.
    SignalFd signals({[this] { stop(); }, [this] { reap(); }}, options_.stats_file, options_.model);
    signals_ = &signals;
    int next = 0;
    if (!start_workers(count(), "fork worker process", [&] { return spawn(next++); })) {
      stop();
      drain();
      return 1;
    }
    const auto give_up = Clock::now() + kStartTimeout;
    while (!stopping_ && listening() < count()) {
      if (Clock::now() >= give_up) {
        log_line("{} of {} workers not listening {} s after they started; stopping",
                 count() - listening(), count(), kStartTimeout.count());
        failed_status_ = 1;
        stop();
        break;
      }
      wait_events(give_up);
    }
    if (!stopping_) {
      announced_ = true;
      announce_listening(options_.host, worker_options_.port);
    }
    while (!stopping_) {
      wait_events(next_restart());
      restart_due();
    }
    const bool clean = drain();
    if (failed_status_ != 0) return failed_status_;
    return clean ? 0 : 1;
  }

 private:
  struct Worker {
    pid_t pid = 0;  // 0: not running
    bool listening = false;
    Clock::time_point started{}, restart_at{};
    milliseconds backoff{0};
    int restarts = 0;
  };

  int count() const { return static_cast<int>(workers_.size()); }
  int listening() const {
    return static_cast<int>(std::count_if(workers_.begin(), workers_.end(),
                                          [](const Worker& w) { return w.listening; }));
  }
  int running() const {
    return static_cast<int>(
        std::count_if(workers_.begin(), workers_.end(), [](const Worker& w) { return w.pid > 0; }));
  }

  // Forks worker i. False, with errno set, if the kernel refused (EAGAIN, ENOMEM).
  bool spawn(int i) {
    const pid_t master = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) worker_main(master);
    Worker& w = workers_[static_cast<std::size_t>(i)];
    w.pid = pid;
    w.listening = false;
    w.started = Clock::now();
    return true;
  }

  // The worker process, first thing after fork; never returns.
  [[noreturn]] void worker_main(pid_t master) {
    // Dies with the master, whatever kills it. SIGKILL, as the forked model's children do: the
    // master's --grace bound dies with it, and an orphan would go on serving from the shared
    // port. If the master died before the prctl, we already belong to someone else.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != master) _exit(1);
    ::setpgid(0, 0);
    ::close(bound_fd_);
    ::close(ready_[0]);
    ::close(signals_->fd());
    announce_to_master(ready_[1]);
    int status = 1;
    try {
      status = run_worker_(worker_options_);
    } catch (const std::exception& e) {
      log_line("worker: {}", e.what());
    }
    std::fflush(stdout);
    _exit(status);  // none of the master's destructors: they are the master's
  }

  // Waits until something arrives or `until`, and acts on it: signals (SignalFd: stop, reap,
  // the stats file), and workers saying they listen.
  void wait_events(Clock::time_point until) {
    int timeout = -1;
    if (until != Clock::time_point::max())
      timeout = static_cast<int>(std::clamp<long long>(ms_between(Clock::now(), until) + 1, 0,
                                                       std::numeric_limits<int>::max()));
    pollfd fds[2] = {{signals_->fd(), POLLIN, 0}, {ready_[0], POLLIN, 0}};
    if (::poll(fds, 2, timeout) <= 0) return;  // the time is up (EINTR: signals are blocked)
    if (fds[0].revents) signals_->handle();
    if (fds[1].revents) read_ready();
  }

  void read_ready() {
    std::int32_t pids[64];
    for (;;) {
      const ssize_t n = ::read(ready_[0], pids, sizeof pids);
      if (n <= 0) return;  // EAGAIN: none left
      for (std::size_t k = 0; k < static_cast<std::size_t>(n) / sizeof pids[0]; ++k)
        for (std::size_t i = 0; i < workers_.size(); ++i) {
          Worker& w = workers_[i];
          if (w.pid != pids[k]) continue;
          w.listening = true;
          if (announced_) log_line("worker {} of {} (pid {}) is listening", i + 1, count(), w.pid);
        }
    }
  }

  // SIGCHLD (signalfd). Signals coalesce: reap until nothing is left.
  void reap() {
    int status = 0;
    pid_t pid;
    rusage usage{};
    while ((pid = ::wait4(-1, &status, WNOHANG, &usage)) > 0) {
      note_reaped(pid, usage);  // on the thread that writes the report (stats.hpp)
      auto it = std::find_if(workers_.begin(), workers_.end(),
                             [pid](const Worker& w) { return w.pid == pid; });
      if (it == workers_.end()) continue;
      const std::size_t i = static_cast<std::size_t>(it - workers_.begin());
      Worker& w = *it;
      const bool was_listening = w.listening;
      w.pid = 0;
      w.listening = false;
      const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (stopping_) {
        if (!clean) {
          unclean_ = true;
          log_line("worker {} of {} (pid {}) {} while stopping", i + 1, count(), pid,
                   describe(status));
        }
        continue;
      }
      if (!announced_) {
        log_line("worker {} of {} (pid {}) {} before the server listened; stopping", i + 1, count(),
                 pid, describe(status));
        failed_status_ = WIFEXITED(status) && WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1;
        stop();
        continue;
      }
      const auto now = Clock::now();
      w.backoff = now - w.started >= kStableAfter ? milliseconds{0} : longer(w.backoff);
      w.restart_at = now + w.backoff;
      log_line("worker {} of {} (pid {}) {} after {} ms{}; starting another in {} ms", i + 1,
               count(), pid, describe(status), ms_between(w.started, now),
               was_listening ? "" : " (it never listened)", w.backoff.count());
    }
  }

  static milliseconds longer(milliseconds backoff) {
    return backoff.count() == 0 ? kFirstBackoff : std::min(backoff * 2, kLongestBackoff);
  }

  Clock::time_point next_restart() const {
    auto next = Clock::time_point::max();
    for (const Worker& w : workers_)
      if (w.pid == 0) next = std::min(next, w.restart_at);
    return next;
  }

  void restart_due() {
    const auto now = Clock::now();
    for (std::size_t i = 0; i < workers_.size() && !stopping_; ++i) {
      Worker& w = workers_[i];
      if (w.pid != 0 || w.restart_at > now) continue;
      if (spawn(static_cast<int>(i))) {
        ++w.restarts;
        log_line("worker {} of {} restarted as pid {} (restart {})", i + 1, count(), w.pid,
                 w.restarts);
        continue;
      }
      const int err = errno;
      counters().errors.fetch_add(1, std::memory_order_relaxed);
      w.backoff = longer(w.backoff);
      w.restart_at = now + w.backoff;
      log_line("cannot fork worker {} of {}: {}; trying again in {} ms", i + 1, count(),
               std::strerror(err), w.backoff.count());
    }
  }

  // SIGTERM/SIGINT (once), or a failed start-up.
  void stop() {
    if (stopping_) return;
    stopping_ = true;
    for (const Worker& w : workers_)
      if (w.pid > 0) ::kill(w.pid, SIGTERM);
  }

  // After stop(): waits for the workers' own drain, bounded; none is left unreaped. True if
  // every worker reaped since the stop exited 0.
  bool drain() {
    const auto deadline = Clock::now() + options_.grace + kDrainMargin;
    while (running() > 0 && Clock::now() < deadline) wait_events(deadline);
    if (running() > 0) {
      log_line("{} workers still running {} ms after SIGTERM (--grace plus {} s); killing them",
               running(), ms_between(deadline - options_.grace - kDrainMargin, Clock::now()),
               kDrainMargin.count());
      unclean_ = true;
      for (const Worker& w : workers_)
        if (w.pid > 0) ::kill(w.pid, SIGKILL);
      const auto until = Clock::now() + kReapAfterKill;
      while (running() > 0 && Clock::now() < until) wait_events(until);
      if (running() > 0)
        log_line("{} workers not reaped {} s after SIGKILL", running(), kReapAfterKill.count());
    }
    return !unclean_;
  }

  const ServeOptions& options_;
  const std::function<int(const ServeOptions&)>& run_worker_;
  ServeOptions worker_options_;
  std::vector<Worker> workers_;
  int bound_fd_ = -1;
  int ready_[2] = {-1, -1};  // workers write their pid to [1] once they listen
  SignalFd* signals_ = nullptr;
  bool stopping_ = false;
  bool announced_ = false;  // `listening on` printed: from now on a dead worker is restarted
  bool unclean_ = false;    // a worker did not exit 0 during the stop
  int failed_status_ = 0;   // start-up failed: the master's exit status
};

}  // namespace

int run_workers(const ServeOptions& options,
                const std::function<int(const ServeOptions&)>& run_worker) {
  Master master(options, run_worker);
  return master.run();
}

}  // namespace shootout
