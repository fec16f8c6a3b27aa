#include "sampler.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>  // struct rtattr
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "load.hpp"
#include "netns.hpp"

namespace shootout::load {

namespace {

std::int64_t monotonic_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

double thread_cpu_us() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_nsec) / 1e3;
}

// Reads a small /proc file into `buf` with one open and one or two reads; no allocation.
// Returns the text, empty if the file is gone.
std::string_view read_small(const char* path, char* buf, std::size_t size) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::size_t used = 0;
  while (used < size) {
    ssize_t n = ::read(fd, buf + used, size - used);
    if (n <= 0) break;
    used += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return {buf, used};
}

std::uint64_t to_u64(std::string_view s) {
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// The number after `key` (e.g. "Pss:") in a "Key:   123 kB" style file.
std::uint64_t field_after(std::string_view text, std::string_view key) {
  auto at = text.find(key);
  if (at == std::string_view::npos) return 0;
  auto rest = text.substr(at + key.size());
  auto begin = rest.find_first_of("0123456789");
  if (begin == std::string_view::npos) return 0;
  auto end = rest.find_first_not_of("0123456789", begin);
  return to_u64(rest.substr(begin, end - begin));
}

struct ProcStat {
  pid_t pid = 0, ppid = 0;
  std::uint64_t utime = 0, stime = 0, cutime = 0, cstime = 0;  // clock ticks
  std::uint64_t threads = 0;
};

// /proc/P/stat: "pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17) ...
// num_threads(20)". comm may hold spaces and parentheses: fields are counted after the last ')'.
bool parse_stat(std::string_view text, ProcStat& out) {
  auto close = text.rfind(')');
  if (close == std::string_view::npos) return false;
  std::string_view rest = text.substr(close + 2);
  std::uint64_t fields[18] = {};  // fields 3..20 of the man page
  for (int i = 0; i < 18 && !rest.empty(); ++i) {
    auto space = rest.find(' ');
    auto word = rest.substr(0, space);
    if (i > 0) fields[i] = to_u64(word);  // field 3 (state) is a letter
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
  }
  out.ppid = static_cast<pid_t>(fields[1]);
  out.utime = fields[11];
  out.stime = fields[12];
  out.cutime = fields[13];
  out.cstime = fields[14];
  out.threads = fields[17];
  return true;
}

// Every process on the machine: one stat read each. The tree is found from the ppid links.
std::vector<ProcStat> all_processes() {
  std::vector<ProcStat> procs;
  DIR* dir = ::opendir("/proc");
  if (!dir) return procs;
  char path[300];
  char buf[1024];
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    ProcStat s;
    s.pid = static_cast<pid_t>(to_u64(e->d_name));
    if (parse_stat(read_small(path, buf, sizeof buf), s)) procs.push_back(s);
  }
  ::closedir(dir);
  return procs;
}

// The root and all its descendants (root first), from a machine-wide list.
std::vector<ProcStat> tree_of(pid_t root, const std::vector<ProcStat>& all) {
  std::unordered_multimap<pid_t, const ProcStat*> children;
  const ProcStat* top = nullptr;
  for (const auto& p : all) {
    children.emplace(p.ppid, &p);
    if (p.pid == root) top = &p;
  }
  std::vector<ProcStat> tree;
  if (!top) return tree;
  tree.push_back(*top);
  for (std::size_t i = 0; i < tree.size(); ++i) {
    auto [lo, hi] = children.equal_range(tree[i].pid);
    for (auto it = lo; it != hi; ++it) tree.push_back(*it->second);
  }
  return tree;
}

void add_memory(pid_t pid, TreeSnapshot& s) {
  char path[64];
  char buf[2048];
  std::snprintf(path, sizeof path, "/proc/%d/smaps_rollup", static_cast<int>(pid));
  auto text = read_small(path, buf, sizeof buf);
  s.rss_kb += field_after(text, "\nRss:");
  s.pss_kb += field_after(text, "\nPss:");
  // The page tables belong to the process's mm, shared by its threads: one VmPTE per process.
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(pid));
  char status[4096];
  s.pte_kb += field_after(read_small(path, status, sizeof status), "\nVmPTE:");
}

