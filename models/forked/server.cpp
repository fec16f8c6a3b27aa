// The forked model. One flow of control per connection, and that flow is a whole process: the
// kernel's scheduler is the event loop, each blocked read(2) is a parked process, and every
// connection costs a fork(2), its own address space (copy-on-write) and a reap.
//
// Processes and threads:
//   parent main     accepts and forks a child per connection (per connection), or keeps the
//                   pool at N workers, forking a replacement when one dies (prefork)
//   parent control  sigwait; SIGTERM/SIGINT calls stop(), SIGCHLD calls reap()
//   child           serves one connection (per connection) or accepts and serves one connection
//                   at a time (prefork worker) with serve_connection() over a blocking socket,
//                   then leaves with _exit(0). It is single-threaded: fork copies only the
//                   calling thread, so the control thread does not exist there, and the child
//                   never touches SignalControl or the parent's mutex (which fork may have
//                   copied locked).
// Shutdown: stop() marks the server stopping, shuts the listener (waking accept in the parent
// and in every worker) and sends SIGTERM to every child. A child's own handler sets its flag and
// shuts the read side of its connection, so a child parked in read() sees EOF while a child busy
// with a response finishes it. main waits up to --grace for the last child, then SIGKILLs the
// stragglers and still reaps them: no process outlives the server. If the parent itself is
// killed (SIGKILL), the kernel SIGKILLs every child (PR_SET_PDEATHSIG, see enter_child()).
// --no-reap (teaching): exited children are left as zombies (<defunct>) until SIGTERM, at most
// --max-zombies (64) of them, past which the server stops accepting and says so; stop() reaps
// them all. docs/FORKED.md.
// Accounting: children are reaped as soon as SIGCHLD arrives, so getrusage(RUSAGE_CHILDREN) in
// the stats file holds every finished child, and each reap goes into the reap log (stats.hpp)
// on the control thread, which also writes the report; counters() live in a shared page mapped
// before fork.
#include "server.hpp"

#include <malloc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "accept.hpp"
#include "blocking_io.hpp"
#include "control.hpp"
#include "log.hpp"
#include "start_workers.hpp"
#include "stats.hpp"
#include "trace.hpp"

namespace shootout {

namespace {

constexpr std::chrono::milliseconds kReforkAfter{100};  // a failed fork of a pool worker
constexpr std::chrono::seconds kReapAfterKill{10};      // children SIGKILLed after --grace

// A child's stop state, set by its own SIGTERM/SIGINT handler. Each child has its own copy
// (fork copies memory); the parent never sets these. Lock-free atomics are signal-safe.
std::atomic<bool> child_stopping{false};
std::atomic<int> child_conn{-1};  // the connection being served, or -1
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free);

extern "C" void on_child_stop(int) {
  child_stopping.store(true, std::memory_order_relaxed);
  // shutdown(2) is async-signal-safe. A child parked in read() sees EOF; one busy with a
  // response finishes it, then serve_connection() sees child_stopping and returns.
  int fd = child_conn.load(std::memory_order_relaxed);
  if (fd >= 0) ::shutdown(fd, SHUT_RD);
}

class ForkedServer {
 public:
  ForkedServer(const ServeOptions& options, const Handler& handler)
      : options_(options), handler_(handler), listener_(options), parent_pid_(::getpid()) {
    // No fastbins in this process (and so in the children it forks). A child's first larger
    // allocation consolidates glibc's fastbins, writing into every heap page that holds a
    // freed small chunk; each such page was the parent's and is copied for that child. The
    // parent frees thousands of small chunks (children_'s nodes, one per child) after a burst,
    // so every later child paid for the burst: 10,000 idle children took 3,031 MB of PSS
    // after the server had once served 10,000 connections, against 1,142 MB from a fresh
    // server; 1,160 MB with this (2026-12-03, `load -c 10000` then `load --idle -c 10000`,
    // docs/FORKED.md; test LoadgenForkedMemory). Small allocations still go through the
    // per-thread caches (tcache).
    ::mallopt(M_MXFAST, 0);
  }

  int run() {
    SignalControl control({[this] { stop(); }, [this] { reap(); }, &mu_}, options_.stats_file,
                          options_.model);
    if (options_.prefork > 0 && !start_workers(options_.prefork, "fork pool process", [this] {
          return fork_child([this] { pool_worker(); }) >= 0;
        })) {
      stop();
      wait_for_children();
      return 1;
    }
    listener_.announce();
    options_.prefork > 0 ? keep_pool() : accept_loop();  // until stop()
    return wait_for_children() ? 0 : 1;  // ~SignalControl then writes the stats file
  }

