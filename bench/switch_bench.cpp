// Context switch: the cost of handing the CPU from one flow of control to another.
//
// Each benchmark ping-pongs between two parties; one iteration is a round trip, i.e. two
// one-way switches, and ns_per_op is the time of ONE one-way switch.
//   switch_thread_pipe/same_cpu:1   two kernel threads, 1 byte over two pipes, pinned to one
//                                   CPU so every hand-over is a real context switch
//   switch_thread_pipe/same_cpu:0   the same, unpinned: on 2 cores it is mostly a cross-core
//                                   wake-up (the partner sleeps on another core)
//   switch_thread_futex/...         the same hand-over with a bare futex word (no pipe)
//   switch_fiber_condvar            two Boost.Fibers on one thread, fiber mutex + condition
//   switch_fiber_yield              two Boost.Fibers on one thread, this_fiber::yield()
//   switch_context_fiber            a bare boost::context::fiber resume, no scheduler at all
// Threads are timed on the wall clock (they sleep), and cpu_ns_per_op adds up the CPU time of
// both threads per switch, which the slices of other processes on a busy machine do not inflate;
// fibers and the context jump, which never leave the thread, on the thread's CPU clock, so other
// processes' time slices do not count.
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <boost/context/fiber.hpp>
#include <boost/fiber/all.hpp>
#include <mutex>
#include <optional>
#include <thread>

#include "bench_util.hpp"