constexpr std::size_t align4(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

// The server's own TCP sockets (local port `port`, IPv4 and IPv6) from the kernel's sock_diag
// dump, into `s`: how many, and the buffer memory charged to them. TIME_WAIT and NEW_SYN_RECV
// (half-open request) sockets are left out: they are small stand-ins, not full sockets, and carry
// no memory figures. Returns false if the dump failed.
bool add_sockets(std::uint16_t port, TreeSnapshot& s) {
  const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return false;
  bool ok = true;
  for (int family : {AF_INET, AF_INET6}) {
    struct {
      nlmsghdr nlh;
      inet_diag_req_v2 req;
    } msg{};
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = static_cast<std::uint8_t>(family);
    msg.req.sdiag_protocol = IPPROTO_TCP;
    // TIME_WAIT and NEW_SYN_RECV are not sockets anyone holds. A socket bound but neither
    // listening nor connected (serve --workers' master keeps one to hold the port) is no
    // connection: CLOSE, or TCP_BOUND_INACTIVE (13) as kernels since 6.6 dump such sockets.
    constexpr unsigned kTimeWait = 6, kClose = 7, kNewSynRecv = 12, kBoundInactive = 13;
    msg.req.idiag_states =
        ~((1u << kTimeWait) | (1u << kClose) | (1u << kNewSynRecv) | (1u << kBoundInactive));
    msg.req.idiag_ext = 1 << (INET_DIAG_SKMEMINFO - 1);
    // Not filtered by the kernel on the port (id.idiag_sport): this kernel's dump with that
    // filter, resumed across recv() batches, skipped sockets at scale (60,000 connections
    // held: 54,378 dumped, while ss, with a bytecode filter, listed all 60,000; 2026-12-04).
    // Every TCP socket is dumped, and the port is matched below: 60,004 there (with the
    // listeners). At 100,000 held this dump too missed some (41,068 to 97,166 counted), cause
    // not yet known: the count is a lower bound, and the runner treats it as one
    // (held_connections in runner/sweep.cpp).
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    const auto* to = reinterpret_cast<const sockaddr*>(&kernel);
    if (::sendto(fd, &msg, sizeof msg, 0, to, sizeof kernel) < 0) {
      ok = false;
      break;
    }
    // On the heap: this code is linked into `shootout serve` too, and a thread_local buffer
    // would be carried by every thread of a thread-per-connection server.
    std::vector<char> storage(1 << 16);
    char* buf = storage.data();  // new[] aligns for any nlmsghdr
    for (bool done = false; !done;) {
      const ssize_t got = ::recv(fd, buf, storage.size(), 0);
      if (got <= 0) {
        ok = false;
        break;
      }
      // Walked by hand rather than with NLMSG_NEXT/RTA_NEXT, whose C casts -Wold-style-cast
      // flags; the layout is the same (every header and payload 4-byte aligned).
      const auto size = static_cast<std::size_t>(got);
      for (std::size_t at = 0; !done && at + sizeof(nlmsghdr) <= size;) {
        nlmsghdr h{};
        std::memcpy(&h, buf + at, sizeof h);
        if (h.nlmsg_len < sizeof h || at + h.nlmsg_len > size) {
          ok = false;
          done = true;
          break;
        }
        if (h.nlmsg_type == NLMSG_DONE || h.nlmsg_type == NLMSG_ERROR) {
          ok = ok && h.nlmsg_type == NLMSG_DONE;
          done = true;
          break;
        }
        const std::size_t body = at + align4(sizeof h), end = at + h.nlmsg_len;
        at += align4(h.nlmsg_len);
        inet_diag_msg m{};
        if (body + sizeof m > end) continue;
        std::memcpy(&m, buf + body, sizeof m);
        if (ntohs(m.id.idiag_sport) != port) continue;
        if (m.idiag_state == kClose || m.idiag_state == kBoundInactive) continue;  // nor here
        ++s.sockets;
        constexpr std::uint8_t kListen = 10;  // TCP_LISTEN
        if (m.idiag_state != kListen) ++s.connected_sockets;
        for (std::size_t a = body + align4(sizeof m); a + sizeof(rtattr) <= end;) {
          rtattr attr{};
          std::memcpy(&attr, buf + a, sizeof attr);
          if (attr.rta_len < sizeof attr || a + attr.rta_len > end) break;
          if (attr.rta_type == INET_DIAG_SKMEMINFO) {
            std::uint32_t v[SK_MEMINFO_VARS] = {};
            std::memcpy(v, buf + a + align4(sizeof attr),
                        std::min(sizeof v, attr.rta_len - align4(sizeof attr)));
            // What is charged to the socket (and counted in sockstat's "mem"): the receive
            // queue, the memory reserved ahead, the send queue, options and the backlog.
            // wmem_alloc is part of the send queue already in flight below TCP: not counted
            // twice.
            s.socket_buffer_bytes += std::uint64_t{v[SK_MEMINFO_RMEM_ALLOC]} +
                                     v[SK_MEMINFO_FWD_ALLOC] + v[SK_MEMINFO_WMEM_QUEUED] +
                                     v[SK_MEMINFO_OPTMEM] + v[SK_MEMINFO_BACKLOG];
          }
          a += align4(attr.rta_len);
        }
      }
    }
    // A kernel without IPv6 answers the AF_INET6 dump with an error: no IPv6 sockets, the
    // IPv4 count stands.
    if (!ok && family == AF_INET6) ok = true;
    if (!ok) break;
  }
  ::close(fd);
  return ok;
}

// The server's sockets live in its network namespace, which need not be ours (a server started
// with `ip netns exec`): sock_diag answers for the namespace its socket was made in, so the
// dump is then made from a thread inside the server's namespace (CAP_SYS_ADMIN; without it the
// count is reported as not measured).
bool add_server_sockets(pid_t pid, std::uint16_t port, TreeSnapshot& s) {
  auto ns = NetNamespace::of_process_if_other(pid);
  if (!ns) return add_sockets(port, s);
  bool ok = false;
  try {
    ns->inside([&] { ok = add_sockets(port, s); });
  } catch (const LoadError&) {
    ok = false;
  }
  return ok;
}

// Context switches of every live task of `pid` into `s`; returns the tasks' run time in µs
// (the scheduler's exact sum_exec_runtime, first field of /proc/P/task/T/schedstat).
std::uint64_t add_tasks(pid_t pid, CpuFigures& s) {
  char path[320];
  char buf[4096];
  std::uint64_t run_ns = 0;
  std::snprintf(path, sizeof path, "/proc/%d/task", static_cast<int>(pid));
  DIR* dir = ::opendir(path);
  if (!dir) return 0;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::snprintf(path, sizeof path, "/proc/%d/task/%s/status", static_cast<int>(pid), e->d_name);
    auto text = read_small(path, buf, sizeof buf);
    s.nvcsw += field_after(text, "\nvoluntary_ctxt_switches:");
    s.nivcsw += field_after(text, "\nnonvoluntary_ctxt_switches:");
    std::snprintf(path, sizeof path, "/proc/%d/task/%s/schedstat", static_cast<int>(pid),
                  e->d_name);
    auto sched = read_small(path, buf, sizeof buf);
    run_ns += to_u64(sched.substr(0, sched.find(' ')));
  }
  ::closedir(dir);
  return run_ns / 1000;
}