 private:
  // Parent, control thread.
  void stop() {
    std::lock_guard lock(mu_);
    stopping_.store(true);
    listener_.shut();  // wakes accept() in main and in every worker
    for (pid_t pid : children_) ::kill(pid, SIGTERM);
    // --no-reap ends here: the zombies kept for show are reaped now.
    if (!zombies_.empty())
      log_line("stopping: reaping the {} children left unreaped (--no-reap)", zombies_.size());
    for (pid_t pid : zombies_) {  // already exited: returns at once
      rusage usage{};
      if (::wait4(pid, nullptr, 0, &usage) == pid) note_reaped(pid, usage);
    }
    zombies_.clear();
    cv_.notify_all();
  }

  // Parent, control thread, on SIGCHLD. Signals coalesce (one SIGCHLD may stand for many
  // exits), so reap until nothing is left. Holding mu_ means a child is never reaped before
  // fork_child() has recorded it.
  void reap() {
    std::lock_guard lock(mu_);
    if (options_.no_reap && !stopping_) return keep_zombies();
    int status = 0;
    pid_t pid;
    rusage usage{};
    while ((pid = ::wait4(-1, &status, WNOHANG, &usage)) > 0) {
      note_reaped(pid, usage);
      children_.erase(pid);
      if (WIFSIGNALED(status) && !stopping_) {
        static RateLimit rl;
        std::uint64_t dropped = 0;
        if (rl.allow(&dropped))
          log_line("child {} killed by signal {} ({} more not logged)", pid, WTERMSIG(status),
                   dropped);
      }
    }
    cv_.notify_all();
  }

  // Parent, control thread, on SIGCHLD with --no-reap (the teaching point "children must be
  // reaped"): finds the children that exited, without reaping them (waitid with WNOWAIT), and
  // moves them from the live set to the zombies: `ps` shows each as <defunct>, holding its pid
  // and its process-table entry, until stop() reaps them. One waitid per live child per
  // SIGCHLD, fine for a demonstration bounded by --max-procs and --max-zombies. Caller holds
  // mu_.
  void keep_zombies() {
    for (auto it = children_.begin(); it != children_.end();) {
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(*it), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == *it) {
        zombies_.insert(*it);
        it = children_.erase(it);
        static RateLimit rl;
        std::uint64_t dropped = 0;
        if (rl.allow(&dropped))
          log_line(
              "child {} exited and is left unreaped (--no-reap): {} zombies ({} more not "
              "logged)",
              info.si_pid, zombies_.size(), dropped);
      } else {
        ++it;
      }
    }
    if (static_cast<int>(zombies_.size()) >= options_.max_zombies && !zombie_cap_logged_) {
      zombie_cap_logged_ = true;
      log_line("{} unreaped children (--max-zombies {}): not accepting any more until SIGTERM",
               zombies_.size(), options_.max_zombies);
    }
    cv_.notify_all();
  }

  // Caller holds mu_. Under --no-reap, the zombies count against their own cap, so the
  // process table (and pid_max) is never at stake.
  bool zombies_full() const { return static_cast<int>(zombies_.size()) >= options_.max_zombies; }

  // Parent main thread: process per connection. Waits for a free slot (--max-procs) *before*
  // accepting, so excess connections queue in the kernel's backlog instead of failing.
  void accept_loop() {
    listener_.accept_each([this] { return wait_for_child_slot(); },
                          [this](int fd) {
                            if (zombie_cap_reached())
                              refuse_connection("--max-zombies unreaped children (--no-reap)",
                                                "not forking");
                            else if (fork_child([this, fd] { serve_one(fd); }) < 0)
                              refuse_connection("cannot fork", std::strerror(errno));
                            ::close(fd);  // the child has its own copy
                          });
  }

  // Parent main thread, after accept: --no-reap's cap may have been reached while accept()
  // was blocked (the slot was checked before it), so the connection is refused, not forked.
  bool zombie_cap_reached() {
    if (!options_.no_reap) return false;
    std::lock_guard lock(mu_);
    return zombies_full() || stopping_;  // stop() has just reaped (and forgotten) the zombies
  }

