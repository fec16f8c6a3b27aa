#pragma once
// ServerSampler: what a server process tree costs over a measurement window.
//
// Given the server's pid (and, for our own servers, the path of its --stats-file), start()
// takes a first snapshot, a background thread takes memory snapshots every `interval`, and
// stop() takes the last one and returns the window's figures:
//
//   memory      PSS and RSS summed over every process of the tree (/proc/P/smaps_rollup; PSS
//               splits shared pages among the processes that map them, so the copy-on-write
//               pages of forked children are not counted again for each child). Last and peak.
//   tasks       processes in the tree and threads summed over them. Last and peak.
//   cpu         user + system CPU time used during the window by the whole tree, including
//               threads that exited and children that were reaped during the window.
//   switches    voluntary and involuntary context switches during the window, likewise.
//   tcp_mem     kernel TCP socket buffer memory (/proc/net/sockstat "mem", pages), system-wide:
//               on loopback it includes the load generator's sockets too.
//   kernel      what the kernel holds for the tree beside its user-space pages (memory
//               snapshots): page tables (VmPTE of each process), kernel stacks (threads x
//               kKernelStackKb) and, given the server's port, its own TCP sockets (sock_diag:
//               each one's struct objects plus the buffer memory charged to it).
//
// How exited threads and reaped children are counted (see docs/LOADGEN.md):
//   * With a stats file (our servers): the sampler sends SIGUSR1, waits until the file's
//     monotonic_ns is newer than the signal, and takes the root's CPU and context switches from
//     its getrusage(RUSAGE_SELF) (every thread, live or exited) plus getrusage(RUSAGE_CHILDREN)
//     (every reaped descendant). Live descendants are added from /proc. A child that is reaped
//     during the window leaves the /proc sum and enters RUSAGE_CHILDREN with its final total,
//     so the window difference counts it exactly once, provided the snapshot is taken at one
//     instant: a CPU snapshot is retaken while a process it listed was reaped mid-way.
//   * Without one (nginx, Apache): everything comes from /proc. /proc/P/stat's utime+stime
//     include P's exited threads and cutime+cstime its reaped children, so CPU is complete;
//     context switches are summed over /proc/P/task/T/status of the live threads only, so
//     switches of threads that exited or children reaped inside the window are missed
//     (reported with "switches_complete": false).
//
// Cost: one snapshot reads /proc/N/stat for every process on the machine (to find the tree),
// smaps_rollup and status for each process of the tree and one sock_diag dump of the server's
// sockets (memory snapshots only), and one status file per live thread of the tree (CPU
// snapshots only: at start and stop). The periodic thread takes memory snapshots only.
// sampler_cpu_us in the result is what the snapshots cost this process.
//
// Threads: start() and stop() from one thread (the one that owns the sampler); the periodic
// snapshots run on the sampler's own thread. Not copyable.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

