// The integration suite: one set of tests, run against every model and configuration in
// variants.hpp. Each test starts the real build/shootout as a child process on an ephemeral port
// and talks to it over TCP. A new model joins by adding its lines to
// tests/support/variants.hpp.
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "client.hpp"
#include "server_process.hpp"
#include "variants.hpp"

namespace shootout::test {
namespace {

// Orphans of a server (a forked child that outlived its parent) are re-parented to the test
// process, so "no process left behind" can be checked after the server exits.
class SubreaperEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { prctl(PR_SET_CHILD_SUBREAPER, 1); }
};
const auto* const kSubreaper = ::testing::AddGlobalTestEnvironment(new SubreaperEnvironment);

class ServerTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (std::string why = unavailable(GetParam()); !why.empty()) GTEST_SKIP() << why;
  }
  ServerProcess start(std::vector<std::string> extra = {}) {
    auto args = GetParam().args;
    args.insert(args.end(), extra.begin(), extra.end());
    return ServerProcess(args);
  }
  // Stops the server and checks the clean-stop promise: exit 0 and nothing left behind.
  static void stop_cleanly(ServerProcess& s) {
    EXPECT_EQ(s.stop(), 0) << s.process().stderr_text();
    EXPECT_TRUE(children_of(getpid()).empty()) << "a process of the server outlived it";
  }
};

TEST_P(ServerTest, RootAnswersHelloWorld) {
  auto s = start();
  auto r = http_get(s.port(), "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "Hello, World!");
  EXPECT_EQ(r.headers["content-length"], "13");
  EXPECT_EQ(r.headers["server"], "shootout");
  EXPECT_FALSE(r.headers["date"].empty());
  EXPECT_TRUE(r.keep_alive);
  stop_cleanly(s);
}

TEST_P(ServerTest, SleepCpuAndBytesRoutes) {
  auto s = start();
  auto sleep = http_get(s.port(), "/sleep?ms=30");
  EXPECT_EQ(sleep.status, 200);
  EXPECT_EQ(sleep.body, "slept 30 ms\n");
  auto cpu = http_get(s.port(), "/cpu?us=2000");
  EXPECT_EQ(cpu.status, 200);
  EXPECT_EQ(cpu.body, "burned 2000 us\n");
  auto bytes = http_get(s.port(), "/bytes?n=3000000");
  EXPECT_EQ(bytes.status, 200);
  ASSERT_EQ(bytes.body.size(), 3'000'000u);
  EXPECT_EQ(bytes.body.find_first_not_of('x'), std::string::npos);
  EXPECT_EQ(http_get(s.port(), "/bytes?n=0").body, "");
  EXPECT_EQ(http_get(s.port(), "/sleep?ms=abc").status, 400);
  EXPECT_EQ(http_get(s.port(), "/cpu").status, 400);
  stop_cleanly(s);
}

TEST_P(ServerTest, FileRouteStaysInsideItsRoot) {
  namespace fs = std::filesystem;
  fs::path root = fs::temp_directory_path() / ("shootout-root-" + std::to_string(getpid()));
  fs::create_directories(root / "sub");
  std::ofstream(root / "hello.txt") << "file body\n";
  std::ofstream(fs::temp_directory_path() / "shootout-secret.txt") << "secret\n";
  fs::remove(root / "link.txt");
  fs::create_symlink(fs::temp_directory_path() / "shootout-secret.txt", root / "link.txt");
  auto s = start({"--root", root.string()});
  auto ok = http_get(s.port(), "/file?name=hello.txt");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "file body\n");
  EXPECT_EQ(http_get(s.port(), "/file?name=missing.txt").status, 404);
  EXPECT_EQ(http_get(s.port(), "/file?name=../shootout-secret.txt").status, 400);
  EXPECT_EQ(http_get(s.port(), "/file?name=%2e%2e%2fshootout-secret.txt").status, 400);
  EXPECT_EQ(http_get(s.port(), "/file?name=..").status, 400);
  EXPECT_EQ(http_get(s.port(), "/file?name=/etc/passwd").status, 400);
  EXPECT_EQ(http_get(s.port(), "/file?name=link.txt").status, 403);
  EXPECT_EQ(http_get(s.port(), "/file?name=sub").status, 403);
  stop_cleanly(s);
  fs::remove_all(root);
}

TEST_P(ServerTest, ErrorsAndMethods) {
  auto s = start();
  EXPECT_EQ(http_get(s.port(), "/nope").status, 404);
  {
    Conn c(s.port());
    c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    auto r = read_response(c);
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(r.headers["allow"], "GET, HEAD");
    c.send(get_request("/"));  // the connection survives a 405
    EXPECT_EQ(read_response(c).status, 200);
  }
  {
    Conn c(s.port());
    c.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    auto r = read_response(c, true);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["content-length"], "13");
    EXPECT_EQ(r.body, "");
  }
  stop_cleanly(s);
}

