#include "loop_core.hpp"

#include "log.hpp"
#include "trace.hpp"

namespace shootout {

namespace {

constexpr std::uint64_t kLogEveryRefusal = 1000;  // pool refusals: one logged in this many

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

LoopTimers::LoopTimers(const ServeOptions& options)
    : epoch_ns_(steady_ns()), idle_(options.idle_timeout), request_(options.request_timeout) {}

std::int64_t LoopTimers::read_clock() {
  std::int64_t ns = steady_ns() - epoch_ns_;
  now_ = ns / 1'000'000;
  return ns;
}

std::optional<std::int64_t> LoopTimers::next_due() {
  std::optional<std::int64_t> due = heap_.next_due();
  for (const DeadlineList* list : {&idle_, &request_})
    if (auto d = list->next_due(); d && (!due || *d < *due)) due = d;
  return due;
}

void LoopTimers::arm(DeadlineLink& c, bool output_waiting, bool reading, bool mid_request) {
  if (output_waiting)
    idle_.arm(c, now_);
  else if (!reading)
    DeadlineList::disarm(c);
  else if (!mid_request)
    idle_.arm(c, now_);
  else if (c.owner != &request_)
    request_.arm(c, now_);
}

bool LoopWork::start(const Work& w, int fd, std::uint32_t gen, LoopTimers& timers,
                     std::function<void()> slept) {
  if (w.kind == Work::Kind::cpu && !offload_cpu_) return false;
  if (w.kind == Work::Kind::sleep) {
    // The due time comes from a fresh reading of the clock, rounded up to the heap's
    // millisecond: from now(), which is rounded down and may date from the start of the batch,
    // the timer fired up to that much before its time (a 20 ms /sleep answered in 19.09 ms).
    // The timer fires once now() (rounded down) reaches it, so never before the request's
    // amount has passed since this call.
    std::int64_t due_ns = timers.read_clock() + std::chrono::nanoseconds(w.amount).count();
    if (trace::on())
      slept = [inner = std::move(slept)] {
        trace::Span span("sleep over", "dispatch");
        inner();
      };
    timers.add((due_ns + 999'999) / 1'000'000, std::move(slept));
    return true;
  }
  try {
    std::uint64_t flow = 0;
    if (trace::on()) {
      flow = trace::new_flow_id();
      trace::flow(true, flow);
    }
    pool_.submit({w, &inbox_, fd, gen, flow});
    return true;
  } catch (const std::system_error& e) {
    if (refusals_++ % kLogEveryRefusal == 0)  // the first, then one in kLogEveryRefusal
      log_line("{}; running the work on the loop instead (refusal {}; one in {} is logged)",
               e.what(), refusals_, kLogEveryRefusal);
    return false;
  }
}

}  // namespace shootout