namespace shootout::load {

struct SamplerConfig {
  pid_t pid = 0;
  std::string stats_file;                      // "" = /proc only
  std::chrono::milliseconds interval{1000};    // memory snapshots in between; 0 = none
  std::chrono::milliseconds stats_wait{2000};  // how long to wait for the stats file
  // The server's listening port. Its own sockets are those of this network namespace whose
  // local port is this one (the listener and every connection it accepted): /proc/net/sockstat
  // counts every socket of the machine, the load generator's ends of loopback connections
  // included. 0 = sockets not measured.
  std::uint16_t port = 0;
};

// A thread's kernel stack: THREAD_SIZE, 16 KiB on x86-64 (since Linux 3.15) and arm64, each
// allocated whole (vmalloc'ed with CONFIG_VMAP_STACK, counted in /proc/meminfo KernelStack).
// No per-process file gives it; threads x this is what the tree's threads hold.
constexpr std::uint64_t kKernelStackKb = 16;

// What the kernel allocates for one TCP socket beside its buffers: struct tcp_sock (slab
// "TCP"), its socket inode ("sock_inode_cache"), its struct file ("filp") and the file's
// dentry ("dentry"), from /proc/slabinfo's object sizes (root only; when unreadable, the
// sizes read on Linux 6.18 x86-64: 2368 + 832 + 192 + 192 bytes).
std::uint64_t socket_object_bytes();

// CPU time and context switches of part of the tree.
struct CpuFigures {
  std::uint64_t utime_us = 0, stime_us = 0;
  std::uint64_t untracked_us = 0;  // live tasks' run time beyond their tick-sampled utime+stime
  std::uint64_t nvcsw = 0, nivcsw = 0;
  CpuFigures& operator+=(const CpuFigures& o) {
    utime_us += o.utime_us;
    stime_us += o.stime_us;
    untracked_us += o.untracked_us;
    nvcsw += o.nvcsw;
    nivcsw += o.nivcsw;
    return *this;
  }
  CpuFigures& operator-=(const CpuFigures& o) {  // o must be part of *this (saturates at 0)
    auto less = [](std::uint64_t& a, std::uint64_t b) { a = a > b ? a - b : 0; };
    less(utime_us, o.utime_us);
    less(stime_us, o.stime_us);
    less(untracked_us, o.untracked_us);
    less(nvcsw, o.nvcsw);
    less(nivcsw, o.nivcsw);
    return *this;
  }
};

// One look at the tree.
struct TreeSnapshot {
  // When the figures were read: from monotonic_ns_begin to monotonic_ns (a snapshot of a tree
  // of thousands of threads takes a while, and a CPU snapshot is retaken while processes are
  // reaped under it).
  std::int64_t monotonic_ns_begin = 0, monotonic_ns = 0;
  std::uint64_t processes = 0, threads = 0;
  std::uint64_t pss_kb = 0, rss_kb = 0;                  // memory snapshots only
  std::uint64_t cpu_us = 0, utime_us = 0, stime_us = 0;  // CPU snapshots only
  std::uint64_t untracked_us = 0;  // live tasks' run time beyond their tick-sampled utime+stime
  std::uint64_t nvcsw = 0, nivcsw = 0;
  std::uint64_t tcp_mem_bytes = 0;
  // Memory snapshots: VmPTE summed over the tree; with a port, the server's sockets and the
  // buffer memory charged to them (sk_rmem_alloc + sk_forward_alloc + sk_wmem_queued +
  // optmem + backlog, as sock_diag's SKMEMINFO gives it). sockets_measured false: no port,
  // or the sock_diag dump failed.
  std::uint64_t pte_kb = 0;
  std::uint64_t sockets = 0, socket_buffer_bytes = 0;
  std::uint64_t connected_sockets = 0;  // of `sockets`, those not listening
  bool sockets_measured = false;
  // CPU snapshots: the parts the figures above add up. The root is always read from /proc
  // too, so that two snapshots of which only one got the server's report (it did not answer
  // within stats_wait) can still be compared from the same source: /proc's root and its
  // report differ by up to a tick per field, more than a short window's CPU, and the report
  // has the exited threads' and reaped children's switches, /proc only the live tasks'.
  CpuFigures others, root_proc;
  std::optional<CpuFigures> root_stats;  // the root from the server's report
  // Of `others`: the root's children that its report's reap log says were reaped after this
  // pass read them, so RUSAGE_CHILDREN in the report has them too (exactly): left out of
  // `others` when the report is used.
  CpuFigures reaped_after_read;
  bool from_stats_file = false;                  // root figures from the server's report
  std::optional<std::uint64_t> server_requests;  // the stats file's `requests`
  bool alive = true;                             // the root pid still existed
  int cpu_attempts = 0;  // CPU snapshots: passes needed until one counted every process once
  // CPU snapshots: every unit of CPU counted once, with the report (the root's children through
  // its reap log, any other process not reaped during the pass) and from /proc alone (no
  // process reaped during the pass). cpu_consistent is the one of the source settled on.
  bool consistent_with_report = false, consistent_proc = false;
  bool cpu_consistent = true;
};

struct ServerSample {
  pid_t pid = 0;
  std::string source;  // "stats-file+proc" or "proc"
  // From the moment the first snapshot began reading to the moment the last one ended: the
  // CPU counted can only have been used inside it, so cpu_us <= CPUs x window_s.
  double window_s = 0;
  std::uint64_t pss_kb = 0, rss_kb = 0, pss_kb_peak = 0, rss_kb_peak = 0;
  std::uint64_t processes = 0, threads = 0, processes_peak = 0, threads_peak = 0;
  std::uint64_t cpu_us = 0, utime_us = 0, stime_us = 0;
  std::uint64_t nvcsw = 0, nivcsw = 0;
  bool switches_complete = false;  // true when exited threads / reaped children are included
  std::uint64_t tcp_mem_bytes = 0, tcp_mem_bytes_start = 0, tcp_mem_bytes_peak = 0;
  // Kernel memory at the last memory snapshot (see TreeSnapshot): page tables, kernel stacks
  // (threads x kKernelStackKb), the server's sockets, their buffers and their objects
  // (sockets x socket_object_bytes()), in bytes so that a difference of two is exact.
  // sockets_measured false: the socket figures are absent.
  std::uint64_t pte_kb = 0, kernel_stack_kb = 0;
  std::uint64_t sockets = 0, socket_buffer_bytes = 0, socket_object_bytes = 0;
  bool sockets_measured = false;
  std::optional<std::uint64_t> server_requests;  // delta of the stats file's `requests`
  std::uint64_t memory_samples = 0;
  double sampler_cpu_us = 0;   // CPU the snapshots cost the sampling process
  double snapshot_ms_max = 0;  // longest single snapshot (wall time)
  bool server_exited = false;
  // False when a CPU snapshot could not be taken at one instant (children reaped under every
  // pass): cpu_us may then count a child's past CPU in the window. Say so; never use it.
  bool cpu_consistent = true;
  nlohmann::json to_json() const;
  static ServerSample from_json(const nlohmann::json& j);  // the inverse of to_json()
};

// The server's own TCP sockets now (those on `port`), alone: sockets, connected_sockets,
// socket_buffer_bytes and sockets_measured of the result are set, nothing else. Cheap (one
// sock_diag dump), unlike a memory snapshot of a large tree.
TreeSnapshot server_sockets(std::uint16_t port);

// Takes one snapshot now. with_memory reads smaps_rollup; with_cpu reads the CPU and per-thread
// context switches (and asks the stats file, if given). Throws nothing: a process that vanishes
// mid-walk is skipped.
TreeSnapshot snapshot_tree(const SamplerConfig& config, bool with_memory, bool with_cpu);

class ServerSampler {
 public:
  explicit ServerSampler(SamplerConfig config);
  ~ServerSampler();
  ServerSampler(const ServerSampler&) = delete;
  ServerSampler& operator=(const ServerSampler&) = delete;

  // The first CPU snapshot (synchronous), then the periodic thread (memory, its first at once).
  void start();
  // The last CPU snapshot, then stops the thread, then the last memory snapshot; the window's
  // figures.
  ServerSample stop();
  // The CPU the sampler has cost this process since start(): start()'s snapshots and all of
  // its periodic thread's time (a snapshot under way included). Between start() and stop(),
  // so that the load generator can leave it out of the CPU it reads at the window's end,
  // before stop() takes its last snapshots (which, over 30,000 processes, took 28 s here).
  double cpu_us_so_far();

 private:
  void periodic();
  void note_memory(const TreeSnapshot& s);
  TreeSnapshot timed_snapshot(bool with_memory, bool with_cpu);

  SamplerConfig config_;
  TreeSnapshot first_;
  std::mutex mutex_;  // guards everything below, shared with the periodic thread
  std::condition_variable wake_;
  bool stopping_ = false;
  ServerSample sample_;
  double start_cpu_us_ = 0;  // start()'s snapshots
  std::thread thread_;
};

}  // namespace shootout::load
