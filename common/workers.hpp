#pragma once
// `serve --workers N`: nginx's master and worker processes, for the models whose one process
// serves many connections (evented, coroutine, uring). One process may hold only RLIMIT_NOFILE
// descriptors (20,000 here, a hard limit root cannot raise), so 100,000 connections need several
// processes; the thread and process models meet pid_max (32,768 here) and memory long before a
// process's descriptors (docs/EVENTED.md, "--workers N").
//
// Processes:
//   master  the process `shootout serve` started, and single-threaded. It binds the port
//           (SO_REUSEPORT, not listening: it accepts nothing, but the port stays the server's
//           across worker restarts and --port 0 learns it here), forks the N workers, prints the
//           one `listening on HOST:PORT` line once every worker listens, and from then on only
//           waits in poll(2) on a signalfd (the server's signals, common/control.hpp) and the
//           workers' readiness pipe:
//             SIGCHLD     reaps. A worker that died while the server is not stopping is started
//                         again: at once if it had run 10 s, else after a back-off that doubles
//                         from 100 ms to 10 s, so a worker that dies at once is not a fork loop;
//                         a line on stderr each time. A fork that fails is logged, counted in
//                         counters().errors and tried again after the same back-off.
//             SIGTERM/INT forwarded as SIGTERM to every worker, which drains as the model does
//                         alone; the master waits up to --grace plus 5 s, SIGKILLs what is left,
//                         reaps every worker, and exits 0 only if all of them exited 0. A second
//                         one exits at once with status 1 (and the workers die with it, below).
//             SIGUSR1     writes --stats-file: the shared counters (common/stats.hpp: every
//                         worker adds to the same page) and getrusage, self = the master and
//                         children = every reaped worker. The load generator's sampler adds the
//                         live workers from /proc (the master is the root of the tree it reads).
//                         Written at exit too, after the last worker is reaped: then it holds all.
//   worker  a child of the master: PR_SET_PDEATHSIG SIGKILL (checked with getppid after it: no
//           worker outlives a killed master), its own process group (a terminal's Ctrl-C reaches
//           the master only, which forwards it once; a second stop signal would make a worker
//           leave at once), then `run_worker` with the master's options but the port learned and
//           no stats file: the model exactly as without --workers (its loops or threads, helper
//           pool, timers, --grace) on its own SO_REUSEPORT listener(s). It announces itself
//           through the pipe (net.hpp's announce_to_master) and leaves with _exit(its status).
// A worker that ends before the server printed `listening on` (a usage error the model found
// late, a failed bind) stops the server: the master exits with that worker's status (1 if it was
// killed or exited 0). After that, a worker that ends is restarted, as above.
#include <functional>

#include "serve_options.hpp"

namespace shootout {

// The master. Call on the main thread of `shootout serve`, with the server's signals blocked
// (block_server_signals), counters() mapped, and no other thread in the process (fork copies only
// the calling thread, and PR_SET_PDEATHSIG fires when the forking thread ends). `run_worker`
// runs in each worker process on its only thread and returns its exit status. Returns the
// master's exit status; throws std::system_error if the port cannot be bound (or no pipe made).
int run_workers(const ServeOptions& options,
                const std::function<int(const ServeOptions&)>& run_worker);

}  // namespace shootout