std::uint64_t tcp_mem_bytes() {
  char buf[1024];
  auto text = read_small("/proc/net/sockstat", buf, sizeof buf);
  auto tcp = text.find("TCP:");
  if (tcp == std::string_view::npos) return 0;
  auto line = text.substr(tcp, text.find('\n', tcp) - tcp);
  return field_after(line, " mem ") * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

// Asks the server for a fresh stats file: SIGUSR1, then wait for a report written after it.
std::optional<nlohmann::json> fresh_stats(const SamplerConfig& c) {
  const std::int64_t asked = monotonic_ns();
  if (::kill(c.pid, SIGUSR1) != 0) return std::nullopt;
  const std::int64_t give_up = asked + std::chrono::nanoseconds(c.stats_wait).count();
  while (monotonic_ns() < give_up) {
    std::ifstream in(c.stats_file);
    std::stringstream text;
    text << in.rdbuf();
    auto j = nlohmann::json::parse(text.str(), nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.value("monotonic_ns", std::int64_t{0}) >= asked)
      return j;
    timespec pause{0, 1'000'000};
    ::nanosleep(&pause, nullptr);
  }
  return std::nullopt;
}

void add_rusage_json(const nlohmann::json& u, CpuFigures& s) {
  s.utime_us += u.value("utime_us", std::uint64_t{0});
  s.stime_us += u.value("stime_us", std::uint64_t{0});
  s.nvcsw += u.value("nvcsw", std::uint64_t{0});
  s.nivcsw += u.value("nivcsw", std::uint64_t{0});
}

std::uint64_t ticks_to_us(std::uint64_t ticks) {
  static const auto hz = static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
  return ticks * 1'000'000 / hz;
}

}  // namespace

