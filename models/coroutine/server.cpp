// The coroutine model. One flow of control per connection, and that flow is a Boost.Fiber: the
// code is the threaded model's blocking loop, but a "blocked" fiber is a parked user-space
// context, a switch costs tens of nanoseconds instead of a trip through the kernel's scheduler,
// and each connection costs only the stack pages it touched. Fibers are not preempted: one that
// computes (inline /cpu) starves every other fiber of its thread until it is done.
//
// Threads:
//   main      opens the listeners, starts the schedulers, joins them
//   sched/N   one fiber scheduler each (ReactorScheduler over its own Reactor), running:
//               acceptor  accept4 until EAGAIN, then parks on the listener's readability
//               conn      one fiber per connection: serve_connection() over FiberSocketIo
//   pool/N    (--offload-cpu) helper threads for /cpu and /file
//   control   sigwait; on SIGTERM/SIGINT calls stop()
// Shutdown: stop() asks every reactor to stop (through its eventfd). Each scheduler's next poll
// wakes its parked readers: the acceptor leaves, idle connections close, and fibers busy with a
// response finish it. Each scheduler thread then waits up to --grace for its last fiber.
#include "server.hpp"

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/fixedsize_stack.hpp>
#include <boost/fiber/mutex.hpp>
#include <boost/fiber/operations.hpp>
#include <boost/fiber/pooled_fixedsize_stack.hpp>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "accept.hpp"
#include "control.hpp"
#include "fiber_launch.hpp"
#include "fiber_socket_io.hpp"
#include "log.hpp"
#include "net.hpp"
#include "reactor.hpp"
#include "reactor_scheduler.hpp"
#include "serve_connection.hpp"
#include "session_stack.hpp"
#include "stack_cache.hpp"
#include "stats.hpp"
#include "trace.hpp"
#include "work_pool.hpp"

namespace shootout {

namespace {

constexpr std::size_t kDefaultStack = 64 * 1024;
constexpr std::size_t kMinStack = 16 * 1024;  // below this the handler itself may overflow
constexpr std::size_t kMaxStack = 64 << 20;

StackAllocator make_stack_allocator(const std::string& kind, std::size_t size, StackCache& cache) {
  if (kind == "fixed") return boost::fibers::fixedsize_stack(size);
  if (kind == "pooled") return boost::fibers::pooled_fixedsize_stack(size);
  return ProtectedStack(cache);
}

// One scheduler thread with its reactor, its listener and its fibers. Everything but start(),
// join() and stop() runs on that thread.
class Scheduler {
 public:
  // Owns listen_fd (non-blocking) from here on.
  Scheduler(const ServeOptions& options, const Handler& handler, int listen_fd, WorkPool* pool,
            std::size_t stack_size)
      : options_(options),
        handler_(handler),
        listen_fd_(listen_fd),
        pool_(pool),
        stack_cache_(stack_size),
        stacks_(make_stack_allocator(options.stack, stack_size, stack_cache_)),
        session_stack_(stack_size) {}
  ~Scheduler() {
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void start() {
    thread_ = std::thread([this] { run(); });
  }  // throws std::system_error
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  void stop() { reactor_.request_stop(); }  // any thread

 private:
  void run() {
    trace::name_thread("sched");
    reactor_.bind_to_this_thread();
    boost::fibers::use_scheduling_algorithm<ReactorScheduler>(reactor_);
    boost::fibers::fiber acceptor = launch_fiber([this] { accept_loop(); });
    acceptor.join();  // returns once stop() has been seen
    reactor_.forget(listen_fd_);
    ::close(listen_fd_);  // connections still in the backlog are refused
    listen_fd_ = -1;
    wait_for_connections();
  }

  // The acceptor fiber: takes every pending connection, then parks until the next. Starved, it
  // sleeps the back-off as a fiber, so the thread serves its connections meanwhile and frees
  // descriptors.
  void accept_loop() {
    while (!reactor_.stopping()) {
      const Accepted a =
          accept_connection(listen_fd_, SOCK_NONBLOCK | SOCK_CLOEXEC, accept_backoff_);
      if (a.fd >= 0) {
        start_connection(a.fd);
      } else if (a.failure == AcceptFailure::starved) {
        boost::this_fiber::sleep_for(accept_backoff_.next_wait(a.err));
      } else if (a.failure == AcceptFailure::drained &&
                 !reactor_.wait(listen_fd_, kReadable, FiberClock::time_point::max())) {
        // The reactor could not watch the listener (no memory): try again after a back-off.
        boost::this_fiber::sleep_for(accept_backoff_.next_wait(ENOMEM));
      } else if (a.failure == AcceptFailure::shut) {
        return;
      }
    }
  }

  // Acceptor fiber: a detached fiber per connection, on a stack from --stack. It is only
  // queued here; it runs when the acceptor parks.
  void start_connection(int fd) {
    ++live_;
    try {
      launch_detached_fiber(stacks_, [this, fd] { serve(fd); });
    } catch (const std::exception& e) {  // no memory for a stack
      refuse_connection("cannot create a fiber", e.what());
      ::close(fd);
      finished_one();
    }
  }

  // The connection's fiber: owns fd from here on and closes it.
  void serve(int fd) noexcept {
    serve_accepted(fd, handler_, [&](Session& session) {
      OffStackSession off_stack(session, session_stack_);  // the parser's deep frames
      FiberSocketIo io(fd, reactor_, pool_, options_.idle_timeout);
      serve_connection(off_stack, io, options_);
    });
    reactor_.forget(fd);
    ::close(fd);
    finished_one();
  }

  void finished_one() {
    std::lock_guard lock(mu_);
    if (--live_ == 0) drained_.notify_all();
  }

  // Main fiber, after stop(): waits up to --grace for the connection fibers to finish.
  void wait_for_connections() {
    std::unique_lock lock(mu_);
    const auto deadline = FiberClock::now() + options_.grace;
    if (drained_.wait_until(lock, deadline, [&] { return live_ == 0; })) return;
    // Parked fibers still use this object and their stacks: leave without unwinding them.
    exit_after_grace(options_.stats_file, options_.model, static_cast<std::size_t>(live_),
                     options_.grace);
  }

  const ServeOptions& options_;
  const Handler& handler_;
  int listen_fd_;
  AcceptBackoff accept_backoff_;  // the acceptor fiber's
  WorkPool* pool_;
  StackCache stack_cache_;  // before stacks_: ProtectedStack points into it
  StackAllocator stacks_;
  SessionStack session_stack_;  // every Session call of this thread runs on it
  Reactor reactor_;
  boost::fibers::mutex mu_;                    // fibers of this thread only: pairs with drained_
  boost::fibers::condition_variable drained_;  // live_ reached 0
  int live_ = 0;                               // connection fibers alive
  std::thread thread_;
};

class CoroutineServer {
 public:
  CoroutineServer(const ServeOptions& options, const Handler& handler)
      : options_(options), handler_(handler) {}

