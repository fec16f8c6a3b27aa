// The handler's own cost per request: parsing and answering, no socket, no model.
//   handler_http/batch:1       `GET / HTTP/1.1` + Host fed to one keep-alive session, one
//                              request per on_input() call
//   handler_http/batch:16      16 pipelined requests in one on_input() call
//   handler_http_new_session   a fresh session per request (what a new connection adds)
//   handler_echo/batch:B       the same bytes through the echo handler (a copy, no parsing)
// ns_per_op is one request. Beside the time, items_per_second is requests per second of one
// core: the ceiling no model can beat with this handler. Timed on the thread's CPU clock.
#include <string>

#include "bench_util.hpp"
#include "handler.hpp"

namespace shootout::bench {

namespace {

constexpr std::string_view kRequest = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

std::string batch_of(std::size_t n) {
  std::string in;
  for (std::size_t i = 0; i < n; ++i) in += kRequest;
  return in;
}

std::size_t count_of(std::string_view text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

void finish(benchmark::State& state, Clock::duration total, std::size_t per_iteration) {
  const double requests = static_cast<double>(state.iterations() * per_iteration);
  state.SetItemsProcessed(static_cast<std::int64_t>(requests));
  report_per_op(state, total, requests);
}

void handler_http(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  auto handler = make_handler("http", HandlerConfig{});
  if (!handler) return state.SkipWithError("no http handler");
  auto session = handler->new_session();
  const std::string in = batch_of(batch);
  std::string out;
  // Once outside the clock: the session must answer every request with 200 and keep reading.
  if (session->on_input(in, out) != Next::read || count_of(out, "HTTP/1.1 200") != batch)
    return state.SkipWithError("the http session did not answer 200 to every request");
  auto t0 = thread_cpu_now();
  for (auto _ : state) {
    out.clear();
    Next next = session->on_input(in, out);
    benchmark::DoNotOptimize(next);
    benchmark::DoNotOptimize(out.data());
  }
  finish(state, thread_cpu_now() - t0, batch);
}

void handler_http_new_session(benchmark::State& state) {
  auto handler = make_handler("http", HandlerConfig{});
  if (!handler) return state.SkipWithError("no http handler");
  std::string out;
  auto t0 = thread_cpu_now();
  for (auto _ : state) {
    out.clear();
    auto session = handler->new_session();
    Next next = session->on_input(kRequest, out);
    benchmark::DoNotOptimize(next);
    benchmark::DoNotOptimize(out.data());
  }
  finish(state, thread_cpu_now() - t0, 1);
}

void handler_echo(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  auto handler = make_handler("echo", HandlerConfig{});
  if (!handler) return state.SkipWithError("no echo handler");
  auto session = handler->new_session();
  const std::string in = batch_of(batch);
  std::string out;
  auto t0 = thread_cpu_now();
  for (auto _ : state) {
    out.clear();
    Next next = session->on_input(in, out);
    benchmark::DoNotOptimize(next);
    benchmark::DoNotOptimize(out.data());
  }
  finish(state, thread_cpu_now() - t0, batch);
}

}  // namespace

void register_handler_benchmarks(const Preset& preset) {
  add(preset, "handler_http", handler_http)->ArgName("batch")->Arg(1)->Arg(16);
  add(preset, "handler_http_new_session", handler_http_new_session);
  add(preset, "handler_echo", handler_echo)->ArgName("batch")->Arg(1)->Arg(16);
}

}  // namespace shootout::bench
