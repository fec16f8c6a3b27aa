// The latency ladder on this machine: one dependent access at each level, in ns and cycles.
//   ladder_memory/bytes:S     a pointer chase through S bytes of 64-byte nodes linked in one
//                             random cycle (Sattolo's shuffle): every load needs the previous
//                             one's result and lands on a new cache line in no order the
//                             prefetcher can guess, so the time per step is the latency of
//                             whichever level holds S bytes (L1, L2, L3, main memory)
//   ladder_disk_fsync_write   pwrite 4 KiB at offset 0 of a file under /var/tmp, then fsync
//   ladder_disk_direct_read   pread 4 KiB at a random 4 KiB offset of a 64 MiB file opened
//                             with O_DIRECT (page cache bypassed); where O_DIRECT is refused
//                             the page is dropped with POSIX_FADV_DONTNEED first, and the
//                             label says so
//   ladder_tcp_loopback_rtt   1 byte to an echo thread over 127.0.0.1 and back (TCP_NODELAY);
//                             cpu_ns_per_op: the CPU time of both threads per round trip
//   ladder_syscall_null       syscall(SYS_getppid): the price of entering and leaving the
//                             kernel, which every read, write and epoll_wait pays (more on a VM
//                             with page-table isolation)
//   ladder_uring_nop/batch:N  N io_uring NOPs queued, then one io_uring_enter that submits them
//                             and waits for their N completions: per NOP, what a completion
//                             API pays per operation once the entry is shared (built with
//                             liburing only)
// ns_per_op is one access (one pointer step, one write+fsync, one read, one round trip).
// The pointer chase is timed on the thread's CPU clock; disk and network on the wall clock.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef SHOOTOUT_HAVE_URING
#include <liburing.h>
#endif

#include <cerrno>
#include <cstdlib>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "bench_util.hpp"

namespace shootout::bench {

namespace {

// --- memory: the pointer chase ---------------------------------------------------------------

struct alignas(64) Node {
  Node* next;
};
static_assert(sizeof(Node) == 64, "one node per cache line");

constexpr std::size_t kStepsPerIteration = 1 << 16;

// The nodes of `bytes` bytes of anonymous memory, linked into one random cycle.
class Chase {
 public:
  explicit Chase(std::size_t bytes) : n_(bytes / sizeof(Node)), bytes_(n_ * sizeof(Node)) {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    nodes_ = static_cast<Node*>(p);
    link_random_cycle();
  }
  ~Chase() {
    if (nodes_ != nullptr) munmap(nodes_, bytes_);
  }
  Chase(const Chase&) = delete;
  Chase& operator=(const Chase&) = delete;

  bool ok() const { return nodes_ != nullptr && n_ >= 2; }
  Node* start() const { return nodes_; }
  std::size_t size() const { return n_; }

 private:
  // Sattolo: a shuffle whose result, read as "next of i", is a single cycle through all nodes.
  void link_random_cycle() {
    std::vector<std::uint32_t> next(n_);
    std::iota(next.begin(), next.end(), 0u);
    std::mt19937_64 rng(42);
    for (std::size_t i = n_ - 1; i > 0; --i) {
      std::uniform_int_distribution<std::size_t> pick(0, i - 1);
      std::swap(next[i], next[pick(rng)]);
    }
    for (std::size_t i = 0; i < n_; ++i) nodes_[i].next = &nodes_[next[i]];
  }

