// build/shootout-floor and build/shootout-floor-uring, the instruments bench/evented_vs_nginx.sh
// measures the kernel's share with (under readiness and under completion): each must answer
// what wrk sends (one GET per read, and pipelined ones), close on EOF, and stop on SIGTERM, or
// the floor it reports is not a floor of the same work.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "client.hpp"
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

}  // namespace
}  // namespace shootout::test