namespace {

// True if `pid` has not been reaped yet (a zombie still counts: its times are still in /proc).
bool not_reaped(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// Every process of `tree` read before was still there (not reaped) after the figures were read.
bool none_reaped(const std::vector<pid_t>& pids) {
  return std::all_of(pids.begin(), pids.end(), not_reaped);
}

std::vector<pid_t> pids_of(const std::vector<ProcStat>& tree) {
  std::vector<pid_t> pids;
  pids.reserve(tree.size());
  for (const auto& p : tree) pids.push_back(p.pid);
  return pids;
}

// The snapshot's CPU and switch figures from its parts: the root from the server's report
// (use_report, when there is one) or from /proc.
void settle_cpu(TreeSnapshot& s, bool use_report) {
  const bool report = use_report && s.root_stats.has_value();
  CpuFigures f = s.others;
  if (report) {
    f -= s.reaped_after_read;
    f += *s.root_stats;
  } else {
    f += s.root_proc;
  }
  s.cpu_consistent = report ? s.consistent_with_report : s.consistent_proc;
  s.utime_us = f.utime_us;
  s.stime_us = f.stime_us;
  s.untracked_us = f.untracked_us;
  s.nvcsw = f.nvcsw;
  s.nivcsw = f.nivcsw;
  s.cpu_us = f.utime_us + f.stime_us + f.untracked_us;
  s.from_stats_file = report;
}

// One pass over the tree: counts, memory, and (with_cpu) the /proc part of CPU and switches,
// each process into s.others but the root, into s.root_proc.
// `children`, if given, gets the CPU figures of each of the root's children read.
TreeSnapshot read_tree(const std::vector<ProcStat>& tree, bool with_memory, bool with_cpu,
                       std::vector<std::pair<pid_t, CpuFigures>>* children = nullptr) {
  TreeSnapshot s;
  s.alive = !tree.empty();
  for (std::size_t i = 0; i < tree.size(); ++i) {
    const ProcStat& p = tree[i];
    ++s.processes;
    s.threads += p.threads;
    if (with_memory) add_memory(p.pid, s);
    if (!with_cpu) continue;
    CpuFigures f;
    // utime+stime include the process's exited threads; cutime+cstime its reaped children.
    f.utime_us += ticks_to_us(p.utime + p.cutime);
    f.stime_us += ticks_to_us(p.stime + p.cstime);
    // utime+stime (and cutime+cstime) are the kernel's exact run time in ns, split by tick
    // samples and truncated to whole ticks in /proc: a process that has run 9 ms shows 0, so
    // a thousand short-lived workers (Apache prefork, a forked child per connection) showed
    // 1 tick against 4.5 s of run time. The live tasks' run time in ns is taken instead where
    // it is larger; exited threads still count through utime+stime, to within a tick
    // (docs/LOADGEN.md, "How precise").
    const std::uint64_t ticked = ticks_to_us(p.utime + p.stime);
    const std::uint64_t ran = add_tasks(p.pid, f);
    if (ran > ticked) f.untracked_us += ran - ticked;
    (i == 0 ? s.root_proc : s.others) += f;
    if (children && i > 0 && p.ppid == tree[0].pid) children->emplace_back(p.pid, f);
  }
  settle_cpu(s, false);
  return s;
}

// With the server's report: takes the root's children that its reap log says were reaped at or
// after `begin` out of the pass's /proc figures (into s.reaped_after_read), and says whether
// the pass counted every unit of CPU once: the log reaches back to `begin`, and no process of
// the tree other than the root's children was reaped during the pass. No log (a report from
// elsewhere): no process of the tree may have been reaped.
bool settle_reaped(const nlohmann::json& stats, std::int64_t begin,
                   const std::vector<ProcStat>& tree,
                   const std::vector<std::pair<pid_t, CpuFigures>>& children, TreeSnapshot& s) {
  const auto log = stats.find("reaped");
  if (log == stats.end() || !log->is_object() ||
      log->value("complete_since_ns", std::numeric_limits<std::int64_t>::max()) > begin)
    return none_reaped(pids_of(tree));
  std::unordered_set<pid_t> reaped;
  for (const auto& e : log->value("recent", nlohmann::json::array()))
    if (e.is_array() && e.size() >= 2 && e[0].is_number_integer() && e[1].is_number_integer() &&
        e[1].get<std::int64_t>() >= begin)  // (the sampler throws nothing: others are skipped)
      reaped.insert(e[0].get<pid_t>());
  for (const auto& [pid, figures] : children)
    if (reaped.count(pid)) s.reaped_after_read += figures;
  for (std::size_t i = 1; i < tree.size(); ++i)
    if (tree[i].ppid != tree[0].pid && !not_reaped(tree[i].pid)) return false;
  return !tree.empty() && not_reaped(tree[0].pid);
}

}  // namespace

// CPU snapshots must see each unit of CPU exactly once. A pass lists the tree and reads /proc,
// then asks for the server's report (its own CPU and RUSAGE_CHILDREN, exact). A child reaped
// between its reading and the report is in both: the report's reap log names it and the time
// it was reaped, so its /proc figures are left out (reaped_after_read) and the report's exact
// ones kept. A child reaped before it was listed is in the report alone, one forked after it
// in neither (it enters the next snapshot). So a pass with a report is exact however fast
// children come and go (forked with Connection: close: one a millisecond), as long as the log
// reaches back to the pass's start; a process that is not the root's child (none in our
// models) must still not be reaped during the pass. Without a report, /proc alone: the root's
// cutime+cstime in whole ticks, and a pass is kept only if no process listed before it or in
// it was reaped by its end; otherwise (children exiting right then) it is taken again.
TreeSnapshot snapshot_tree(const SamplerConfig& config, bool with_memory, bool with_cpu) {
  if (!with_cpu) {
    const std::int64_t begin = monotonic_ns();
    TreeSnapshot s = read_tree(tree_of(config.pid, all_processes()), with_memory, false);
    if (with_memory && config.port != 0)
      s.sockets_measured = add_server_sockets(config.pid, config.port, s);
    s.monotonic_ns_begin = begin;
    s.monotonic_ns = monotonic_ns();
    s.tcp_mem_bytes = tcp_mem_bytes();
    return s;
  }
  constexpr int kAttempts = 20;
  TreeSnapshot s;
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    const std::int64_t begin = monotonic_ns();
    // Without a report, a child reaped during the listing (after the root's line was read and
    // before its own) would be missed: an earlier listing names it. With one, that child is
    // in the report, and a second walk of a large tree is not worth it.
    std::vector<pid_t> before;
    if (config.stats_file.empty()) before = pids_of(tree_of(config.pid, all_processes()));
    const auto tree = tree_of(config.pid, all_processes());
    std::vector<std::pair<pid_t, CpuFigures>> children;
    s = read_tree(tree, with_memory, true, &children);
    std::optional<nlohmann::json> stats;
    if (!config.stats_file.empty()) stats = fresh_stats(config);
    s.monotonic_ns_begin = begin;
    s.monotonic_ns = monotonic_ns();
    const std::vector<pid_t> listed = pids_of(tree);
    s.consistent_proc = none_reaped(before) && none_reaped(listed);
    if (stats) {
      CpuFigures root;
      if (stats->contains("self")) add_rusage_json((*stats)["self"], root);
      if (stats->contains("children")) add_rusage_json((*stats)["children"], root);
      s.root_stats = root;
      if (stats->contains("requests"))
        s.server_requests = (*stats)["requests"].get<std::uint64_t>();
      s.consistent_with_report = settle_reaped(*stats, begin, tree, children, s);
    }
    settle_cpu(s, true);
    s.cpu_attempts = attempt;
    if (s.cpu_consistent) break;
  }
  s.tcp_mem_bytes = tcp_mem_bytes();
  return s;
}