namespace shootout::bench {

namespace {

// --- two threads over two pipes --------------------------------------------------------------

void switch_thread_pipe(benchmark::State& state) {
  const bool same_cpu = state.range(0) != 0;
  int ping[2], pong[2];
  if (pipe2(ping, O_CLOEXEC) != 0) return state.SkipWithError("pipe failed");
  if (pipe2(pong, O_CLOEXEC) != 0) {
    close(ping[0]);
    close(ping[1]);
    return state.SkipWithError("pipe failed");
  }
  const int cpu = sched_getcpu();
  std::optional<PinToCpu> pin;
  if (same_cpu) pin.emplace(cpu);
  std::chrono::nanoseconds partner_cpu{0};  // written by the partner, read after join()
  // The partner answers every byte until the ping pipe closes.
  std::thread partner([&] {
    std::optional<PinToCpu> partner_pin;
    if (same_cpu) partner_pin.emplace(cpu);
    auto c0 = thread_cpu_now();
    while (read_byte(ping[0]) && write_byte(pong[1])) {
    }
    partner_cpu = thread_cpu_now() - c0;
  });
  auto t0 = Clock::now();
  auto cpu0 = thread_cpu_now();
  for (auto _ : state) {
    if (!write_byte(ping[1]) || !read_byte(pong[0])) {
      state.SkipWithError("pipe I/O failed");
      break;
    }
  }
  auto total = Clock::now() - t0;
  auto our_cpu = thread_cpu_now() - cpu0;
  close(ping[1]);
  partner.join();
  close(ping[0]);
  close(pong[0]);
  close(pong[1]);
  report_per_op(state, total, 2.0 * static_cast<double>(state.iterations()));
  report_cpu_per_op(state, our_cpu + partner_cpu, 2.0 * static_cast<double>(state.iterations()));
}

// --- two threads over a futex word -----------------------------------------------------------

// The word says whose turn it is: 1 = the partner's, 0 = the benchmark thread's, 2 = stop.
void futex_wait(int* word, int expected) {
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void futex_wake(int* word) { syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0); }

void futex_partner(int* word) {
  std::atomic_ref<int> turn(*word);
  for (;;) {
    int v;
    while ((v = turn.load(std::memory_order_acquire)) == 0) futex_wait(word, 0);
    if (v == 2) return;
    turn.store(0, std::memory_order_release);
    futex_wake(word);
  }
}

void switch_thread_futex(benchmark::State& state) {
  const bool same_cpu = state.range(0) != 0;
  alignas(64) int word = 0;
  std::atomic_ref<int> turn(word);
  const int cpu = sched_getcpu();
  std::chrono::nanoseconds partner_cpu{0};  // written by the partner, read after join()
  std::optional<PinToCpu> pin;
  if (same_cpu) pin.emplace(cpu);
  std::thread partner([&] {
    std::optional<PinToCpu> partner_pin;
    if (same_cpu) partner_pin.emplace(cpu);
    auto c0 = thread_cpu_now();
    futex_partner(&word);
    partner_cpu = thread_cpu_now() - c0;
  });
  auto t0 = Clock::now();
  auto cpu0 = thread_cpu_now();
  for (auto _ : state) {
    turn.store(1, std::memory_order_release);
    futex_wake(&word);
    while (turn.load(std::memory_order_acquire) == 1) futex_wait(&word, 1);
  }
  auto total = Clock::now() - t0;
  auto our_cpu = thread_cpu_now() - cpu0;
  turn.store(2, std::memory_order_release);
  futex_wake(&word);
  partner.join();
  report_per_op(state, total, 2.0 * static_cast<double>(state.iterations()));
  report_cpu_per_op(state, our_cpu + partner_cpu, 2.0 * static_cast<double>(state.iterations()));
}

// --- two fibers on this thread ---------------------------------------------------------------

// The benchmark runs on the thread's main fiber; the partner is a second fiber of the same
// (round-robin) scheduler. turn: 1 = the partner's, 0 = ours, 2 = stop.
void switch_fiber_condvar(benchmark::State& state) {
  boost::fibers::mutex m;
  boost::fibers::condition_variable cv;
  int turn = 0;
  boost::fibers::fiber partner([&] {
    std::unique_lock lk(m);
    for (;;) {
      cv.wait(lk, [&] { return turn != 0; });
      if (turn == 2) return;
      turn = 0;
      cv.notify_one();
    }
  });
  auto t0 = thread_cpu_now();
  for (auto _ : state) {
    std::unique_lock lk(m);
    turn = 1;
    cv.notify_one();
    cv.wait(lk, [&] { return turn == 0; });
  }
  auto total = thread_cpu_now() - t0;
  {
    std::unique_lock lk(m);
    turn = 2;
  }
  cv.notify_one();
  partner.join();
  report_per_op(state, total, 2.0 * static_cast<double>(state.iterations()));
}

// yield() with one other ready fiber switches straight to it, and its yield() switches back.
void switch_fiber_yield(benchmark::State& state) {
  bool stop = false;
  boost::fibers::fiber partner([&] {
    while (!stop) boost::this_fiber::yield();
  });
  auto t0 = thread_cpu_now();
  for (auto _ : state) boost::this_fiber::yield();
  auto total = thread_cpu_now() - t0;
  stop = true;
  partner.join();
  report_per_op(state, total, 2.0 * static_cast<double>(state.iterations()));
}

// --- a bare Boost.Context jump ---------------------------------------------------------------

// No scheduler, no queue: resume() saves the registers, swaps the stack pointer and jumps.
void switch_context_fiber(benchmark::State& state) {
  namespace ctx = boost::context;
  bool stop = false;
  ctx::fiber other{[&stop](ctx::fiber&& caller) {
    while (!stop) caller = std::move(caller).resume();
    return std::move(caller);
  }};
  auto t0 = thread_cpu_now();
  for (auto _ : state) other = std::move(other).resume();
  auto total = thread_cpu_now() - t0;
  stop = true;
  other = std::move(other).resume();  // the fiber returns; `other` is empty afterwards
  report_per_op(state, total, 2.0 * static_cast<double>(state.iterations()));
}

}  // namespace

void register_switch_benchmarks(const Preset& preset) {
  add(preset, "switch_thread_pipe", switch_thread_pipe)
      ->ArgName("same_cpu")
      ->Arg(1)
      ->Arg(0)
      ->UseRealTime();
  add(preset, "switch_thread_futex", switch_thread_futex)
      ->ArgName("same_cpu")
      ->Arg(1)
      ->Arg(0)
      ->UseRealTime();
  add(preset, "switch_fiber_condvar", switch_fiber_condvar);
  add(preset, "switch_fiber_yield", switch_fiber_yield);
  add(preset, "switch_context_fiber", switch_context_fiber);
}

}  // namespace shootout::bench