  // Parent main thread: true once a child may start, false once the server stops.
  bool wait_for_child_slot() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return (live() < options_.max_procs && !zombies_full()) || stopping_; });
    return !stopping_;
  }

  // Parent main thread: prefork. Replaces every worker that dies, until stop().
  void keep_pool() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      cv_.wait(lock, [&] { return (live() < options_.prefork && !zombies_full()) || stopping_; });
      if (stopping_) return;
      lock.unlock();
      if (fork_child([this] { pool_worker(); }) < 0) {
        static RateLimit rl;
        if (rl.allow())
          log_line("cannot fork a replacement worker: {}; retrying in {} ms", std::strerror(errno),
                   kReforkAfter.count());
        counters().errors.fetch_add(1, std::memory_order_relaxed);
        lock.lock();
        cv_.wait_for(lock, kReforkAfter, [&] { return stopping_.load(); });
        continue;
      }
      lock.lock();
    }
  }

  // Parent main thread only (fork copies the calling thread, and only main may be copied: the
  // child must not inherit a half-finished control-thread callback). Runs `body` in the child,
  // which never returns. Returns the pid, or -1 with errno set (EAGAIN, ENOMEM).
  template <class Body>
  pid_t fork_child(Body body) {
    std::lock_guard lock(mu_);  // reap() cannot see the child before it is recorded
    trace::Span span("fork", "dispatch");
    pid_t pid = ::fork();
    if (pid == 0) {
      body();
      _exit(0);  // never reached: bodies end in _exit
    }
    if (pid < 0) return -1;
    children_.insert(pid);
    if (stopping_) ::kill(pid, SIGTERM);  // forked just as stop() swept the set
    return pid;
  }

  // Child: first thing after fork.
  //
  // If the parent dies without stopping us (SIGKILL, a crash), we die with it: no orphan keeps
  // serving from the listener it shares with the other workers, and nobody would bound its
  // drain any more (--grace is the parent's). SIGKILL, not SIGTERM: the stop handler cannot end
  // a worker that enters accept4() just after its flag check (the listener, which a real stop
  // shuts first, is not shut here), nor one inside a /sleep or a write to a client that does
  // not read. The death signal comes when the thread that forked us ends: main, which forks
  // every child and lives as long as the process. Checked once more right after the prctl, in
  // case the parent died before it (we are then already someone else's child).
  //
  // The child inherited the parent's mask (every server signal blocked, as the control thread
  // expects); it installs its own stop handler and only then unblocks, so a SIGTERM already
  // pending reaches that handler. No SA_RESTART, so a worker blocked in accept() returns EINTR
  // and checks its flag.
  void enter_child() {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent_pid_) _exit(0);
    unblock_signals_in_child(on_child_stop);
  }

  // Child, process per connection.
  [[noreturn]] void serve_one(int fd) {
    enter_child();
    listener_.close();
    serve(fd);
    _exit(0);  // no atexit handlers, static destructors or stdio flushes of the parent
  }

  // Child, prefork worker: accept and serve one connection at a time, until stopped or the
  // listener is shut.
  [[noreturn]] void pool_worker() {
    enter_child();
    listener_.accept_each([] { return !child_stopping.load(); }, [this](int fd) { serve(fd); });
    _exit(0);
  }

  // Child: owns fd from here on and closes it.
  // Traced: the connection is one span in the shared ring (common/trace.hpp), under the
  // child's own pid and tid.
  void serve(int fd) noexcept {
    trace::Span span("connection", "dispatch");
    span.arg("fd", fd);
    child_conn.store(fd);  // from here a stop signal shuts its read side
    serve_blocking(fd, handler_, options_, child_stopping);
    child_conn.store(-1);
    ::close(fd);
  }

  // Parent main thread, after stop(): waits up to --grace for the children to finish, then
  // SIGKILLs the rest and waits for reap() to collect them, so none is left behind.
  bool wait_for_children() {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, options_.grace, [&] { return children_.empty(); })) return true;
    log_line("{} children still busy after the {} ms grace period; killing them", children_.size(),
             options_.grace.count());
    for (pid_t pid : children_) ::kill(pid, SIGKILL);
    if (!cv_.wait_for(lock, kReapAfterKill, [&] { return children_.empty(); }))
      log_line("{} children not reaped {} s after SIGKILL", children_.size(),
               kReapAfterKill.count());
    return false;
  }

  // Caller holds mu_.
  int live() const { return static_cast<int>(children_.size()); }

  const ServeOptions& options_;
  const Handler& handler_;
  Listener listener_;  // the accepting thread of this process (parent or worker)
  const pid_t parent_pid_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;                       // guards everything below, and stopping_'s transitions
  std::condition_variable cv_;          // a child was reaped, or stopping_ rose
  std::unordered_set<pid_t> children_;  // live (not yet reaped) children
  std::unordered_set<pid_t> zombies_;   // --no-reap: exited, left unreaped until stop()
  bool zombie_cap_logged_ = false;
};

}  // namespace

int run_forked(const ServeOptions& options, const Handler& handler) {
  ForkedServer server(options, handler);
  return server.run();
}

}  // namespace shootout