TreeSnapshot server_sockets(std::uint16_t port) {
  TreeSnapshot s;
  s.sockets_measured = add_sockets(port, s);
  return s;
}

std::uint64_t socket_object_bytes() {
  static const std::uint64_t bytes = [] {
    std::unordered_map<std::string, std::uint64_t> size{
        {"TCP", 2368}, {"sock_inode_cache", 832}, {"filp", 192}, {"dentry", 192}};
    std::ifstream in("/proc/slabinfo");
    // "name active_objs num_objs objsize ...": the object size is the fourth word.
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      std::string name;
      std::uint64_t active = 0, total = 0, objsize = 0;
      if (words >> name >> active >> total >> objsize && size.count(name) && objsize > 0)
        size[name] = objsize;
    }
    std::uint64_t sum = 0;
    for (const auto& [name, b] : size) sum += b;
    return sum;
  }();
  return bytes;
}

ServerSampler::ServerSampler(SamplerConfig config) : config_(std::move(config)) {
  sample_.pid = config_.pid;
}

ServerSampler::~ServerSampler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

TreeSnapshot ServerSampler::timed_snapshot(bool with_memory, bool with_cpu) {
  const double cpu0 = thread_cpu_us();
  const auto wall0 = std::chrono::steady_clock::now();
  TreeSnapshot s = snapshot_tree(config_, with_memory, with_cpu);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall0).count();
  const double cpu = thread_cpu_us() - cpu0;
  std::lock_guard lock(mutex_);
  sample_.sampler_cpu_us += cpu;
  sample_.snapshot_ms_max = std::max(sample_.snapshot_ms_max, ms);
  return s;
}