TEST_P(ServerTest, MalformedRequestsGet4xxOr505AndClose) {
  auto s = start();
  // 505: a well-formed request line of an HTTP major version other than 1 (RFC 9110 6.2).
  const std::pair<const char*, int> cases[] = {
      {"GARBAGE\r\n\r\n", 400},
      {"GET / HTTP/9.9\r\n\r\n", 505},
      {"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400}};
  for (const auto& [bad, status] : cases) {
    Conn c(s.port());
    c.send(bad);
    auto r = read_response(c);
    EXPECT_EQ(r.status, status) << bad;
    EXPECT_FALSE(r.keep_alive);
    EXPECT_TRUE(c.closed_by_peer()) << bad;
  }
  stop_cleanly(s);
}

TEST_P(ServerTest, OversizedHeaderGets431BodyGets413) {
  auto s = start({"--header-limit", "1024", "--body-limit", "1000"});
  {
    Conn c(s.port());
    c.send(get_request("/", "X-Big: " + std::string(4000, 'a') + "\r\n"));
    EXPECT_EQ(read_response(c).status, 431);
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    Conn c(s.port());
    c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'b'));
    EXPECT_EQ(read_response(c).status, 413);
    EXPECT_TRUE(c.closed_by_peer());
  }
  stop_cleanly(s);
}

TEST_P(ServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  auto s = start();
  Conn c(s.port());
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(c.send(get_request("/")));
    auto r = read_response(c);
    ASSERT_EQ(r.status, 200) << "request " << i;
    ASSERT_EQ(r.body, "Hello, World!");
  }
  stop_cleanly(s);
}

TEST_P(ServerTest, PipelinedRequestsAnsweredInOrder) {
  auto s = start();
  Conn c(s.port());
  std::string batch;
  std::vector<std::string> expect;
  for (int i = 0; i < 60; ++i) {
    if (i % 20 == 7) {
      batch += get_request("/sleep?ms=5");
      expect.push_back("slept 5 ms\n");
    } else if (i % 20 == 13) {
      batch += get_request("/bytes?n=200000");
      expect.push_back(std::string(200000, 'x'));
    } else {
      batch += get_request("/");
      expect.push_back("Hello, World!");
    }
  }
  ASSERT_TRUE(c.send(batch));
  for (std::size_t i = 0; i < expect.size(); ++i) {
    auto r = read_response(c);
    ASSERT_EQ(r.status, 200) << "response " << i;
    ASSERT_EQ(r.body, expect[i]) << "response " << i;
  }
  stop_cleanly(s);
}

TEST_P(ServerTest, ConnectionCloseAndHttp10AreHonoured) {
  auto s = start();
  {
    Conn c(s.port());
    c.send(get_request("/", "Connection: close\r\n"));
    auto r = read_response(c);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["connection"], "close");
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    Conn c(s.port());
    c.send("GET / HTTP/1.0\r\n\r\n");
    EXPECT_EQ(read_response(c).status, 200);
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    Conn c(s.port());
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    auto r = read_response(c);
    EXPECT_EQ(r.headers["connection"], "keep-alive");
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    EXPECT_EQ(read_response(c).status, 200);
  }
  stop_cleanly(s);
}

TEST_P(ServerTest, ParserSeesRequestsSplitAnywhere) {
  auto s = start();
  Conn c(s.port());
  std::string req = get_request("/bytes?n=10", "X-Long-Header: " + std::string(300, 'q') + "\r\n");
  for (char ch : req) ASSERT_TRUE(c.send(std::string_view(&ch, 1)));
  auto r = read_response(c);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "xxxxxxxxxx");
  stop_cleanly(s);
}

TEST_P(ServerTest, TwoHundredConcurrentConnections) {
  auto s = start();
  constexpr int kConns = 200;
  std::vector<Conn> conns;
  for (int i = 0; i < kConns; ++i) conns.emplace_back(s.port());
  for (int round = 0; round < 3; ++round) {
    for (auto& c : conns) ASSERT_TRUE(c.send(get_request("/")));
    for (auto& c : conns) ASSERT_EQ(read_response(c).status, 200) << "round " << round;
  }
  stop_cleanly(s);
}

TEST_P(ServerTest, EchoReturnsEveryByte) {
  auto s = start({"--handler", "echo"});
  std::mt19937 rng(42);
  std::vector<std::thread> clients;
  std::atomic<int> good{0};
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, seed = rng()] {
      std::mt19937 r(seed);
      Conn c(s.port());
      std::string payload(200'000 + r() % 300'000, '\0');
      for (auto& ch : payload) ch = static_cast<char>(r());
      std::thread writer([&] {
        std::string_view rest = payload;
        while (!rest.empty()) {  // random splits
          std::size_t n = std::min<std::size_t>(rest.size(), 1 + r() % 9000);
          if (!c.send(rest.substr(0, n))) return;
          rest.remove_prefix(n);
        }
      });
      std::string got;
      while (got.size() < payload.size()) {
        std::string more = c.read_some();
        if (more.empty()) break;
        got += more;
      }
      writer.join();
      if (got == payload) ++good;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(good.load(), 8);
  stop_cleanly(s);
}

