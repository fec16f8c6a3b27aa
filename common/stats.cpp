#include "stats.hpp"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <new>
#include <nlohmann/json.hpp>

namespace shootout {

ServerCounters& counters() {
  static ServerCounters* shared = [] {
    void* p = mmap(nullptr, sizeof(ServerCounters), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return new ServerCounters;  // still correct for one process
    return new (p) ServerCounters;
  }();
  return *shared;
}

namespace {

std::int64_t monotonic_now_ns() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

std::int64_t tv_us(const timeval& t) { return std::int64_t{t.tv_sec} * 1'000'000 + t.tv_usec; }

struct Reaped {
  pid_t pid;
  std::int64_t at_ns, utime_us, stime_us, nvcsw, nivcsw;
};

// The reap log: a ring, the newest at (total - 1) % size.
struct ReapLog {
  std::mutex mu;
  std::array<Reaped, kReapLogSize> ring{};
  std::uint64_t total = 0;
  std::int64_t overwritten_at_ns = -1;  // when the newest entry overwritten had been reaped
};

ReapLog& reap_log() {
  static ReapLog* log = new ReapLog;  // never destroyed: reaps may come during exit
  return *log;
}

nlohmann::json reaped_json() {
  ReapLog& log = reap_log();
  const std::int64_t since_ns = monotonic_now_ns() - std::int64_t{kReapLogSeconds} * 1'000'000'000;
  std::lock_guard lock(log.mu);
  const std::int64_t complete = std::max(since_ns, log.overwritten_at_ns + 1);
  nlohmann::json recent = nlohmann::json::array();
  const std::uint64_t kept = std::min<std::uint64_t>(log.total, kReapLogSize);
  for (std::uint64_t i = log.total - kept; i < log.total; ++i) {
    const Reaped& r = log.ring[i % kReapLogSize];
    if (r.at_ns >= complete)
      recent.push_back({r.pid, r.at_ns, r.utime_us, r.stime_us, r.nvcsw, r.nivcsw});
  }
  return {{"total", log.total}, {"complete_since_ns", complete}, {"recent", std::move(recent)}};
}

nlohmann::json usage_json(int who) {
  rusage u{};
  getrusage(who, &u);
  return {{"utime_us", tv_us(u.ru_utime)}, {"stime_us", tv_us(u.ru_stime)},
          {"nvcsw", u.ru_nvcsw},           {"nivcsw", u.ru_nivcsw},
          {"maxrss_kb", u.ru_maxrss},      {"minflt", u.ru_minflt}};
}
}  // namespace

void note_reaped(pid_t pid, const rusage& usage) {
  ReapLog& log = reap_log();
  const Reaped r{pid,
                 monotonic_now_ns(),
                 tv_us(usage.ru_utime),
                 tv_us(usage.ru_stime),
                 usage.ru_nvcsw,
                 usage.ru_nivcsw};
  std::lock_guard lock(log.mu);
  Reaped& slot = log.ring[log.total % kReapLogSize];
  if (log.total >= kReapLogSize) log.overwritten_at_ns = slot.at_ns;
  slot = r;
  ++log.total;
}

std::string stats_json(const std::string& model) {
  auto& c = counters();
  // RUSAGE_CHILDREN and the log agree (every child in the log is in RUSAGE_CHILDREN, and the
  // reverse for the log's span) because the callers serialize reaping and the report: the
  // forked model reaps and writes it on its control thread under one mutex, the --workers
  // master on its loop thread.
  nlohmann::json j = {
      {"pid", getpid()},
      {"model", model},
      {"monotonic_ns", monotonic_now_ns()},
      {"requests", c.requests.load(std::memory_order_relaxed)},
      {"connections", c.connections.load(std::memory_order_relaxed)},
      {"errors", c.errors.load(std::memory_order_relaxed)},
      {"self", usage_json(RUSAGE_SELF)},
      {"children", usage_json(RUSAGE_CHILDREN)},
  };
  j["reaped"] = reaped_json();
  return j.dump();
}

bool write_stats_file(const std::string& path, const std::string& model) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return false;
  const std::string body = stats_json(model) + "\n";
  const bool ok = std::fwrite(body.data(), 1, body.size(), f) == body.size();
  if (std::fclose(f) != 0 || !ok) return false;
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace shootout
