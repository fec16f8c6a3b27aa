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

#include "accept_backoff.hpp"
#include "blocking_io.hpp"
#include "control.hpp"
#include "log.hpp"
#include "net.hpp"
#include "serve_connection.hpp"
#include "stats.hpp"

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
      : options_(options), handler_(handler) {}

  int run() {
    listen_fd_ = open_listener({options_.host, options_.port, options_.backlog, false, false});
    SignalControl control({[this] { stop(); }, {}}, options_.stats_file, options_.model);
    if (options_.pool > 0 && !start_pool()) return 1;
    announce_listening(options_.host, local_port(listen_fd_));
    if (options_.pool > 0)
      wait_for_stop();
    else
      accept_loop();
    bool drained = wait_for_connections();
    join_pool();  // pool threads leave their accept loop once the listener is shut
    ::close(listen_fd_);
    return drained ? 0 : 1;
  }

 private:
  // Control thread.
  void stop() {
    std::lock_guard lock(mu_);
    stopping_.store(true);
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes every thread blocked in accept()
    for (int fd : live_) ::shutdown(fd, SHUT_RD);
    cv_.notify_all();
  }

  // Main thread: thread per connection. Waits for a free slot (--max-threads) *before*
  // accepting, so excess connections queue in the kernel's backlog instead of failing.
  void accept_loop() {
    for (;;) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return threads_ < options_.max_threads || stopping_; });
        if (stopping_) return;
      }
      int fd = accept_one();
      if (fd < 0) {
        if (stopping_) return;
        continue;
      }
      {
        std::lock_guard lock(mu_);
        ++threads_;
      }
      if (!start_thread([this, fd] { serve(fd); }, options_.stack_size, nullptr)) {
        static RateLimit rl;
        std::uint64_t dropped = 0;
        if (rl.allow(&dropped))
          log_line("cannot create a thread ({}); closing the connection ({} more dropped)",
                   std::strerror(errno), dropped);
        counters().errors.fetch_add(1, std::memory_order_relaxed);
        ::close(fd);
        finished_one();
      }
    }
  }

  void wait_for_stop() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return stopping_.load(); });
  }

  bool start_pool() {
    for (int i = 0; i < options_.pool; ++i) {
      pthread_t tid;
      if (!start_thread([this] { pool_worker(); }, options_.stack_size, &tid)) {
        log_line("cannot create pool thread {} of {}: {}", i + 1, options_.pool,
                 std::strerror(errno));
        stop();
        join_pool();
        pool_.clear();
        return false;
      }
      std::lock_guard lock(mu_);
      pool_.push_back(tid);
    }
    return true;
  }

  void join_pool() {
    for (pthread_t tid : pool_) pthread_join(tid, nullptr);
  }

  // Pool thread: accept and serve one connection at a time, until the listener is shut.
  void pool_worker() {
    while (!stopping_) {
      int fd = accept_one();
      if (fd < 0) continue;
      {
        std::lock_guard lock(mu_);
        ++threads_;
      }
      serve(fd);
    }
  }

  // Any accepting thread. Returns -1 on a failure that the caller retries or ends on.
  int accept_one() {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      accept_backoff_.reset();
      return fd;
    }
    // Out of descriptors: the connection stays in the backlog; every accepting thread waits.
    if (accept_starved(errno)) std::this_thread::sleep_for(accept_backoff_.next_wait(errno));
    return -1;  // EINTR, ECONNABORTED, or EINVAL once stop() shut the listener
  }

  // The connection's thread: owns fd from here on and closes it.
  void serve(int fd) noexcept {
    counters().connections.fetch_add(1, std::memory_order_relaxed);
    set_nodelay(fd);
    {
      std::lock_guard lock(mu_);
      live_.insert(fd);
      if (stopping_) ::shutdown(fd, SHUT_RD);  // accepted just as stop() swept the set
    }
    try {
      auto session = handler_.new_session();
      BlockingSocketIo io(fd, stopping_, options_.idle_timeout);
      serve_connection(*session, io, options_);
    } catch (const std::exception& e) {
      log_line("connection dropped: {}", e.what());
    }
    {
      std::lock_guard lock(mu_);
      live_.erase(fd);
    }
    ::close(fd);
    finished_one();
  }

  void finished_one() {
    std::lock_guard lock(mu_);
    --threads_;
    cv_.notify_all();
  }

  // Main thread, after stop(): waits up to --grace for connection threads to finish.
  bool wait_for_connections() {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, options_.grace, [&] { return threads_ == 0; })) return true;
    // Detached threads still use this object: leave without running destructors.
    exit_after_grace(options_.stats_file, options_.model, static_cast<std::size_t>(threads_),
                     options_.grace);
  }

  const ServeOptions& options_;
  const Handler& handler_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  AcceptBackoff accept_backoff_;  // out of descriptors: how long accepters wait (any thread)
  std::mutex mu_;                  // guards everything below, and stopping_'s transitions
  std::condition_variable cv_;     // threads_ fell, or stopping_ rose
  std::unordered_set<int> live_;   // fds of connections being served
  int threads_ = 0;                // connection threads alive (or pool threads serving)
  std::vector<pthread_t> pool_;
};

}  // namespace

int run_threaded(const ServeOptions& options, const Handler& handler) {
  ThreadedServer server(options, handler);
  return server.run();
}

}  // namespace shootout