TEST_P(ServerTest, SlowClientTimesOut) {
  auto s = start({"--request-timeout", "300", "--idle-timeout", "300"});
  Conn slow(s.port());
  slow.send("GET / HTTP/1.1\r\nHo");  // and never more: slowloris
  EXPECT_TRUE(slow.closed_by_peer());
  Conn idle(s.port());
  idle.send(get_request("/"));
  EXPECT_EQ(read_response(idle).status, 200);
  EXPECT_TRUE(idle.closed_by_peer());  // idle keep-alive connection closed after its timeout
  EXPECT_EQ(http_get(s.port(), "/").status, 200);
  stop_cleanly(s);
}

TEST_P(ServerTest, ClientResetMidResponseDoesNotHurtTheServer) {
  auto s = start();
  for (int i = 0; i < 20; ++i) {
    Conn c(s.port());
    c.send(get_request("/bytes?n=20000000"));
    c.read_some();
    linger lg{1, 0};  // close with RST while the server is still writing
    setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  EXPECT_EQ(http_get(s.port(), "/").status, 200);
  stop_cleanly(s);
}

TEST_P(ServerTest, NoDescriptorLeakAfterManyConnections) {
  auto s = start();
  ASSERT_EQ(http_get(s.port(), "/").status, 200);
  const int baseline = fd_count(s.pid());
  for (int i = 0; i < 300; ++i) ASSERT_EQ(http_get(s.port(), "/").status, 200);
  int now = fd_count(s.pid());
  for (int i = 0; i < 1200 && now > baseline; ++i) {  // closes may still be in flight
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    now = fd_count(s.pid());
  }
  EXPECT_LE(now, baseline);
  stop_cleanly(s);
}

TEST_P(ServerTest, SigtermFinishesInFlightResponseAndClosesIdle) {
  const std::string stats = testing::TempDir() + "stats-" + std::to_string(getpid()) + ".json";
  auto s = start({"--stats-file", stats});
  Conn idle(s.port());
  idle.send(get_request("/"));
  ASSERT_EQ(read_response(idle).status, 200);
  Conn busy(s.port());
  busy.send(get_request("/sleep?ms=700"));
  // Stop only once the server has started on the request (its count reaches 2).
  ASSERT_TRUE(await_requests(s, stats, 2));
  s.process().signal(SIGTERM);
  auto r = read_response(busy);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "slept 700 ms\n");
  EXPECT_TRUE(idle.closed_by_peer());
  EXPECT_EQ(s.process().wait(std::chrono::seconds(30)), 0) << s.process().stderr_text();
  EXPECT_TRUE(children_of(getpid()).empty());
  EXPECT_THROW(Conn{s.port()}, std::runtime_error);  // nobody listens any more
}

// A response that outlasts --grace does not hold the server hostage: it gives up, says so, and
// exits 1 without leaving a process behind.
TEST_P(ServerTest, GracePeriodBoundsTheStop) {
  const std::string stats = testing::TempDir() + "grace-" + std::to_string(getpid()) + ".json";
  auto s = start({"--grace", "200", "--stats-file", stats});
  Conn busy(s.port());
  busy.send(get_request("/sleep?ms=20000"));
  ASSERT_TRUE(await_requests(s, stats, 1));
  s.process().signal(SIGTERM);
  EXPECT_EQ(s.process().wait(std::chrono::seconds(30)), 1);
  EXPECT_NE(s.process().stderr_text().find("grace"), std::string::npos);
  EXPECT_TRUE(children_of(getpid()).empty());
}

TEST_P(ServerTest, SigintAlsoStopsCleanly) {
  auto s = start();
  EXPECT_EQ(http_get(s.port(), "/").status, 200);
  s.process().signal(SIGINT);
  EXPECT_EQ(s.process().wait(std::chrono::seconds(30)), 0);
}

// The worked example handler (examples/lines_handler.cpp) runs unchanged under every model,
// loaded as a plug-in (build/plugins/lines.so; tests/plugin_test.cpp has the rest).
TEST_P(ServerTest, ExampleLinesHandler) {
  const auto lib = std::filesystem::path(shootout_binary()).parent_path() / "plugins/lines.so";
  auto s = start({"--handler-lib", lib.string(), "--handler", "lines"});
  Conn c(s.port());
  c.send("ECHO hello\nCOU");
  c.send("NT\nSLEEP 20\nECHO after sleep\nBOGUS\nQUIT\n");
  std::string all = c.read_all();  // QUIT closes the connection
  EXPECT_EQ(all, "hello\n2\nOK\nafter sleep\nERR unknown command\nBYE\n");
  stop_cleanly(s);
}

INSTANTIATE_TEST_SUITE_P(Models, ServerTest, ::testing::ValuesIn(all_variants()), variant_name);

}  // namespace
}  // namespace shootout::test
