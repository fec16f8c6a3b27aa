// What `serve --trace` costs the loops (common/trace.hpp):
//   trace_span_off    a trace::Span built and destroyed while tracing is off: the price every
//                     phase and dispatch of every loop pays in a normal run
//   trace_span_on     the same span recorded: two clock reads and one 80-byte ring slot
//   trace_iteration_on  an evented iteration's worth of spans (the iteration, 7 phases, the
//                     kernel wait, one dispatch: 10 spans); ns_per_op is the whole iteration
// The recorder is started once, writing nowhere until exit (the file is /dev/null), on a ring
// of 65,536 events that wraps, so the numbers are the steady state, not first-touch page faults.
#include <benchmark/benchmark.h>

#include "bench_util.hpp"
#include "trace.hpp"

namespace shootout::bench {

namespace {

void ensure_recorder() {
  static bool started = [] {
    trace::start("/dev/null", 1 << 16, false);
    trace::detail::enabled = false;  // each benchmark below turns it on for itself only
    return true;
  }();
  (void)started;
}

void trace_span_off(benchmark::State& state) {
  ensure_recorder();
  for (auto _ : state) {
    trace::Span span("phase", "phase");
    benchmark::DoNotOptimize(&span);
  }
  state.SetItemsProcessed(state.iterations());
}

void trace_span_on(benchmark::State& state) {
  ensure_recorder();
  trace::detail::enabled = true;
  for (auto _ : state) {
    trace::Span span("phase", "phase");
    benchmark::DoNotOptimize(&span);
  }
  trace::detail::enabled = false;
  state.SetItemsProcessed(state.iterations());
}

void iteration_spans() {
  trace::Span iteration("iteration", "loop");
  for (const char* name : {"update_time", "timers", "pending", "prepare"}) {
    trace::Span phase(name);
    benchmark::DoNotOptimize(&phase);
  }
  {
    trace::Span poll("poll");
    { trace::Span wait("wait", "kernel"); }
    poll.arg("timeout_ms", 0);
    poll.arg("events", 1);
    trace::Span dispatch("io", "dispatch");
    dispatch.arg("fd", 7);
  }
  for (const char* name : {"check", "close"}) {
    trace::Span phase(name);
    benchmark::DoNotOptimize(&phase);
  }
}

void trace_iteration_off(benchmark::State& state) {
  ensure_recorder();
  for (auto _ : state) iteration_spans();
}

void trace_iteration_on(benchmark::State& state) {
  ensure_recorder();
  trace::detail::enabled = true;
  for (auto _ : state) iteration_spans();
  trace::detail::enabled = false;
}

}  // namespace

void register_trace_benchmarks(const Preset& preset) {
  add(preset, "trace_span_off", trace_span_off);
  add(preset, "trace_span_on", trace_span_on);
  add(preset, "trace_iteration_off", trace_iteration_off);
  add(preset, "trace_iteration_on", trace_iteration_on);
}

}  // namespace shootout::bench
