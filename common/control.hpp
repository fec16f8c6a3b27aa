#pragma once
// Signals, received synchronously (sigwait or a signalfd): no async-signal-safety puzzles.
//
//   block_server_signals()  main thread, first thing, before any thread exists: blocks SIGTERM,
//                           SIGINT, SIGUSR1, SIGUSR2 and SIGCHLD in every thread created later,
//                           and ignores the signals the server does not use whose default would
//                           end it: SIGHUP, SIGPIPE (writes use MSG_NOSIGNAL anyway), SIGALRM,
//                           SIGVTALRM, SIGIO, SIGPWR, SIGSTKFLT and the real-time signals.
//   SignalControl           starts the control thread. The first SIGTERM or SIGINT runs
//                           on_stop (once); a second one exits at once with status 1. SIGUSR1
//                           writes the stats file. SIGCHLD runs on_child (forked model).
//                           SIGUSR2 from outside is ignored: only the destructor's own SIGUSR2
//                           ends the thread, which must live as long as the server, since no
//                           other thread receives SIGTERM. Callbacks run on the control thread.
//   SignalFd                the same actions without a thread: a signalfd that an event loop
//                           watches, calling handle() when it is readable (the evented
//                           model, whose process then needs no thread besides its loops).
//   unblock_signals_in_child(on_stop)  a forked child (which inherits the parent's blocked set)
//                           installs `on_stop` for SIGTERM and SIGINT (no SA_RESTART), ignores
//                           SIGUSR1 and SIGUSR2 (the parent's business), restores the default
//                           for SIGCHLD, and only then unblocks them, so a stop signal already
//                           pending reaches the child's own handler.
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace shootout {

void block_server_signals();

// The --grace period ran out with `busy` connections still being served by threads or fibers
// that use the server's objects: log it, write the stats file one last time, and leave at once
// with status 1, without running destructors under their feet. Any thread.
[[noreturn]] void exit_after_grace(const std::string& stats_file, const std::string& model,
                                   std::size_t busy, std::chrono::milliseconds grace);
void unblock_signals_in_child(void (*on_stop)(int));

// What the server does with each of its signals, wherever they are received.
struct SignalCallbacks {
  std::function<void()> on_stop;   // required
  std::function<void()> on_child;  // optional: SIGCHLD
  // Optional: held while the control thread writes the stats file (SIGUSR1), which
  // allocates. The forked model passes the mutex it forks under, so that no child is forked
  // while this thread is inside an allocator: a lock held at fork() stays held in the child
  // (glibc's malloc guards itself against that; a sanitizer's allocator does not).
  std::mutex* stats_lock = nullptr;
};

// The actions themselves: the first SIGTERM/SIGINT runs on_stop, a second one exits at once,
// SIGUSR1 writes the stats file, SIGCHLD runs on_child. One receiver thread at a time.
class SignalActions {
 public:
  SignalActions(SignalCallbacks callbacks, std::string stats_file, std::string model);
  void on_signal(int sig);
  void write_stats() const;  // if there is a stats file

 private:
  SignalCallbacks callbacks_;
  std::string stats_file_;
  std::string model_;
  bool stopping_ = false;
};

// A control thread that receives the signals with sigwait.
class SignalControl {
 public:
  using Callbacks = SignalCallbacks;
  SignalControl(Callbacks callbacks, std::string stats_file, std::string model);
  ~SignalControl();  // stops and joins the control thread; writes the stats file once more
  SignalControl(const SignalControl&) = delete;
  SignalControl& operator=(const SignalControl&) = delete;

 private:
  void run();
  SignalActions actions_;
  std::atomic<bool> started_{false};   // the control thread has reached run()
  std::atomic<bool> quitting_{false};  // set by the destructor before its SIGUSR2
  std::thread thread_;
};

// The signals as a descriptor (signalfd) instead of a thread. The server's signals must be
// blocked in every thread (block_server_signals), as they are for SignalControl.
// Threads: handle() on the one thread that watches fd(); the rest at set-up and shutdown.
class SignalFd {
 public:
  // Throws std::system_error if signalfd fails.
  SignalFd(SignalCallbacks callbacks, std::string stats_file, std::string model);
  ~SignalFd();  // closes the descriptor; writes the stats file once more
  SignalFd(const SignalFd&) = delete;
  SignalFd& operator=(const SignalFd&) = delete;

  int fd() const { return fd_; }  // non-blocking; readable while a signal is pending
  // Reads every pending signal and acts on each, in order.
  void handle();

 private:
  SignalActions actions_;
  int fd_;
};

}  // namespace shootout