void ServerSampler::note_memory(const TreeSnapshot& s) {
  std::lock_guard lock(mutex_);
  if (!s.alive) return;
  ++sample_.memory_samples;
  sample_.pss_kb_peak = std::max(sample_.pss_kb_peak, s.pss_kb);
  sample_.rss_kb_peak = std::max(sample_.rss_kb_peak, s.rss_kb);
  sample_.processes_peak = std::max(sample_.processes_peak, s.processes);
  sample_.threads_peak = std::max(sample_.threads_peak, s.threads);
  sample_.tcp_mem_bytes_peak = std::max(sample_.tcp_mem_bytes_peak, s.tcp_mem_bytes);
}

// The CPU snapshot is taken on its own and the memory one after it: reading smaps_rollup of a
// thousand processes takes seconds, and a CPU snapshot must see the tree at one instant (with
// children exiting all the time, a pass that long was rarely consistent). The memory snapshots
// are the periodic thread's, its first at once: taken here, Apache prefork's 23,636 processes
// (2026-12-04) held the window's opening for 20 s, so the window the server's CPU was read over
// was 24 s long while the load counted its requests over 3 s (905 µs of CPU per request).
void ServerSampler::start() {
  first_ = timed_snapshot(false, true);
  sample_.tcp_mem_bytes_start = first_.tcp_mem_bytes;
  start_cpu_us_ = sample_.sampler_cpu_us;
  if (config_.interval.count() > 0)
    thread_ = std::thread([this] { periodic(); });
  else
    note_memory(timed_snapshot(true, false));
}

double ServerSampler::cpu_us_so_far() {
  double periodic = 0;
  clockid_t clock{};
  timespec t{};
  if (thread_.joinable() && ::pthread_getcpuclockid(thread_.native_handle(), &clock) == 0 &&
      ::clock_gettime(clock, &t) == 0)
    periodic = static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_nsec) / 1e3;
  return start_cpu_us_ + periodic;
}