  std::size_t n_;
  std::size_t bytes_;
  Node* nodes_ = nullptr;
};

std::string human_bytes(std::size_t b) {
  if (b >= (1u << 20)) return std::to_string(b >> 20) + " MiB";
  return std::to_string(b >> 10) + " KiB";
}

void ladder_memory(benchmark::State& state) {
  Chase chase(static_cast<std::size_t>(state.range(0)));
  if (!chase.ok()) return state.SkipWithError("could not map the working set");
  state.SetLabel(human_bytes(static_cast<std::size_t>(state.range(0))));
  Node* p = chase.start();
  // Warm the caches (and the TLB) with up to one full lap before the clock starts.
  for (std::size_t i = 0, warm = std::min<std::size_t>(chase.size(), 1 << 20); i < warm; ++i)
    p = p->next;
  auto t0 = thread_cpu_now();
  for (auto _ : state) {
    for (std::size_t i = 0; i < kStepsPerIteration; ++i) p = p->next;
    benchmark::DoNotOptimize(p);
  }
  report_per_op(state, thread_cpu_now() - t0,
                static_cast<double>(state.iterations()) * kStepsPerIteration);
}

// --- disk ------------------------------------------------------------------------------------

constexpr std::size_t kBlock = 4096;

// A temporary file under /var/tmp (a real disk, where /tmp may be tmpfs), removed at the end.
class TempFile {
 public:
  TempFile() {
    char name[] = "/var/tmp/shootout-bench-XXXXXX";
    fd_ = mkstemp(name);
    if (fd_ >= 0) path_ = name;
  }
  ~TempFile() {
    if (fd_ >= 0) {
      close(fd_);
      unlink(path_.c_str());
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// A 4 KiB-aligned block (O_DIRECT needs the buffer aligned too).
struct AlignedBlock {
  AlignedBlock() : data(static_cast<char*>(std::aligned_alloc(kBlock, kBlock))) {
    if (data != nullptr) std::fill(data, data + kBlock, 'b');
  }
  ~AlignedBlock() { std::free(data); }
  AlignedBlock(const AlignedBlock&) = delete;
  AlignedBlock& operator=(const AlignedBlock&) = delete;
  char* data;
};

void ladder_disk_fsync_write(benchmark::State& state) {
  TempFile file;
  AlignedBlock block;
  if (file.fd() < 0 || block.data == nullptr)
    return state.SkipWithError("cannot create a file in /var/tmp");
  auto t0 = Clock::now();
  for (auto _ : state) {
    if (pwrite(file.fd(), block.data, kBlock, 0) != static_cast<ssize_t>(kBlock) ||
        fsync(file.fd()) != 0) {
      state.SkipWithError("pwrite/fsync failed");
      break;
    }
  }
  report_per_op(state, Clock::now() - t0, static_cast<double>(state.iterations()));
}

// Fills the file with `blocks` blocks and flushes it, so reads find data on the disk.
bool fill_file(int fd, const AlignedBlock& block, std::size_t blocks) {
  for (std::size_t i = 0; i < blocks; ++i)
    if (pwrite(fd, block.data, kBlock, static_cast<off_t>(i * kBlock)) !=
        static_cast<ssize_t>(kBlock))
      return false;
  return fsync(fd) == 0;
}

void ladder_disk_direct_read(benchmark::State& state) {
  const std::size_t blocks = static_cast<std::size_t>(state.range(0)) * (1 << 20) / kBlock;
  TempFile file;
  AlignedBlock block;
  if (file.fd() < 0 || block.data == nullptr || !fill_file(file.fd(), block, blocks))
    return state.SkipWithError("cannot write a file in /var/tmp");
  int fd = open(file.path().c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  const bool direct = fd >= 0;
  if (!direct) fd = open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return state.SkipWithError("cannot reopen the file");
  state.SetLabel(direct ? "O_DIRECT"
                        : "FALLBACK: O_DIRECT unsupported, page dropped with POSIX_FADV_DONTNEED");
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::size_t> pick(0, blocks - 1);
  auto t0 = Clock::now();
  for (auto _ : state) {
    const auto off = static_cast<off_t>(pick(rng) * kBlock);
    if (!direct) posix_fadvise(fd, off, kBlock, POSIX_FADV_DONTNEED);
    if (pread(fd, block.data, kBlock, off) != static_cast<ssize_t>(kBlock)) {
      state.SkipWithError("pread failed");
      break;
    }
  }
  report_per_op(state, Clock::now() - t0, static_cast<double>(state.iterations()));
  close(fd);
}

// --- loopback network ------------------------------------------------------------------------

// A connected pair of TCP sockets over 127.0.0.1 (client, server end); -1s on failure.
std::pair<int, int> loopback_pair() {
  int lis = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  int client = -1, server = -1;
  if (lis >= 0 && bind(lis, sa, len) == 0 && listen(lis, 1) == 0 &&
      getsockname(lis, sa, &len) == 0) {
    client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (client >= 0 && connect(client, sa, len) == 0)
      server = accept4(lis, nullptr, nullptr, SOCK_CLOEXEC);
  }
  if (lis >= 0) close(lis);
  if (server < 0) {
    if (client >= 0) close(client);
    return {-1, -1};
  }
  int one = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return {client, server};
}

void ladder_tcp_loopback_rtt(benchmark::State& state) {
  auto [client, server] = loopback_pair();
  if (client < 0) return state.SkipWithError("cannot connect over 127.0.0.1");
  std::chrono::nanoseconds echo_cpu{0};  // written by the echo thread, read after join()
  std::thread echo([server = server, &echo_cpu] {
    auto c0 = thread_cpu_now();
    while (read_byte(server) && write_byte(server)) {
    }
    echo_cpu = thread_cpu_now() - c0;
  });
  auto t0 = Clock::now();
  auto cpu0 = thread_cpu_now();
  for (auto _ : state)
    if (!write_byte(client) || !read_byte(client)) {
      state.SkipWithError("loopback I/O failed");
      break;
    }
  auto total = Clock::now() - t0;
  auto our_cpu = thread_cpu_now() - cpu0;
  shutdown(client, SHUT_WR);  // the echo thread reads EOF and ends
  echo.join();
  close(client);
  close(server);
  report_per_op(state, total, static_cast<double>(state.iterations()));
  report_cpu_per_op(state, our_cpu + echo_cpu, static_cast<double>(state.iterations()));
}

// --- the kernel's door -----------------------------------------------------------------------

void ladder_syscall_null(benchmark::State& state) {
  auto cpu0 = thread_cpu_now();
  for (auto _ : state) benchmark::DoNotOptimize(::syscall(SYS_getppid));
  report_per_op(state, thread_cpu_now() - cpu0, static_cast<double>(state.iterations()));
}

#ifdef SHOOTOUT_HAVE_URING
void ladder_uring_nop(benchmark::State& state) {
  const auto batch = static_cast<unsigned>(state.range(0));
  io_uring ring;
  if (io_uring_queue_init(64, &ring, 0) < 0) return state.SkipWithError("io_uring_setup failed");
  auto cpu0 = thread_cpu_now();
  for (auto _ : state) {
    for (unsigned i = 0; i < batch; ++i) io_uring_prep_nop(io_uring_get_sqe(&ring));
    if (io_uring_submit_and_wait(&ring, batch) < 0) {
      state.SkipWithError("io_uring_enter failed");
      break;
    }
    io_uring_cq_advance(&ring, batch);
  }
  report_per_op(state, thread_cpu_now() - cpu0, static_cast<double>(state.iterations()) * batch);
  io_uring_queue_exit(&ring);
}
#endif

}  // namespace

void register_ladder_benchmarks(const Preset& preset) {
  auto* mem = add(preset, "ladder_memory", ladder_memory)->ArgName("bytes");
  if (preset.ci) {
    mem->Arg(4 << 10)->Arg(256 << 10)->Arg(16 << 20);
  } else {
    mem->RangeMultiplier(2)->Range(4 << 10, 256 << 20);
  }
  add(preset, "ladder_disk_fsync_write", ladder_disk_fsync_write)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  add(preset, "ladder_disk_direct_read", ladder_disk_direct_read)
      ->ArgName("file_mib")
      ->Arg(preset.ci ? 4 : 64)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  add(preset, "ladder_tcp_loopback_rtt", ladder_tcp_loopback_rtt)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  add(preset, "ladder_syscall_null", ladder_syscall_null);
#ifdef SHOOTOUT_HAVE_URING
  add(preset, "ladder_uring_nop", ladder_uring_nop)->ArgName("batch")->Arg(1)->Arg(32);
#endif
}

}  // namespace shootout::bench
