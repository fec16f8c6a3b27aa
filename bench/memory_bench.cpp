// Memory per unit: what one idle connection's unit of concurrency costs in memory.
// Each benchmark runs once (one iteration): it starts N units, waits until every one is
// blocked, reads the memory, then releases and reaps them all. Counters, in bytes per unit:
//   rss_per_unit       resident memory of this process grown, divided by N (threads, fibers)
//   virtual_per_unit   address space reserved, divided by N (stacks are reserved, not touched)
//   pss_per_unit       forked children: PSS (shared pages split between their sharers)
//   private_per_unit   forked children: pages only that child has (its copies on write)
//   page_tables_per_unit  forked children: VmPTE, which no RSS/PSS figure includes
//   memory_thread/units:N           N threads blocked on a std::condition_variable
//   memory_fiber_KIND/units:N/stack_kib:S   N fibers blocked on a fiber condition_variable,
//                                   KIND = protected (guard page, mmap), fixedsize (malloc),
//                                   pooled (boost::pool of stacks); S = 0: the default size
//   memory_fork/units:N             N children blocked in read() on a pipe
#include <sys/wait.h>
#include <unistd.h>

#include <boost/context/stack_traits.hpp>
#include <boost/fiber/all.hpp>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "bench_util.hpp"

namespace shootout::bench {

namespace {

std::size_t units(const benchmark::State& state) {
  return static_cast<std::size_t>(state.range(0));
}

// Growth from `before` to `after` per unit; signed, since memory can also shrink meanwhile.
double per_unit(std::uint64_t after, std::uint64_t before, std::size_t n) {
  return (static_cast<double>(after) - static_cast<double>(before)) / static_cast<double>(n);
}

// --- threads ---------------------------------------------------------------------------------

// Starts threads that park on `go`, waits for all of them, measures, then releases them.
void memory_thread(benchmark::State& state) {
  const std::size_t n = units(state);
  for (auto _ : state) {
    std::mutex m;
    std::condition_variable parked_cv, go_cv;
    std::size_t parked = 0;
    bool go = false;
    std::vector<std::thread> threads;
    threads.reserve(n);  // before the first reading, so the vector is not counted
    const auto rss0 = smaps_rollup(0).rss;
    const auto vm0 = virtual_bytes_self();
    try {
      for (std::size_t i = 0; i < n; ++i)
        threads.emplace_back([&] {
          std::unique_lock lk(m);
          ++parked;
          parked_cv.notify_one();
          go_cv.wait(lk, [&] { return go; });
        });
    } catch (const std::system_error&) {
      state.SkipWithError("thread creation failed");
    }
    {
      std::unique_lock lk(m);
      parked_cv.wait(lk, [&] { return parked == threads.size(); });
    }
    const auto rss1 = smaps_rollup(0).rss;
    const auto vm1 = virtual_bytes_self();
    {
      std::lock_guard lk(m);
      go = true;
    }
    go_cv.notify_all();
    for (auto& t : threads) t.join();
    if (threads.size() != n) break;
    report_bytes(state, "rss_per_unit", per_unit(rss1, rss0, n));
    report_bytes(state, "virtual_per_unit", per_unit(vm1, vm0, n));
  }
}

// --- fibers, one function per stack allocator ------------------------------------------------

template <class StackAllocator>
void memory_fiber(benchmark::State& state) {
  const std::size_t n = units(state);
  const std::size_t stack = state.range(1) == 0 ? boost::context::stack_traits::default_size()
                                                : static_cast<std::size_t>(state.range(1)) * 1024;
  state.SetLabel("stack " + std::to_string(stack / 1024) + " KiB");
  for (auto _ : state) {
    boost::fibers::mutex m;
    boost::fibers::condition_variable go_cv;
    std::size_t parked = 0;
    bool go = false;
    std::vector<boost::fibers::fiber> fibers;
    fibers.reserve(n);
    StackAllocator alloc(stack);
    const auto rss0 = smaps_rollup(0).rss;
    const auto vm0 = virtual_bytes_self();
    for (std::size_t i = 0; i < n; ++i)
      fibers.emplace_back(std::allocator_arg, alloc, [&] {
        std::unique_lock lk(m);
        ++parked;
        go_cv.wait(lk, [&] { return go; });
      });
    // The new fibers run only when this (main) fiber gives up the thread.
    while (parked < n) boost::this_fiber::yield();
    const auto rss1 = smaps_rollup(0).rss;
    const auto vm1 = virtual_bytes_self();
    {
      std::unique_lock lk(m);
      go = true;
    }
    go_cv.notify_all();
    for (auto& f : fibers) f.join();
    report_bytes(state, "rss_per_unit", per_unit(rss1, rss0, n));
    report_bytes(state, "virtual_per_unit", per_unit(vm1, vm0, n));
  }
}

// --- forked children -------------------------------------------------------------------------

struct ChildMemory {
  double pss = 0, priv = 0, rss = 0, pte = 0;
};

// In the child: say "ready", then block until the parent closes the release pipe.
[[noreturn]] void idle_child(int ready_w, int release_r, int release_w) {
  close(release_w);  // else our own copy keeps the pipe open and EOF never comes
  write_byte(ready_w);
  read_byte(release_r);
  _exit(0);
}

ChildMemory sum_children(const std::vector<pid_t>& kids) {
  ChildMemory sum;
  for (pid_t pid : kids) {
    MemInfo mi = smaps_rollup(pid);
    sum.pss += static_cast<double>(mi.pss);
    sum.priv += static_cast<double>(mi.private_bytes);
    sum.rss += static_cast<double>(mi.rss);
    sum.pte += static_cast<double>(page_table_bytes(pid));
  }
  return sum;
}

void memory_fork(benchmark::State& state) {
  const std::size_t n = units(state);
  for (auto _ : state) {
    int ready[2], release[2];
    if (pipe(ready) != 0 || pipe(release) != 0) {
      state.SkipWithError("pipe failed");
      break;
    }
    std::vector<pid_t> kids;
    kids.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      pid_t pid = fork();
      if (pid == 0) idle_child(ready[1], release[0], release[1]);
      if (pid < 0) break;
      kids.push_back(pid);
    }
    close(ready[1]);
    std::size_t started = 0;
    while (started < kids.size() && read_byte(ready[0])) ++started;
    ChildMemory sum = sum_children(kids);
    close(release[1]);  // every child reads EOF and exits
    for (pid_t pid : kids)
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    close(ready[0]);
    close(release[0]);
    if (kids.size() != n || started != n) {
      state.SkipWithError("fork failed");
      break;
    }
    const double dn = static_cast<double>(n);
    report_bytes(state, "pss_per_unit", sum.pss / dn);
    report_bytes(state, "private_per_unit", sum.priv / dn);
    report_bytes(state, "rss_per_unit", sum.rss / dn);
    report_bytes(state, "page_tables_per_unit", sum.pte / dn);
  }
}

}  // namespace

void register_memory_benchmarks(const Preset& preset) {
  const long n_threads = preset.ci ? 100 : 1000;
  const long n_fibers = preset.ci ? 100 : 10000;
  const long n_children = preset.ci ? 20 : 200;
  add_once("memory_thread", memory_thread)->ArgName("units")->Arg(n_threads)->UseRealTime();
  using namespace boost::fibers;
  const std::pair<const char*, void (*)(benchmark::State&)> kinds[] = {
      {"memory_fiber_protected", memory_fiber<protected_fixedsize_stack>},
      {"memory_fiber_fixedsize", memory_fiber<fixedsize_stack>},
      {"memory_fiber_pooled", memory_fiber<pooled_fixedsize_stack>},
  };
  for (auto [name, fn] : kinds)
    add_once(name, fn)
        ->ArgNames({"units", "stack_kib"})
        ->Args({n_fibers, 0})
        ->Args({n_fibers, 64})
        ->UseRealTime();
  add_once("memory_fork", memory_fork)->ArgName("units")->Arg(n_children)->UseRealTime();
}

}  // namespace shootout::bench
