#pragma once
// What the load-generator tests ask of one of our servers (tests/support/server_process.hpp):
// its URL, and its own request count. Any thread.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "sampler.hpp"
#include "server_process.hpp"

namespace shootout::test {

inline std::string own_url(const ServerProcess& s, const std::string& path = "/") {
  return "http://127.0.0.1:" + std::to_string(s.port()) + path;
}

// Asks our server for its stats file (SIGUSR1) and returns its `requests` counter.
inline std::uint64_t server_requests(pid_t pid, const std::string& stats) {
  shootout::load::SamplerConfig s{pid, stats, std::chrono::milliseconds(0)};
  const auto snap = shootout::load::snapshot_tree(s, false, true);
  EXPECT_TRUE(snap.from_stats_file) << "server did not write " << stats;
  return snap.server_requests.value_or(0);
}

}  // namespace shootout::test
