#include "stats.hpp"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
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
nlohmann::json usage_json(int who) {
  rusage u{};
  getrusage(who, &u);
  auto us = [](const timeval& t) { return std::int64_t{t.tv_sec} * 1'000'000 + t.tv_usec; };
  return {{"utime_us", us(u.ru_utime)}, {"stime_us", us(u.ru_stime)}, {"nvcsw", u.ru_nvcsw},
          {"nivcsw", u.ru_nivcsw},      {"maxrss_kb", u.ru_maxrss},   {"minflt", u.ru_minflt}};
}
}  // namespace

std::string stats_json(const std::string& model) {
  auto& c = counters();
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  nlohmann::json j = {
      {"pid", getpid()},
      {"model", model},
      {"monotonic_ns", std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec},
      {"requests", c.requests.load(std::memory_order_relaxed)},
      {"connections", c.connections.load(std::memory_order_relaxed)},
      {"errors", c.errors.load(std::memory_order_relaxed)},
      {"self", usage_json(RUSAGE_SELF)},
      {"children", usage_json(RUSAGE_CHILDREN)},
  };
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
