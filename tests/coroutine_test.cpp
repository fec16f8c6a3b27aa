// The coroutine model's own promises, beyond the shared integration suite: many idle fibers are
// cheap, a parked fiber (/sleep) does not hold up its neighbours, inline /cpu does (fibers are
// not preempted) and --offload-cpu cures it, and running out of descriptors does not wedge the
// acceptor. Every test starts the real build/shootout on an ephemeral port.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "client.hpp"
#include "load.hpp"
#include "server_process.hpp"

namespace shootout::test {
namespace {

class CoroutineTest : public ::testing::Test {
 protected:
  static ServerProcess start(std::vector<std::string> extra = {}, long nofile = 0) {
    std::vector<std::string> args = {"--model", "coroutine"};
    args.insert(args.end(), extra.begin(), extra.end());
    return ServerProcess(args, nofile);
  }
  static void stop_cleanly(ServerProcess& s) {
    EXPECT_EQ(s.stop(), 0) << s.process().stderr_text();
  }
};

// True if a response (or anything) is already waiting on c, without blocking.
bool has_pending_bytes(Conn& c) {
  if (!c.buffer().empty()) return true;
  char byte;
  return ::recv(c.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

std::string stats_path(const char* tag) {
  return testing::TempDir() + "coroutine-" + tag + "-" + std::to_string(getpid()) + ".json";
}

TEST_F(CoroutineTest, TenThousandIdleConnectionsAreHeldAndAnswered) {
  constexpr int kConns = 10'000;
  const auto [soft, hard] = load::raise_fd_limit();
  if (soft < kConns + 100)
    GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << hard << " is below " << kConns + 100;
  auto s = start({}, kConns + 1000);
  std::vector<Conn> conns;
  conns.reserve(kConns);
  for (int i = 0; i < kConns; ++i) conns.emplace_back(s.port());
  // All of them held open and idle at once: the server has accepted every one.
  int server_fds = 0;
  for (int i = 0; i < 200 && (server_fds = fd_count(s.pid())) < kConns; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_GE(server_fds, kConns);
  for (auto& c : conns) ASSERT_TRUE(c.send(get_request("/")));
  int answered = 0;
  for (auto& c : conns) answered += read_response(c).status == 200 ? 1 : 0;
  EXPECT_EQ(answered, kConns);
  stop_cleanly(s);
}

// Idle fibers park with only the model's frames on their own stacks (the parser runs on the
// thread's shared SessionStack) and their timeouts live on the reactor's coarse deadline list.
// Connections that parsed a request, then sat idle across several deadline sweeps, must all
// still be answered correctly, pipelined batches and multi-chunk bodies included.
TEST_F(CoroutineTest, IdleConnectionsAreAnsweredCorrectlyAfterIdling) {
  constexpr int kConns = 2'000;
  const auto [soft, hard] = load::raise_fd_limit();
  if (soft < kConns + 100)
    GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << hard << " is below " << kConns + 100;
  auto s = start({"--idle-timeout", "60000"}, kConns + 1000);
  std::vector<Conn> conns;
  conns.reserve(kConns);
  for (int i = 0; i < kConns; ++i) {
    conns.emplace_back(s.port());
    ASSERT_TRUE(conns.back().send(get_request("/")));
  }
  int first = 0;
  for (auto& c : conns) first += read_response(c).status == 200 ? 1 : 0;
  ASSERT_EQ(first, kConns);
  // Idle past several sweeps of the deadline list (one per 100 ms at most).
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string batch = get_request("/") + get_request("/bytes?n=20000") + get_request("/");
  for (auto& c : conns) ASSERT_TRUE(c.send(batch));
  int answered = 0;
  for (auto& c : conns) {
    const auto a = read_response(c);
    const auto b = read_response(c);
    const auto d = read_response(c);
    answered += a.status == 200 && b.status == 200 && b.body.size() == 20'000u && d.status == 200 &&
                c.buffer().empty();
  }
  EXPECT_EQ(answered, kConns);
  stop_cleanly(s);
}

TEST_F(CoroutineTest, SleepingFiberDoesNotDelayOtherClients) {
  auto s = start();
  // Long enough, on this host now, for the other client to be answered many times over.
  const long sleep_ms = std::max(1000L, 100 * slowest_round_trip_ms(s.port()));
  Conn sleeper(s.port());
  ASSERT_TRUE(sleeper.send(get_request("/sleep?ms=" + std::to_string(sleep_ms))));
  // Another client is answered while the sleeping fiber's response is still pending.
  Conn other(s.port());
  ASSERT_TRUE(other.send(get_request("/")));
  EXPECT_EQ(read_response(other).status, 200);
  EXPECT_FALSE(has_pending_bytes(sleeper)) << "the sleep answered before the other client";
  auto r = read_response(sleeper);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "slept " + std::to_string(sleep_ms) + " ms\n");
  stop_cleanly(s);
}

// How long a test waits for the answer to a /cpu burn, or for one stuck behind it: a burn counts
// CPU time, which a host with busy loops beside the test hands out at a fraction of the clock.
constexpr int kBurnBoundMs = 300'000;

TEST_F(CoroutineTest, InlineCpuStarvesTheOtherFibersOfItsThread) {
  const std::string stats = stats_path("inline");
  auto s = start({"--stats-file", stats});
  Conn burner(s.port());
  // A burn is CPU time, so on a loaded host it takes many times as long on the clock: the
  // answers are waited for up to kBurnBound, which only a broken server reaches.
  burner.set_timeout_ms(kBurnBoundMs);
  ASSERT_TRUE(burner.send(get_request("/cpu?us=700000")));
  ASSERT_TRUE(await_requests(s, stats, 1));  // the burn has begun on the only scheduler thread
  Conn other(s.port());
  other.set_timeout_ms(kBurnBoundMs);
  ASSERT_TRUE(other.send(get_request("/")));
  EXPECT_EQ(read_response(other).status, 200);
  // The fiber never yielded: by the time the neighbour got its answer, the burn was over.
  EXPECT_TRUE(has_pending_bytes(burner)) << "the neighbour was answered during the burn";
  EXPECT_EQ(read_response(burner).body, "burned 700000 us\n");
  stop_cleanly(s);
}

TEST_F(CoroutineTest, OffloadedCpuDoesNotStarveOtherFibers) {
  const std::string stats = stats_path("offload");
  auto s = start({"--offload-cpu", "--stats-file", stats});
  // Long enough, on this host now, for the neighbour to be answered many times over.
  const long burn_us = 1000 * std::max(700L, 100 * slowest_round_trip_ms(s.port()));
  const std::uint64_t before = requests_seen(s, stats);
  Conn burner(s.port());
  burner.set_timeout_ms(kBurnBoundMs);
  ASSERT_TRUE(burner.send(get_request("/cpu?us=" + std::to_string(burn_us))));
  ASSERT_TRUE(await_requests(s, stats, before + 1));
  Conn other(s.port());
  other.set_timeout_ms(kBurnBoundMs);
  ASSERT_TRUE(other.send(get_request("/")));
  EXPECT_EQ(read_response(other).status, 200);
  EXPECT_FALSE(has_pending_bytes(burner)) << "the burn finished before the neighbour's answer";
  EXPECT_EQ(read_response(burner).body, "burned " + std::to_string(burn_us) + " us\n");
  stop_cleanly(s);
}

TEST_F(CoroutineTest, EveryStackKindServes) {
  for (const char* kind : {"protected", "fixed", "pooled"}) {
    auto s = start({"--stack", kind, "--stack-size", "32768"});
    Conn c(s.port());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(c.send(get_request("/bytes?n=100000")));
      EXPECT_EQ(read_response(c).body.size(), 100'000u) << kind;
    }
    stop_cleanly(s);
  }
}

TEST_F(CoroutineTest, BadStackSizeIsAClearError) {
  Process p(
      {shootout_binary(), "serve", "--model", "coroutine", "--port", "0", "--stack-size", "100"});
  EXPECT_EQ(p.wait(std::chrono::seconds(10)), 2);
  EXPECT_NE(p.stderr_text().find("--stack-size"), std::string::npos) << p.stderr_text();
}

TEST_F(CoroutineTest, RunningOutOfDescriptorsNeitherCrashesNorWedges) {
  auto s = start({}, 64);  // a few descriptors: the 60-odd connections below exhaust them
  std::vector<Conn> conns;
  for (int i = 0; i < 100; ++i) conns.emplace_back(s.port());  // the kernel queues the rest
  conns.front().send(get_request("/"));
  EXPECT_EQ(read_response(conns.front()).status, 200);
  conns.clear();  // descriptors come back: the acceptor resumes
  EXPECT_EQ(http_get(s.port(), "/").status, 200);
  EXPECT_TRUE(s.process().running());
  stop_cleanly(s);
}

}  // namespace
}  // namespace shootout::test
