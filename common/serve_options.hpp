#pragma once
// Every flag of `shootout serve`, for every model. Parsed once by app/serve.cpp on the main
// thread, then read-only: any thread may read it.
#include <chrono>
#include <cstdint>
#include <string>

#include "handler.hpp"

namespace shootout {

struct ServeOptions {
  // common to every model
  std::string model = "threaded";
  std::string handler = "http";
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0 picks a free port; the `listening on` line tells which
  int backlog = 4096;
  std::string stats_file;  // on SIGUSR1 (and at exit) the server writes its stats here
  std::chrono::milliseconds request_timeout{10'000};  // a started request must complete (slowloris)
  std::chrono::milliseconds idle_timeout{120'000};    // keep-alive connection with no request
  std::chrono::milliseconds grace{10'000};            // SIGTERM: bound on finishing in-flight work
  // evented, coroutine, uring: > 1 makes serve a master forking N worker processes, each
  // running the model on its own SO_REUSEPORT listener(s) (common/workers.hpp); 1: no master
  int workers = 1;
  HandlerConfig handler_config;
  std::string trace_file;                // --trace: Chrome Trace Event JSON written at exit
  std::size_t trace_events = 1'000'000;  // ring of the last N events per thread (forked: in all)

  // threaded
  std::size_t stack_size = 0;  // bytes; 0 = the model's default (system's for threads,
                               // 64 KiB for fibers)
  int max_threads = 10'000;    // thread per connection: live threads cap (backlog past it)
  int pool = 0;                // > 0: fixed pool of N threads (Apache's worker MPM)

  // forked
  int prefork = 0;         // > 0: N pre-forked processes (Apache's prefork MPM)
  int max_procs = 10'000;  // process per connection: live children cap
  bool no_reap = false;    // leave finished children unreaped (zombies), up to max_zombies
  int max_zombies = 64;    // --no-reap: past this many zombies the server stops accepting

  // evented
  std::string poller = "epoll";          // epoll | poll | select
  int pool_threads = 4;                  // helper pool for /file (and /cpu with offload_cpu)
  bool offload_cpu = false;              // run /cpu on the helper pool instead of the loop
  int loops = 1;                         // N loops on N threads, SO_REUSEPORT listeners
  std::size_t max_output = 64ull << 20;  // queued output cap per connection before closing it

  // coroutine
  int threads = 1;                  // N fiber schedulers on N threads, SO_REUSEPORT listeners
  std::string stack = "protected";  // protected | fixed | pooled
};

}  // namespace shootout