  int run() {
    const std::size_t stack = options_.stack_size ? options_.stack_size : kDefaultStack;
    if (stack < kMinStack || stack > kMaxStack) {
      fmt::print(stderr, "shootout serve: --stack-size must be between {} and {} bytes\n",
                 kMinStack, kMaxStack);
      return 2;
    }
    std::unique_ptr<WorkPool> pool;
    if (options_.offload_cpu) pool = std::make_unique<WorkPool>(options_.pool_threads);
    const std::uint16_t port = open_schedulers(pool.get(), stack);
    SignalControl control({[this] { stop(); }, {}}, options_.stats_file, options_.model);
    if (!start_schedulers()) return 1;
    announce_listening(options_.host, port);
    for (auto& s : schedulers_) s->join();
    return 0;
  }

 private:
  // Main thread, set-up: one listener per scheduler. With --port 0 the first picks the port and
  // the others bind to the same one (SO_REUSEPORT: the kernel spreads connections over them).
  std::uint16_t open_schedulers(WorkPool* pool, std::size_t stack) {
    // --workers: the master and the other workers hold the same port (SO_REUSEPORT as well).
    ListenSpec spec{options_.host, options_.port, options_.backlog,
                    options_.threads > 1 || options_.workers > 1, true};
    for (int i = 0; i < options_.threads; ++i) {
      int fd = open_listener(spec);
      spec.port = local_port(fd);
      schedulers_.push_back(std::make_unique<Scheduler>(options_, handler_, fd, pool, stack));
    }
    return spec.port;
  }

  bool start_schedulers() {
    for (std::size_t i = 0; i < schedulers_.size(); ++i) {
      try {
        schedulers_[i]->start();
      } catch (const std::system_error& e) {
        log_line("cannot start scheduler thread {} of {}: {}", i + 1, schedulers_.size(), e.what());
        stop();
        for (auto& s : schedulers_) s->join();
        return false;
      }
    }
    return true;
  }

  // Control thread.
  void stop() {
    for (auto& s : schedulers_) s->stop();
  }

  const ServeOptions& options_;
  const Handler& handler_;
  std::vector<std::unique_ptr<Scheduler>> schedulers_;
};

}  // namespace

int run_coroutine(const ServeOptions& options, const Handler& handler) {
  CoroutineServer server(options, handler);
  return server.run();
}

}  // namespace shootout
