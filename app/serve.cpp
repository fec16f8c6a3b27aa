// `shootout serve`: parse the flags, build the handler, run the chosen model.
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

#include "command.hpp"
#include "control.hpp"
#include "models.hpp"
#include "plugin_flags.hpp"
#include "serve_options.hpp"
#include "stats.hpp"
#include "trace.hpp"
#include "workers.hpp"

namespace shootout {

namespace {

struct ServeFlags {
  ServeOptions o;
  bool check = false;
  long long request_timeout_ms = 10'000, idle_timeout_ms = 120'000, grace_ms = 10'000;
};

int serve(ServeFlags& f) {
  ServeOptions& o = f.o;
  o.request_timeout = std::chrono::milliseconds(f.request_timeout_ms);
  o.idle_timeout = std::chrono::milliseconds(f.idle_timeout_ms);
  o.grace = std::chrono::milliseconds(f.grace_ms);
  if (!o.handler_config.file_root.empty())
    o.handler_config.file_root = std::filesystem::canonical(o.handler_config.file_root).string();
  const Model* model = find_model(o.model);
  if (f.check) {  // exit 0 if the model can run here, else say why and exit 2
    std::string why = model->unavailable ? model->unavailable() : std::string{};
    if (why.empty()) return 0;
    fmt::print(stderr, "shootout serve: --model {} cannot run here: {}\n", o.model, why);
    return 2;
  }
  block_server_signals();  // before any thread exists, so the control thread gets them all
  counters();              // map the shared counters before any fork
  auto handler = make_handler(o.handler, o.handler_config);
  const bool workers = o.workers > 1;
  if (!o.trace_file.empty()) {
    // Fail now, not after a whole run: the file is written only at exit.
    if (std::FILE* probe = std::fopen(o.trace_file.c_str(), "w")) {
      std::fclose(probe);
      if (workers) std::remove(o.trace_file.c_str());  // each worker writes FILE.PID instead
    } else {
      fmt::print(stderr, "shootout serve: --trace {}: {}\n", o.trace_file, std::strerror(errno));
      return 2;
    }
    // Before any thread or child exists: the forked model's ring is shared memory its children
    // inherit (common/trace.hpp). With --workers, each worker starts its own (below).
    if (!workers) trace::start(o.trace_file, o.trace_events, o.model == "forked");
  }
  // One process running the model: this one, or (--workers) each worker.
  auto run_model = [&](const ServeOptions& options) {
    if (workers && !options.trace_file.empty())
      trace::start(fmt::format("{}.{}", options.trace_file, ::getpid()), options.trace_events,
                   false);
    int status;
    try {
      status = model->run(options, *handler);
    } catch (const std::system_error& e) {
      fmt::print(stderr, "shootout serve: {}\n", e.what());
      status = 1;
    }
    // After the drain: every thread has been joined and every child reaped.
    if (!trace::write() && status == 0) status = 1;
    return status;
  };
  if (!workers) return run_model(o);
  // The master forks the workers: say now, once, if the model cannot run here at all.
  if (std::string why = model->unavailable ? model->unavailable() : std::string{}; !why.empty()) {
    fmt::print(stderr, "shootout serve: --model {} cannot run here: {}\n", o.model, why);
    return 2;
  }
  try {
    return run_workers(o, run_model);
  } catch (const std::system_error& e) {
    fmt::print(stderr, "shootout serve: {}\n", e.what());
    return 1;
  }
}

}  // namespace

Command add_serve_command(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  ServeOptions& o = flags->o;
  auto* sub = app.add_subcommand("serve", "Run one handler under one concurrency model");
  std::vector<std::string> model_names;
  for (const auto& m : models()) model_names.emplace_back(m.name);

  sub->add_option("--model", o.model, "Concurrency model")
      ->check(CLI::IsMember(model_names))
      ->capture_default_str();
  sub->add_flag("--check", flags->check,
                "Only check that --model can run on this machine: exit 0, or say why not and "
                "exit 2 (io_uring may be disabled)");
  add_handler_lib_option(*sub);  // before --handler: a plug-in's names are checked by it
  sub->add_option("--handler", o.handler, "Protocol handler")
      ->check(registered_check("handler", [] { return handler_names(); }))
      ->capture_default_str();
  sub->add_option("--host", o.host, "IPv4 address to listen on")->capture_default_str();
  sub->add_option("--port", o.port, "TCP port (0 picks a free one)")->capture_default_str();
  sub->add_option("--backlog", o.backlog, "listen(2) backlog")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--stats-file", o.stats_file,
                  "Write counters and getrusage (self and children) here on SIGUSR1 and at exit");
  sub->add_option("--request-timeout", flags->request_timeout_ms,
                  "ms for a started request to arrive in full (slowloris)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--idle-timeout", flags->idle_timeout_ms,
                  "ms an idle keep-alive connection is kept")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--trace", o.trace_file,
                  "Record loop iterations, phases, callbacks and pool hand-offs; write them at "
                  "exit to this file as Chrome Trace Event JSON (docs/TRACE.md)");
  sub->add_option("--trace-events", o.trace_events,
                  "--trace keeps the last N events per thread (forked: N in all)")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30))
      ->capture_default_str();
  sub->add_option("--grace", flags->grace_ms, "ms allowed to finish in-flight work at SIGTERM")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--workers", o.workers,
                  "evented, coroutine, uring: N worker processes, each running the model on its "
                  "own SO_REUSEPORT listener, under a master that restarts a worker that dies and "
                  "forwards SIGTERM (nginx's worker_processes; past one process's descriptors). "
                  "--trace then writes FILE.PID per worker")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();

  auto& h = o.handler_config;
  sub->add_option("--header-limit", h.header_limit,
                  "Bytes of request line and headers, and of each chunk-size line and the "
                  "trailer of a chunked body (past it: 414 if the request line is not "
                  "complete, 413 a chunk-size line, else 431)")
      ->check(CLI::Range(256, 1 << 20))
      ->capture_default_str();
  sub->add_option("--body-limit", h.body_limit, "Bytes of request body (413)")
      ->capture_default_str();
  sub->add_option("--root", h.file_root, "Directory served by GET /file?name=F")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--max-bytes", h.max_bytes, "Largest n of GET /bytes?n=N")->capture_default_str();
  sub->add_option("--max-file", h.max_file, "Largest file GET /file will send")
      ->capture_default_str();

  auto* g = sub->add_option_group("threaded", "--model threaded");
  g->add_option("--stack-size", o.stack_size,
                "Bytes of stack per thread or fiber (0: system default for threads, 64 KiB for "
                "fibers)")
      ->capture_default_str();
  g->add_option("--max-threads", o.max_threads,
                "Live connection threads; more connections wait in the backlog")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  g->add_option("--pool", o.pool, "Fixed pool of N threads, one connection each at a time")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  g = sub->add_option_group("forked", "--model forked");
  g->add_option("--prefork", o.prefork, "N pre-forked processes (0: a process per connection)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  g->add_option("--max-procs", o.max_procs, "Live children; more connections wait in the backlog")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  auto* no_reap =
      g->add_flag("--no-reap", o.no_reap,
                  "Teaching: leave finished children unreaped (<defunct> in ps) until SIGTERM; "
                  "accepting stops at --max-zombies");
  auto* max_zombies =
      g->add_option("--max-zombies", o.max_zombies,
                    "--no-reap: unreaped children at which the server stops accepting (bounded so "
                    "it never nears pid_max)")
          ->check(CLI::Range(1, 4096))
          ->capture_default_str();

  g = sub->add_option_group("evented", "--model evented and --model uring (but --poller)");
  auto* poller = g->add_option("--poller", o.poller, "Readiness backend (not for --model uring)")
                     ->check(CLI::IsMember({"epoll", "poll", "select"}))
                     ->capture_default_str();
  // uring takes completions from io_uring, not readiness: a --poller given to it would be
  // silently meaningless, so it is a usage error (main prints the usage, exit 2).
  sub->parse_complete_callback([flags, poller, no_reap, max_zombies] {
    if (flags->o.model == "uring" && poller->count() > 0)
      throw CLI::ValidationError(
          "--poller", "--model uring has no readiness backend (--poller is for --model evented)");
    // Zombies are a process model's: elsewhere the flags would be silently meaningless.
    if (flags->o.model != "forked" && (no_reap->count() > 0 || max_zombies->count() > 0))
      throw CLI::ValidationError("--no-reap", "--no-reap and --max-zombies are for --model forked");
    // A process or a thread per connection meets pid_max and memory long before one process's
    // descriptors: more processes of them would only hide that (docs/EVENTED.md).
    if (flags->o.workers > 1 && (flags->o.model == "threaded" || flags->o.model == "forked"))
      throw CLI::ValidationError(
          "--workers",
          fmt::format("--workers is for evented, coroutine and uring, whose one process serves "
                      "many connections; --model {} runs a {} per connection, which meets pid_max "
                      "and memory before one process's descriptor limit",
                      flags->o.model, flags->o.model == "forked" ? "process" : "thread"));
  });
  g->add_option("--pool-threads", o.pool_threads, "Helper threads for blocking work")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  g->add_flag("--offload-cpu", o.offload_cpu, "Run /cpu on the helper pool, not on the loop");
  g->add_option("--loops", o.loops, "Event loops, one thread each (SO_REUSEPORT)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  g->add_option("--max-output", o.max_output,
                "Bytes of queued output before a connection is closed")
      ->capture_default_str();

  g = sub->add_option_group("coroutine", "--model coroutine");
  g->add_option("--threads", o.threads, "Fiber schedulers, one thread each (SO_REUSEPORT)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  g->add_option("--stack", o.stack, "Fiber stack allocator")
      ->check(CLI::IsMember({"protected", "fixed", "pooled"}))
      ->capture_default_str();

  return {sub, [flags] { return serve(*flags); }};
}

}  // namespace shootout
