// Spawn: the cost of starting a unit of concurrency and waiting for it to end, for each kind a
// model uses per connection. One iteration is one spawn + one wait; ns_per_op is its time.
//   spawn_fork/parent_mib:M     fork() + _exit(0) in the child + waitpid() in the parent
//   spawn_thread/parent_mib:M   pthread_create() + pthread_join() of a thread that returns
//   spawn_fiber/parent_mib:M    boost::fibers::fiber (default stack) + join()
// parent_mib is memory the parent has touched before measuring: fork copies one page-table
// entry per resident page, so its cost grows with the parent; threads and fibers share the
// address space and should not care. Fork and threads are timed on the wall clock (the parent
// waits); the fiber, which never blocks the thread, on the thread's CPU clock.
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/fiber/all.hpp>
#include <cerrno>
#include <cstring>

#include "bench_util.hpp"

namespace shootout::bench {

namespace {

// Anonymous memory written once, so every page is resident and has a page-table entry.
class Ballast {
 public:
  explicit Ballast(std::size_t bytes) : bytes_(bytes) {
    if (bytes_ == 0) return;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    addr_ = p;
    std::memset(addr_, 1, bytes_);
  }
  ~Ballast() {
    if (addr_ != nullptr) munmap(addr_, bytes_);
  }
  Ballast(const Ballast&) = delete;
  Ballast& operator=(const Ballast&) = delete;
  bool ok() const { return bytes_ == 0 || addr_ != nullptr; }

 private:
  std::size_t bytes_;
  void* addr_ = nullptr;
};

std::size_t parent_bytes(const benchmark::State& state) {
  return static_cast<std::size_t>(state.range(0)) << 20;
}

void spawn_fork(benchmark::State& state) {
  Ballast ballast(parent_bytes(state));
  if (!ballast.ok()) return state.SkipWithError("could not map the parent's ballast");
  auto t0 = Clock::now();
  for (auto _ : state) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0) {
      state.SkipWithError("fork failed");
      break;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  report_per_op(state, Clock::now() - t0, static_cast<double>(state.iterations()));
}

void* return_at_once(void*) { return nullptr; }

void spawn_thread(benchmark::State& state) {
  Ballast ballast(parent_bytes(state));
  if (!ballast.ok()) return state.SkipWithError("could not map the parent's ballast");
  auto t0 = Clock::now();
  for (auto _ : state) {
    pthread_t t;
    if (pthread_create(&t, nullptr, return_at_once, nullptr) != 0) {
      state.SkipWithError("pthread_create failed");
      break;
    }
    pthread_join(t, nullptr);
  }
  report_per_op(state, Clock::now() - t0, static_cast<double>(state.iterations()));
}

void spawn_fiber(benchmark::State& state) {
  Ballast ballast(parent_bytes(state));
  if (!ballast.ok()) return state.SkipWithError("could not map the parent's ballast");
  auto t0 = thread_cpu_now();
  for (auto _ : state) {
    boost::fibers::fiber f([] {});
    f.join();
  }
  report_per_op(state, thread_cpu_now() - t0, static_cast<double>(state.iterations()));
}

}  // namespace

void register_spawn_benchmarks(const Preset& preset) {
  const int large = preset.ci ? 32 : 256;
  const std::pair<const char*, void (*)(benchmark::State&)> kinds[] = {
      {"spawn_fork", spawn_fork}, {"spawn_thread", spawn_thread}, {"spawn_fiber", spawn_fiber}};
  for (auto [name, fn] : kinds) {
    auto* b = add(preset, name, fn)
                  ->ArgName("parent_mib")
                  ->Arg(0)
                  ->Arg(large)
                  ->Unit(benchmark::kMicrosecond);
    if (fn != spawn_fiber) b->UseRealTime();  // fork and threads block; the fiber does not
  }
}

}  // namespace shootout::bench
