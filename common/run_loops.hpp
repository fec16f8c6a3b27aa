#pragma once
// run_loops<Loop>(): the set-up and shutdown of the models built on event loops (evented, uring).
// Only the loop differs between them; what is around it lives here, once.
//
// Threads:
//   main      opens the listeners, then runs loop 0, which also receives the signals (a
//             signalfd: SIGTERM/SIGINT ask every loop to stop, SIGUSR1 writes the stats file)
//   loop/N    run loops 1..N-1 (--loops N), each with its own listener on the same port
//   pool/N    the helper pool (--pool-threads): blocking work, never sockets; started by the
//             first request that needs it
// So with one loop the process is one thread, like an nginx worker, until a request needs the
// pool. Loop 0 reads the signals between its callbacks: while it burns an inline /cpu, or
// after it has drained and the other loops still drain (up to --grace), a signal waits.
// Shutdown: each loop stops accepting, closes its idle connections, finishes in-flight
// responses (a /sleep timer, pool work, a long /bytes) and returns; main joins the loops, then
// the pool (which first runs the jobs still queued or running: work for a connection that went
// away meanwhile, posted to an inbox nobody reads any more), and only then frees the loops.
// If a loop ran out of --grace, the process leaves at once with status 1 (a pool thread may
// still be busy with work nobody will read).
//
// Ownership: run_loops() owns the listeners, the loops and the pool; each loop owns its inbox,
// and a pool job holds a pointer to the inbox of the loop that submitted it, so the pool is
// destroyed (its threads joined) before the loops.
//
// What a Loop provides: Loop(const ServeOptions&, const Handler&, HelperPool&, int listen_fd)
// on the main thread; run() on the thread that runs it (returns false if --grace ran out);
// request_stop() from any thread; watch(fd, callback) on the main thread before run().
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "control.hpp"
#include "handler.hpp"
#include "helper_pool.hpp"
#include "net.hpp"
#include "serve_options.hpp"
#include "stats.hpp"
#include "trace.hpp"

namespace shootout {

// One listener per loop. With --port 0 the first one picks the port and the others bind to it.
std::vector<int> open_loop_listeners(const ServeOptions& options);

// The process leaves with status 1 when a loop ran out of --grace (stats file and trace written
// first; a loop still running may tear its last events).
[[noreturn]] void leave_after_grace(const ServeOptions& options);

template <class Loop>
int run_loops(const ServeOptions& options, const Handler& handler) {
  std::vector<int> listeners = open_loop_listeners(options);
  // Declared before the pool, so destroyed after it (locals die in reverse order): a job still
  // on the pool when the loops have finished (an offloaded /cpu whose client reset) posts its
  // result to its loop's inbox, so the pool's destructor, which lets such a job run and joins
  // its threads, must have run before any loop (and its inbox) is freed.
  std::vector<std::unique_ptr<Loop>> loops;
  HelperPool pool(options.pool_threads);
  for (int fd : listeners) loops.push_back(std::make_unique<Loop>(options, handler, pool, fd));
  auto stop_all = [&loops] {
    for (auto& loop : loops) loop->request_stop();
  };
  SignalFd signals({stop_all, {}}, options.stats_file, options.model);
  loops[0]->watch(signals.fd(), [&signals] { signals.handle(); });
  std::vector<char> drained(loops.size(), 0);
  std::vector<std::thread> threads;
  try {
    for (std::size_t i = 1; i < loops.size(); ++i)
      threads.emplace_back([&, i] {
        trace::name_thread(fmt::format("loop {}", i));
        drained[i] = loops[i]->run();
      });
  } catch (const std::system_error& e) {  // the task limit: stop the loops that did start
    stop_all();
    for (auto& t : threads) t.join();
    // Loop 1 is main's: the thread that failed was for loop threads.size() + 2.
    throw std::system_error(e.code(), fmt::format("cannot start the thread of loop {} of {}",
                                                  threads.size() + 2, loops.size()));
  }
  announce_listening(options.host, local_port(listeners.front()));
  trace::name_thread("loop 0");
  drained[0] = loops[0]->run();
  for (auto& t : threads) t.join();
  for (char ok : drained)
    if (!ok) leave_after_grace(options);
  // The loops are done with their listeners; the loops themselves outlive `signals`, whose
  // on_stop refers to them (locals die in reverse order).
  for (int fd : listeners) ::close(fd);
  return 0;
}

}  // namespace shootout