void ServerSampler::periodic() {
  note_memory(timed_snapshot(true, false));
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, config_.interval, [this] { return stopping_; })) {
    lock.unlock();
    note_memory(timed_snapshot(true, false));
    lock.lock();
  }
}

// The window's last CPU snapshot first, then the periodic thread (which may be in the middle
// of a memory snapshot of seconds) is stopped, then the last memory snapshot.
ServerSample ServerSampler::stop() {
  TreeSnapshot last = timed_snapshot(false, true);
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  const TreeSnapshot last_memory = timed_snapshot(true, false);
  note_memory(last_memory);
  std::lock_guard lock(mutex_);
  ServerSample& r = sample_;
  r.server_exited = !last.alive;
  // Both ends from the same source: the server's report at both, or /proc at both (one end
  // without a report, the server having not answered in time, once gave 0 µs of CPU over a
  // 100 ms window of a forked server under load: /proc's whole ticks against the report's µs).
  TreeSnapshot first = first_;
  const bool reported = first.root_stats && last.root_stats;
  settle_cpu(first, reported);
  settle_cpu(last, reported);
  r.source = reported ? "stats-file+proc" : "proc";
  r.switches_complete = reported;
  // From the first snapshot's beginning to the last one's end. Timed from the first one's end,
  // a window of a tree whose snapshot took most of the planned window (Apache at 10,000
  // connections: thousands of threads' status files) came out as 0.2-0.34 s with the CPU of
  // several seconds in it: 13.5 cores on a 2-CPU machine.
  r.window_s = static_cast<double>(last.monotonic_ns - first.monotonic_ns_begin) / 1e9;
  r.pss_kb = last_memory.pss_kb;
  r.rss_kb = last_memory.rss_kb;
  r.processes = last_memory.processes;
  r.threads = last_memory.threads;
  r.tcp_mem_bytes = last_memory.tcp_mem_bytes;
  r.pte_kb = last_memory.pte_kb;
  r.kernel_stack_kb = last_memory.threads * kKernelStackKb;
  r.sockets_measured = last_memory.sockets_measured;
  r.sockets = last_memory.sockets;
  r.socket_buffer_bytes = last_memory.socket_buffer_bytes;
  r.socket_object_bytes = last_memory.sockets * socket_object_bytes();
  r.cpu_consistent = first.cpu_consistent && last.cpu_consistent;
  auto delta = [](std::uint64_t b, std::uint64_t a) { return b > a ? b - a : 0; };
  r.utime_us = delta(last.utime_us, first.utime_us);
  r.stime_us = delta(last.stime_us, first.stime_us);
  // cpu_us counts each live task at its exact run time where the ticks missed some, at both
  // ends; utime and stime are tick-split and lack that at the start. A child alive at the start
  // and reaped by the end enters RUSAGE_CHILDREN exactly, so utime+stime's delta counted the
  // run time its ticks had missed before the window as if it were in it: ~1,000 forked
  // children gave 12.4 s of CPU in a 3.4 s window on 2 CPUs. So cpu_us is cpu's own delta, and
  // the user/system split is scaled to it when it says more.
  r.cpu_us = delta(last.cpu_us, first.cpu_us);
  if (r.utime_us + r.stime_us > r.cpu_us && r.utime_us + r.stime_us > 0) {
    const double scale =
        static_cast<double>(r.cpu_us) / static_cast<double>(r.utime_us + r.stime_us);
    r.utime_us = static_cast<std::uint64_t>(static_cast<double>(r.utime_us) * scale);
    r.stime_us = r.cpu_us - r.utime_us;
  }
  r.nvcsw = delta(last.nvcsw, first.nvcsw);
  r.nivcsw = delta(last.nivcsw, first.nivcsw);
  if (first.server_requests && last.server_requests)
    r.server_requests = delta(*last.server_requests, *first.server_requests);
  return r;
}

