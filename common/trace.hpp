#pragma once
// The loop-trace recorder (`serve --trace FILE`): spans, flows and counters kept in memory while
// the server runs and written at exit as Chrome Trace Event JSON ({"traceEvents":[...]}), which
// ui.perfetto.dev and chrome://tracing open. docs/TRACE.md says what each model records.
//
// Off (the default), every entry point is one test of a plain bool that never changes after
// start(): a predictable branch, no clock read, no memory touched.
//
// On, each thread writes to its own ring of the last N events (--trace-events, default
// 1,000,000 per thread): no lock, no atomic read-modify-write, no allocation on the hot path. A
// ring is reserved with mmap(MAP_NORESERVE) when its thread first records or names itself, so
// its pages are only committed as they fill (80 bytes an event, 80 MB for a full default ring; N is
// rounded up to a power of two). A thread that ends hands its ring to the next thread that starts
// (the threaded model's thread per connection), so the number of rings is the peak number of live
// threads, not the number of threads ever started. Events carry their own tid, so a reused ring
// stays correct.
//
// The forked model (start(..., shared = true)) has no per-thread rings: one ring of N events in
// a MAP_SHARED mapping made before any fork, which every process writes with one atomic
// fetch_add per event; the parent writes the file once every child is reaped. A child killed
// in the middle of writing an event can leave that one event torn (it is skipped if its name is
// missing).
//
// Threads: start() on the main thread before any other thread exists (app/serve.cpp);
// name_thread() and the recording functions from any thread; write() once at the end, when no
// other thread records any more (after the models' drain and joins).
#include <cstdint>
#include <string>
#include <string_view>

namespace shootout::trace {

namespace detail {
extern bool enabled;  // written by start() before any thread exists, read-only after
}

// Predictable: false unless --trace was given.
inline bool on() { return __builtin_expect(detail::enabled, false); }

// Nanoseconds on the steady clock (CLOCK_MONOTONIC), the time base of every event.
std::int64_t now_ns();

// Turns recording on. `events`: ring size per thread (or of the one shared ring).
void start(std::string path, std::size_t events, bool shared);
// Writes the file (if start() was called). Returns false, with a line on stderr, if it cannot.
bool write();

// This thread's name in the trace (the "M" thread_name metadata; copied). Also where a thread
// takes its ring, so call it first thing in a thread that will record.
void name_thread(std::string_view name);

// A complete ("X") event. `name` and `cat` must be string literals (only the pointer is kept).
// Up to two integer args, named by literals (nullptr: no arg).
void complete(const char* name, const char* cat, std::int64_t start_ns, std::int64_t dur_ns,
              const char* a_name = nullptr, std::int64_t a = 0, const char* b_name = nullptr,
              std::int64_t b = 0);
// A flow arrow: `begin` at the start ("s"), else the end ("f", bound to the enclosing slice).
// Record it inside a span of the thread it belongs to. Ids come from new_flow_id().
void flow(bool begin, std::uint64_t id);
std::uint64_t new_flow_id();  // unique per process (thread id and a per-thread count)
// The id of the arrow back from a job whose arrow in was `id`.
constexpr std::uint64_t return_flow(std::uint64_t id) { return id ^ (std::uint64_t{1} << 63); }
// A counter ("C") sample, drawn as a track: e.g. live connections.
void counter(const char* name, std::int64_t value);

// A scoped span: records [construction, destruction) as one "X" event when tracing is on.
class Span {
 public:
  explicit Span(const char* name, const char* cat = "phase")
      : name_(name), cat_(cat), start_(on() ? now_ns() : 0) {}
  ~Span() {
    if (start_) complete(name_, cat_, start_, now_ns() - start_, a_name_, a_, b_name_, b_);
  }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;
  void arg(const char* name, std::int64_t v) {
    if (!a_name_ || a_name_ == name) {
      a_name_ = name;
      a_ = v;
    } else {
      b_name_ = name;
      b_ = v;
    }
  }
  bool recording() const { return start_ != 0; }

 private:
  const char* name_;
  const char* cat_;
  std::int64_t start_;
  const char* a_name_ = nullptr;
  const char* b_name_ = nullptr;
  std::int64_t a_ = 0, b_ = 0;
};

// One named phase of a loop iteration: `f` run inside a span of that name (when recording);
// returns what `f` returns. Keeps a loop's run_once() one line per phase.
template <class F>
decltype(auto) phase(const char* name, F&& f) {
  Span span(name);
  return f();
}

}  // namespace shootout::trace
