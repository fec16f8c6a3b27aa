// build/shootout-floor and build/shootout-floor-uring, the instruments bench/evented_vs_nginx.sh
// measures the kernel's share with (under readiness and under completion): each must answer
// what wrk sends (one GET per read, and pipelined ones), close on EOF, and stop on SIGTERM, or
// the floor it reports is not a floor of the same work. And build/shootout-floor-load, the
// client-side floor of bench/loadgen_vs_wrk.sh: the answers it counts must be answers the
// server gave, or its CPU per request is not per request.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client.hpp"
#include "files.hpp"
#include "server_process.hpp"

namespace shootout::test {
namespace {

using namespace std::chrono_literals;

// The binaries built here: the epoll floor always, the io_uring floor with liburing.
std::vector<std::string> floors() {
  std::vector<std::string> out{SHOOTOUT_FLOOR_BINARY};
#ifdef SHOOTOUT_FLOOR_URING_BINARY
  out.emplace_back(SHOOTOUT_FLOOR_URING_BINARY);
#endif
  return out;
}

struct Floor {
  explicit Floor(const std::string& binary) : proc({binary, "0"}) {}
  Process proc;
  std::uint16_t port = wait_for_port(proc, 10s);
};

class FloorServer : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    // The io_uring floor exits 2 where io_uring is forbidden: that is not what is tested here.
    Process probe({GetParam(), "0"});
    try {
      wait_for_port(probe, 10s);
    } catch (const std::exception&) {
      if (probe.wait(10s) == 2) GTEST_SKIP() << probe.stderr_text();
      throw;
    }
    probe.signal(SIGTERM);
    probe.wait(10s);
  }
};

TEST_P(FloorServer, AnswersEachRequestOnAKeptAliveConnection) {
  Floor f(GetParam());
  Conn c(f.port);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send(get_request("/")));
    Response r = read_response(c);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "Hello, World!");
    EXPECT_TRUE(r.keep_alive);
  }
  // Two requests in one write: two answers, in one send.
  ASSERT_TRUE(c.send(get_request("/") + get_request("/")));
  EXPECT_EQ(read_response(c).body, "Hello, World!");
  EXPECT_EQ(read_response(c).body, "Hello, World!");
  c.shutdown_write();
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_P(FloorServer, StopsOnSigtermAndRefusesAWrongArgument) {
  Floor f(GetParam());
  EXPECT_EQ(http_get(f.port, "/").status, 200);
  f.proc.signal(SIGTERM);
  EXPECT_EQ(f.proc.wait(10s), 0);

  for (const char* arg : {"not-a-port", "65536", "-1", ""}) {
    Process bad({GetParam(), arg});
    EXPECT_EQ(bad.wait(10s), 2) << arg;
    EXPECT_NE(bad.stderr_text().find("usage: shootout-floor"), std::string::npos) << arg;
  }
}

INSTANTIATE_TEST_SUITE_P(Floors, FloorServer, ::testing::ValuesIn(floors()),
                         [](const auto& param_info) {
                           return param_info.param.find("uring") != std::string::npos ? "uring"
                                                                                      : "epoll";
                         });

#ifdef SHOOTOUT_FLOOR_LOAD_BINARY
// The answers it counts are the server's: the server saw one request for each, one more for
// the exchange that learns the answer's length, and at most one per connection whose answer
// was still on its way when the run ended; no errors on a server that keeps every connection.
TEST(FloorLoad, CountsAnswersTheServerGaveOnEveryConnection) {
  const auto dir = temp_dir("floor-load");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "evented", "--stats-file", stats});
  constexpr int kConnections = 8;
  Process load({SHOOTOUT_FLOOR_LOAD_BINARY, std::to_string(server.port()),
                std::to_string(kConnections), "1"});
  const int status = load.wait(60s);
  if (status == 2 && load.stderr_text().find("io_uring") != std::string::npos)
    GTEST_SKIP() << load.stderr_text();
  ASSERT_EQ(status, 0) << load.stderr_text();
  const auto out = nlohmann::json::parse(load.stdout_text());
  const auto answers = out.at("responses_total").get<std::uint64_t>();
  EXPECT_EQ(out.at("connections"), kConnections);
  EXPECT_EQ(out.at("errors"), 0) << out.dump();
  EXPECT_GT(answers, static_cast<std::uint64_t>(kConnections)) << out.dump();
  // It has exited: every request it sent is at the server or on its way there.
  ASSERT_TRUE(await_requests(server, stats, answers + 1));
  const auto seen = requests_seen(server, stats);
  EXPECT_GE(seen, answers + 1);
  EXPECT_LE(seen, answers + 1 + kConnections);
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

TEST(FloorLoad, RefusesAWrongCommandLineWithItsUsage) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {}, {"80"}, {"80", "0", "1"}, {"80", "20001", "1"}, {"x", "1", "1"}, {"80", "1", "0"}}) {
    args.insert(args.begin(), SHOOTOUT_FLOOR_LOAD_BINARY);
    Process bad(args);
    EXPECT_EQ(bad.wait(10s), 2) << args.size();
    EXPECT_NE(bad.stderr_text().find("usage: shootout-floor-load"), std::string::npos);
  }
}
#endif

}  // namespace
}  // namespace shootout::test