nlohmann::json ServerSample::to_json() const {
  auto kb_or_null = [this](std::uint64_t bytes) {
    return sockets_measured ? nlohmann::json(static_cast<double>(bytes) / 1024.0)
                            : nlohmann::json(nullptr);
  };
  nlohmann::json j = {
      {"pid", pid},
      {"source", source},
      {"window_s", window_s},
      {"memory_kb",
       {{"pss", pss_kb},
        {"rss", rss_kb},
        {"pss_peak", pss_kb_peak},
        {"rss_peak", rss_kb_peak},
        {"samples", memory_samples}}},
      {"processes", processes},
      {"threads", threads},
      {"processes_peak", processes_peak},
      {"threads_peak", threads_peak},
      {"cpu_us", cpu_us},
      {"utime_us", utime_us},
      {"stime_us", stime_us},
      {"voluntary_switches", nvcsw},
      {"involuntary_switches", nivcsw},
      {"switches_complete", switches_complete},
      {"tcp_mem_bytes",
       {{"start", tcp_mem_bytes_start}, {"end", tcp_mem_bytes}, {"peak", tcp_mem_bytes_peak}}},
      {"sockets", sockets_measured ? nlohmann::json(sockets) : nlohmann::json(nullptr)},
      {"kernel_kb",
       {{"page_tables", pte_kb},
        {"stacks", kernel_stack_kb},
        {"socket_buffers", kb_or_null(socket_buffer_bytes)},
        {"socket_objects", kb_or_null(socket_object_bytes)}}},
      {"requests", server_requests ? nlohmann::json(*server_requests) : nlohmann::json(nullptr)},
      {"sampler_cpu_us", sampler_cpu_us},
      {"snapshot_ms_max", snapshot_ms_max},
      {"server_exited", server_exited},
      {"cpu_consistent", cpu_consistent},
  };
  return j;
}

ServerSample ServerSample::from_json(const nlohmann::json& j) {
  ServerSample s;
  auto u = [&](const nlohmann::json& v) { return v.is_null() ? 0 : v.get<std::uint64_t>(); };
  s.pid = j.at("pid").get<pid_t>();
  s.source = j.at("source").get<std::string>();
  s.window_s = j.at("window_s").get<double>();
  const auto& m = j.at("memory_kb");
  s.pss_kb = u(m.at("pss"));
  s.rss_kb = u(m.at("rss"));
  s.pss_kb_peak = u(m.at("pss_peak"));
  s.rss_kb_peak = u(m.at("rss_peak"));
  s.memory_samples = u(m.at("samples"));
  s.processes = u(j.at("processes"));
  s.threads = u(j.at("threads"));
  s.processes_peak = u(j.at("processes_peak"));
  s.threads_peak = u(j.at("threads_peak"));
  s.cpu_us = u(j.at("cpu_us"));
  s.utime_us = u(j.at("utime_us"));
  s.stime_us = u(j.at("stime_us"));
  s.nvcsw = u(j.at("voluntary_switches"));
  s.nivcsw = u(j.at("involuntary_switches"));
  s.switches_complete = j.at("switches_complete").get<bool>();
  const auto& t = j.at("tcp_mem_bytes");
  s.tcp_mem_bytes_start = u(t.at("start"));
  s.tcp_mem_bytes = u(t.at("end"));
  s.tcp_mem_bytes_peak = u(t.at("peak"));
  s.sockets_measured = !j.at("sockets").is_null();
  s.sockets = u(j.at("sockets"));
  const auto& k = j.at("kernel_kb");
  s.pte_kb = u(k.at("page_tables"));
  s.kernel_stack_kb = u(k.at("stacks"));
  auto bytes = [](const nlohmann::json& kb) {
    return kb.is_null() ? 0 : static_cast<std::uint64_t>(std::llround(kb.get<double>() * 1024.0));
  };
  s.socket_buffer_bytes = bytes(k.at("socket_buffers"));
  s.socket_object_bytes = bytes(k.at("socket_objects"));
  if (!j.at("requests").is_null()) s.server_requests = j.at("requests").get<std::uint64_t>();
  s.sampler_cpu_us = j.at("sampler_cpu_us").get<double>();
  s.snapshot_ms_max = j.at("snapshot_ms_max").get<double>();
  s.server_exited = j.at("server_exited").get<bool>();
  s.cpu_consistent = j.value("cpu_consistent", true);
  return s;
}

}  // namespace shootout::load
