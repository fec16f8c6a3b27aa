// build/shootout-floor, the instrument bench/evented_vs_nginx.sh measures the kernel's share
// with: it must answer what wrk sends (one GET per read, and pipelined ones), close on EOF, and
// stop on SIGTERM, or the floor it reports is not a floor of the same work.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>

#include "client.hpp"
#include "server_process.hpp"

namespace shootout::test {
namespace {

using namespace std::chrono_literals;

struct Floor {
  Process proc{{SHOOTOUT_FLOOR_BINARY, "0"}};
  std::uint16_t port = wait_for_port(proc, 10s);
};

TEST(FloorServer, AnswersEachRequestOnAKeptAliveConnection) {
  Floor f;
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

TEST(FloorServer, StopsOnSigtermAndRefusesAWrongArgument) {
  Floor f;
  EXPECT_EQ(http_get(f.port, "/").status, 200);
  f.proc.signal(SIGTERM);
  EXPECT_EQ(f.proc.wait(10s), 0);

  for (const char* arg : {"not-a-port", "65536", "-1", ""}) {
    Process bad({SHOOTOUT_FLOOR_BINARY, arg});
    EXPECT_EQ(bad.wait(10s), 2) << arg;
    EXPECT_NE(bad.stderr_text().find("usage: shootout-floor"), std::string::npos) << arg;
  }
}

}  // namespace
}  // namespace shootout::test
