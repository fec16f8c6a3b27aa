// The threaded model. One flow of control per connection, and that flow is a kernel thread:
// the kernel's scheduler is the event loop, each blocked read(2) is a parked thread, and every
// connection costs a stack and a context switch per wake-up.
//
// Threads:
//   main      accepts (thread per connection), or waits for the stop (pool)
//   conn/N    serve one connection each, with serve_connection() over a blocking socket
//   control   sigwait; on SIGTERM/SIGINT calls stop()
// Shutdown: stop() marks the server stopping, shuts the listener (waking accept) and shuts the
// read side of every live connection, so a thread parked in read() sees EOF while a thread
// busy with a response finishes it. main waits up to --grace for the last connection.
#include "server.hpp"

#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "accept.hpp"
#include "blocking_io.hpp"
#include "control.hpp"
#include "log.hpp"
#include "start_workers.hpp"
#include "trace.hpp"

namespace shootout {

namespace {

// Starts a detached or joinable pthread with the requested stack size (std::thread cannot set
// one). Returns false, with errno set, when the kernel refuses (EAGAIN: too many threads).
bool start_thread(std::function<void()> fn, std::size_t stack_size, pthread_t* joinable) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (stack_size) pthread_attr_setstacksize(&attr, stack_size);
  if (!joinable) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  auto* heap_fn = new std::function<void()>(std::move(fn));
  pthread_t tid;
  int rc = pthread_create(
      &tid, &attr,
      [](void* p) -> void* {
        std::unique_ptr<std::function<void()>> f(static_cast<std::function<void()>*>(p));
        (*f)();
        return nullptr;
      },
      heap_fn);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    delete heap_fn;
    errno = rc;
    return false;
  }
  if (joinable) *joinable = tid;
  return true;
}

class ThreadedServer {
 public:
  ThreadedServer(const ServeOptions& options, const Handler& handler)
      : options_(options), handler_(handler), listener_(options) {}

  int run() {
    SignalControl control({[this] { stop(); }, {}}, options_.stats_file, options_.model);
    if (options_.pool > 0 &&
        !start_workers(options_.pool, "create pool thread", [this] { return add_pool_thread(); })) {
      stop();
      join_pool();
      return 1;
    }
    listener_.announce();
    options_.pool > 0 ? wait_for_stop() : accept_loop();  // until stop()
    const bool drained = wait_for_threads();
    join_pool();  // pool threads leave their accept loop once the listener is shut
    return drained ? 0 : 1;
  }

 private:
  // Control thread.
  void stop() {
    std::lock_guard lock(mu_);
    stopping_.store(true);
    listener_.shut();  // wakes every thread blocked in accept()
    for (int fd : live_) ::shutdown(fd, SHUT_RD);
    cv_.notify_all();
  }

  // Main thread: thread per connection. Waits for a free slot (--max-threads) *before*
  // accepting, so excess connections queue in the kernel's backlog instead of failing.
  void accept_loop() {
    listener_.accept_each(
        [this] { return wait_for_thread_slot(); },
        [this](int fd) {
          started_one();
          if (start_thread([this, fd] { serve(fd); }, options_.stack_size, nullptr)) return;
          refuse_connection("cannot create a thread", std::strerror(errno));
          ::close(fd);
          finished_one();
        });
  }

  // Main thread: true once a thread may start, false once the server stops.
  bool wait_for_thread_slot() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return threads_ < options_.max_threads || stopping_; });
    return !stopping_;
  }

  void wait_for_stop() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return stopping_.load(); });
  }

  // Main thread: one more pool thread; false (errno set) if the kernel refuses it.
  bool add_pool_thread() {
    pthread_t tid;
    if (!start_thread([this] { pool_worker(); }, options_.stack_size, &tid)) return false;
    pool_.push_back(tid);  // only main touches pool_
    return true;
  }

  void join_pool() {
    for (pthread_t tid : pool_) pthread_join(tid, nullptr);
  }

  // Pool thread: accept and serve one connection at a time, until the listener is shut.
  void pool_worker() {
    listener_.accept_each([this] { return !stopping_; },
                          [this](int fd) {
                            started_one();
                            serve(fd);
                          });
  }

  // The connection's thread: owns fd from here on and closes it.
  // Traced: the thread is named "conn" and the connection is one span on it (the thread's
  // ring passes to the next thread when it ends: common/trace.hpp).
  void serve(int fd) noexcept {
    trace::name_thread("conn");
    {
      trace::Span span("connection", "dispatch");  // recorded before finished_one() below
      span.arg("fd", fd);
      {
        std::lock_guard lock(mu_);
        live_.insert(fd);
        if (stopping_) ::shutdown(fd, SHUT_RD);  // accepted just as stop() swept the set
      }
      serve_blocking(fd, handler_, options_, stopping_);
      {
        std::lock_guard lock(mu_);
        live_.erase(fd);
      }
      ::close(fd);
    }
    finished_one();
  }

  void started_one() {
    std::lock_guard lock(mu_);
    ++threads_;
  }

  void finished_one() {
    std::lock_guard lock(mu_);
    --threads_;
    cv_.notify_all();
  }

  // Main thread, after stop(): waits up to --grace for connection threads to finish.
  bool wait_for_threads() {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, options_.grace, [&] { return threads_ == 0; })) return true;
    // Detached threads still use this object: leave without running destructors.
    exit_after_grace(options_.stats_file, options_.model, static_cast<std::size_t>(threads_),
                     options_.grace);
  }

  const ServeOptions& options_;
  const Handler& handler_;
  Listener listener_;            // every accepting thread's
  std::vector<pthread_t> pool_;  // main thread only
  std::atomic<bool> stopping_{false};
  std::mutex mu_;                 // guards everything below, and stopping_'s transitions
  std::condition_variable cv_;    // threads_ fell, or stopping_ rose
  std::unordered_set<int> live_;  // fds of connections being served
  int threads_ = 0;               // connection threads alive (or pool threads serving)
};

}  // namespace

int run_threaded(const ServeOptions& options, const Handler& handler) {
  ThreadedServer server(options, handler);
  return server.run();
}

}  // namespace shootout
