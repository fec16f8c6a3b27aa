// The load generator and server sampler against real servers: a real nginx started here, and
// build/shootout serve. Every run is bounded (short -d, few connections, 127.0.0.1 only) and
// asserts counts and orderings, never the speed of this machine.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>
#include <tuple>

#include "client.hpp"
#include "files.hpp"
#include "histogram.hpp"
#include "load.hpp"
#include "load_support.hpp"
#include "sampler.hpp"
#include "server_process.hpp"

namespace shootout::load {
// Test names and messages say "asio" and "uring", "closed" and "idle", not the enums' bytes.
inline void PrintTo(EngineKind e, std::ostream* os) { *os << engine_name(e); }
inline void PrintTo(Mode m, std::ostream* os) { *os << mode_name(m); }
}  // namespace shootout::load

namespace {

using namespace std::chrono_literals;
using shootout::load::EngineKind;
using shootout::load::LoadConfig;
using shootout::load::LoadResult;
using shootout::load::Mode;
using shootout::test::Process;
using shootout::test::ServerProcess;
using shootout::test::temp_dir;

constexpr const char* kNginx = "/usr/sbin/nginx";

// A free loopback port: bind port 0, read it, close. nginx cannot report a port it picked.
std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool port_accepts(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// nginx, one worker, in the foreground, with a few routes: / answers 200, /missing 404, and
// /close drops the connection without answering (444).
class Nginx {
 public:
  explicit Nginx(const std::string& extra = "keepalive_requests 1000000;")
      : dir_(temp_dir("loadgen-nginx")), port_(free_port()) {
    std::ofstream(dir_ / "nginx.conf")
        << "worker_processes 1;\ndaemon off;\n"
        << "pid " << (dir_ / "nginx.pid").string() << ";\n"
        << "error_log " << (dir_ / "error.log").string() << ";\n"
        << "worker_rlimit_nofile 4096;\nevents { worker_connections 4096; }\n"
        << "http { access_log off; " << extra << "\n"
        << "  client_body_temp_path " << dir_.string() << ";\n"
        << "  server { listen 127.0.0.1:" << port_ << ";\n"
        << "    location / { return 200 \"Hello, World!\"; }\n"
        << "    location = /missing { return 404; }\n"
        << "    location = /close { return 444; }\n"
        << "  }\n}\n";
    proc_ = std::make_unique<Process>(std::vector<std::string>{kNginx, "-p", dir_.string(), "-e",
                                                               (dir_ / "error.log").string(), "-c",
                                                               (dir_ / "nginx.conf").string()});
    for (int i = 0; i < 6000 && !port_accepts(port_); ++i) std::this_thread::sleep_for(10ms);
  }
  ~Nginx() {
    proc_->signal(SIGTERM);  // the master stops its worker, then exits
    proc_->wait(10s);
    std::filesystem::remove_all(dir_);
  }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  pid_t pid() const { return proc_->pid(); }

 private:
  std::filesystem::path dir_;
  std::uint16_t port_;
  std::unique_ptr<Process> proc_;
};

#define SKIP_WITHOUT_NGINX()            \
  if (!std::filesystem::exists(kNginx)) \
  GTEST_SKIP() << kNginx << " is not installed (apt-get install nginx-light); nginx tests skipped"

LoadConfig quick(const std::string& url, int connections = 4, std::chrono::milliseconds d = 1s) {
  LoadConfig c;
  c.url = url;
  c.connections = connections;
  c.threads = 1;
  c.duration = d;
  return c;
}

using shootout::test::own_url;
using shootout::test::server_requests;

// What the load generator does is the same on both engines (engine.hpp): the suites below run
// once on each. The uring runs skip, naming the reason, where this process cannot use io_uring.
class EngineTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override {
    if (GetParam() == EngineKind::uring && !shootout::load::uring_engine_unavailable().empty())
      GTEST_SKIP() << "--engine uring: " << shootout::load::uring_engine_unavailable();
  }
  LoadConfig quick(const std::string& url, int connections = 4,
                   std::chrono::milliseconds d = 1s) const {
    LoadConfig c = ::quick(url, connections, d);
    c.engine = GetParam();
    return c;
  }
};

std::string engine_test_name(const ::testing::TestParamInfo<EngineKind>& p) {
  return shootout::load::engine_name(p.param);
}

class LoadgenNginx : public EngineTest {};
class LoadgenOwnServer : public EngineTest {};

// --- histogram ---------------------------------------------------------------------------

TEST(LoadgenHistogram, QuantilesHaveThreeSignificantDigits) {
  shootout::load::LatencyHistogram h;
  for (int v = 1; v <= 100'000; ++v) h.record(v);  // 1 µs .. 100 ms, uniform
  EXPECT_NEAR(h.quantile(0.5), 50'000, 50);
  EXPECT_NEAR(h.quantile(0.99), 99'000, 99);
  EXPECT_EQ(h.quantile(1.0), 100'000);
  EXPECT_EQ(h.summary().min_us, 1);
  shootout::load::LatencyHistogram other;
  other.record(59e6);
  h.add(other);
  EXPECT_EQ(h.count(), 100'001u);
  EXPECT_EQ(h.summary().max_us, 59e6);
}

// --- against nginx -------------------------------------------------------------------------

TEST_P(LoadgenNginx, ClosedLoopCountsResponsesWithoutErrors) {
  SKIP_WITHOUT_NGINX();
  Nginx nginx;
  LoadConfig c = quick(nginx.url(), 8);
  c.threads = 2;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_GT(r.requests, 0u);
  EXPECT_EQ(r.errors.total(), 0u);
  EXPECT_EQ(r.sent_total, r.responses_total);  // drained: every request sent was answered
  EXPECT_GE(r.bytes_read, r.requests * 13);
  std::uint64_t series = 0;
  for (auto n : r.per_second) series += n;
  EXPECT_EQ(series, r.requests);
}

TEST_P(LoadgenNginx, PipelinedBatchesAreAllAnswered) {
  SKIP_WITHOUT_NGINX();
  Nginx nginx;
  LoadConfig c = quick(nginx.url(), 2);
  c.pipeline = 16;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_GT(r.requests, 0u);
  EXPECT_EQ(r.errors.total(), 0u);
  EXPECT_EQ(r.sent_total, r.responses_total);
}

// nginx closes a keep-alive connection after keepalive_requests responses; requests pipelined
// behind the last one are never answered: a read error, and the connection is reopened.
TEST_P(LoadgenNginx, RequestsLostBehindConnectionCloseAreReadErrors) {
  SKIP_WITHOUT_NGINX();
  Nginx nginx("keepalive_requests 10;");
  LoadConfig c = quick(nginx.url(), 1, 500ms);
  c.pipeline = 16;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_GT(r.responses_total, 10u);  // reconnected after each close
  EXPECT_GT(r.errors.read, 0u);
  EXPECT_GT(r.sent_total, r.responses_total);
}

TEST_P(LoadgenNginx, NotFoundIsCountedAsBadStatus) {
  SKIP_WITHOUT_NGINX();
  Nginx nginx;
  const LoadResult r = shootout::load::run_load(quick(nginx.url("/missing"), 2, 500ms));
  EXPECT_GT(r.errors.status, 0u);
  EXPECT_EQ(r.errors.status, r.responses_total);
  EXPECT_EQ(r.errors.read + r.errors.body + r.errors.connect, 0u);
}

TEST_P(LoadgenNginx, ClosedWithoutAnswerIsCountedAsReadErrorAndReconnected) {
  SKIP_WITHOUT_NGINX();
  Nginx nginx;
  const LoadResult r = shootout::load::run_load(quick(nginx.url("/close"), 2, 500ms));
  EXPECT_EQ(r.responses_total, 0u);
  // More read errors than connections: each failed socket was reopened and tried again.
  EXPECT_GT(r.errors.read, 2u);
}

TEST_P(LoadgenNginx, EchoAgainstHttpServerIsBadBody) {
  SKIP_WITHOUT_NGINX();
  Nginx nginx;
  LoadConfig c = quick(nginx.url(), 1, 500ms);
  c.echo_size = 64;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_EQ(r.responses_total, 0u);
  EXPECT_GT(r.errors.body, 0u);
}

TEST_P(LoadgenNginx, RateModeReachesTheAskedRate) {
  SKIP_WITHOUT_NGINX();
  Nginx nginx;
  LoadConfig c = quick(nginx.url(), 4, 3s);
  c.mode = Mode::rate;
  // 500/s over 4 connections is one request per connection every 8 ms. What is checked is the
  // schedule: never more than it (plus one in flight per connection), where a closed loop
  // would make tens of thousands; and not an exact count, because a response due at the
  // window's end arrives after it when the host stalls a process there (a busy CI host once
  // took 86 of 800 that way). Half the schedule is a stall of 1.5 s.
  c.rate = 500;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_LE(r.requests, 1500u + 4u);
  EXPECT_GE(r.requests, 750u);
  EXPECT_EQ(r.latency.count(), r.requests);
  EXPECT_EQ(r.latency_uncorrected.count(), r.requests);
  // Measured from the intended send time, a latency can only be longer than from the actual one.
  EXPECT_GE(r.latency.summary().max_us, r.latency_uncorrected.summary().max_us);
}

TEST(LoadgenNginxSampler, SeesMasterAndWorkerThroughProc) {
  SKIP_WITHOUT_NGINX();
  Nginx nginx;
  LoadConfig c = quick(nginx.url(), 4, 1s);
  c.server = shootout::load::SamplerConfig{nginx.pid(), "", 200ms};
  const LoadResult r = shootout::load::run_load(c);
  ASSERT_TRUE(r.server.has_value());
  const auto& s = *r.server;
  EXPECT_EQ(s.source, "proc");
  EXPECT_FALSE(s.switches_complete);
  EXPECT_EQ(s.processes, 2u);  // master and one worker
  EXPECT_EQ(s.threads, 2u);
  EXPECT_GT(s.pss_kb, 0u);
  EXPECT_GE(s.rss_kb, s.pss_kb);
  EXPECT_GT(s.cpu_us, 0u);  // the worker answered thousands of requests
  EXPECT_GT(s.nvcsw, 0u);
  EXPECT_GE(s.memory_samples, 3u);
  EXPECT_FALSE(s.server_requests.has_value());
}

// --- against our own server ---------------------------------------------------------------

TEST_P(LoadgenOwnServer, RequestCountAgreesWithServerCount) {
  auto dir = temp_dir("count");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "threaded", "--stats-file", stats});
  const std::uint64_t before = server_requests(server.pid(), stats);
  LoadConfig c = quick(own_url(server), 8);
  c.threads = 2;
  c.pipeline = 4;
  const LoadResult r = shootout::load::run_load(c);
  const std::uint64_t after = server_requests(server.pid(), stats);
  EXPECT_GT(r.requests, 0u);
  EXPECT_EQ(r.errors.total(), 0u);
  EXPECT_EQ(after - before, r.responses_total);
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

TEST_P(LoadgenOwnServer, SleepLatencyIsAtLeastTheDelay) {
  ServerProcess server({"--model", "threaded"});
  const LoadResult r = shootout::load::run_load(quick(own_url(server, "/sleep?ms=20"), 4, 1s));
  ASSERT_GT(r.requests, 0u);
  EXPECT_EQ(r.errors.total(), 0u);
  const auto p = r.latency.summary();
  for (double v : {p.min_us, p.p50_us, p.p90_us, p.p99_us, p.p999_us, p.p9999_us, p.max_us})
    EXPECT_GE(v, 20'000.0);
}

TEST_P(LoadgenOwnServer, RateModeLatencyCountsFromIntendedTime) {
  ServerProcess server({"--model", "threaded"});
  // 2 connections, 200 req/s asked, each response takes 20 ms: each connection can answer at
  // most 50/s, so requests queue up behind their intended time. The corrected latency grows
  // past the uncorrected one, which stays near the 20 ms of service.
  LoadConfig c = quick(own_url(server, "/sleep?ms=20"), 2, 1s);
  c.mode = Mode::rate;
  c.rate = 200;
  const LoadResult r = shootout::load::run_load(c);
  ASSERT_GT(r.requests, 0u);
  EXPECT_LT(r.requests, 200u);  // behind schedule, as arranged
  EXPECT_GT(r.latency.summary().p90_us, r.latency_uncorrected.summary().p90_us);
  EXPECT_GE(r.latency_uncorrected.summary().min_us, 20'000.0);
}

TEST_P(LoadgenOwnServer, TimeoutIsCountedAndConnectionReopened) {
  ServerProcess server({"--model", "threaded"});
  LoadConfig c = quick(own_url(server, "/sleep?ms=3000"), 2, 1s);
  c.timeout = 200ms;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_EQ(r.requests, 0u);
  EXPECT_GE(r.errors.timeout, 4u);  // 2 connections, several rounds each within 1 s
}

TEST_P(LoadgenOwnServer, IdleHoldKeepsEveryConnection) {
  auto dir = temp_dir("idle");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "threaded", "--stats-file", stats});
  LoadConfig c = quick(own_url(server), 500, 1s);
  c.mode = Mode::idle;
  c.threads = 2;
  c.connect_rate = 5000;
  c.server = shootout::load::SamplerConfig{server.pid(), stats, 250ms};
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_EQ(r.idle_opened, 500u);
  EXPECT_EQ(r.idle_alive, 500u);
  EXPECT_EQ(r.responses_total, 1000u);
  EXPECT_EQ(r.errors.total(), 0u);
  ASSERT_TRUE(r.server.has_value());
  EXPECT_EQ(r.server->source, "stats-file+proc");
  EXPECT_TRUE(r.server->switches_complete);
  EXPECT_GE(r.server->threads, 500u);  // thread per connection, all held during the window
  EXPECT_EQ(r.server->processes, 1u);
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

// Closed mode opens its window only once every connection has been answered: a server that
// forks per connection is measured at N, not at the pace it takes connections on.
TEST_P(LoadgenOwnServer, ClosedWindowOpensOnceEveryConnectionIsAnswered) {
  ServerProcess server({"--model", "forked"});
  LoadConfig c = quick(own_url(server), 200, 1s);
  c.threads = 2;
  c.ramp_timeout = 300s;  // a bound only: the ramp ends when all 200 have been answered
  c.timeout = 60s;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_EQ(r.ramp_reached, 200u);
  EXPECT_EQ(r.connections_in_window, 200u);
  EXPECT_EQ(r.errors.total(), 0u);
  EXPECT_EQ(r.to_json()["concurrency"]["served_in_window"].get<int>(), 200);
  EXPECT_EQ(server.stop(), 0);
}

// A server that cannot take on N (at most 5 live children) is not reported at N: the ramp
// gives up at its bound with 5 answered, and only those 5 are served in the window (each keeps
// its child; the other 15 wait in the backlog, time out and reconnect). The bound is generous
// (a first answer from a fresh child of a sanitized server on a loaded host can take seconds,
// and one that timed out would free its child for another): only a failing test waits it out.
TEST_P(LoadgenOwnServer, ConnectionsTheServerCannotTakeAreNotCountedAsServed) {
  ServerProcess server({"--model", "forked", "--max-procs", "5"});
  LoadConfig c = quick(own_url(server), 20, 1s);
  c.ramp_timeout = 30s;
  c.timeout = 500ms;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_LE(r.ramp_reached, 5u);
  EXPECT_GT(r.connections_in_window, 0u);
  EXPECT_LE(r.connections_in_window, 5u);
  EXPECT_GT(r.errors.timeout, 0u);
  EXPECT_NE(r.summary().find("served in the window: " + std::to_string(r.connections_in_window) +
                             " of 20"),
            std::string::npos)
      << r.summary();
  EXPECT_EQ(server.stop(), 0);
}

// CPU over a window can never exceed the CPUs times the window, over short windows as well as
// long ones (a window timed from the end of a slow first snapshot gave 13.5 cores on 2), and
// with children forked and reaped all through it (a child alive at the start and reaped by the
// end once counted its earlier run time in the window).
class LoadgenCpuBound : public ::testing::TestWithParam<const char*> {};

TEST_P(LoadgenCpuBound, ServerCpuNeverExceedsTheCoresOverTheWindow) {
  auto dir = temp_dir("cores");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", GetParam(), "--stats-file", stats});
  const double cpus = static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN));
  for (auto window : {100ms, 300ms, 1500ms}) {
    LoadConfig c = quick(own_url(server, "/cpu?us=2000"), 8, window);
    c.headers = {"Connection: close"};  // a new thread or child per request
    c.server = shootout::load::SamplerConfig{server.pid(), stats, 50ms};
    c.server->stats_wait = 30s;  // a slow host's server still answers: only a broken one waits it
    const LoadResult r = shootout::load::run_load(c);
    ASSERT_TRUE(r.server.has_value());
    const std::string what = fmt::format(
        "window {} ms: {} us of CPU in {} s on {} CPUs ({} requests; sampler: {}, consistent "
        "{}, {} processes)",
        window.count(), r.server->cpu_us, r.server->window_s, cpus, r.requests, r.server->source,
        r.server->cpu_consistent, r.server->processes_peak);
    EXPECT_GT(r.server->cpu_us, 0u) << what;
    EXPECT_TRUE(r.server->cpu_consistent) << what;  // with the report, in one pass (reap log)
    EXPECT_LE(static_cast<double>(r.server->cpu_us), cpus * r.server->window_s * 1e6) << what;
  }
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Models, LoadgenCpuBound, ::testing::Values("threaded", "forked"),
                         [](const auto& param_info) { return std::string(param_info.param); });

TEST_P(LoadgenOwnServer, EchoVerifiesEveryByte) {
  ServerProcess server({"--model", "threaded", "--handler", "echo"});
  LoadConfig c = quick("tcp://127.0.0.1:" + std::to_string(server.port()), 4, 1s);
  c.echo_size = 1000;
  c.pipeline = 3;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_GT(r.requests, 0u);
  EXPECT_EQ(r.errors.total(), 0u);
  EXPECT_EQ(r.bytes_read, r.requests * 1000);
  EXPECT_EQ(r.protocol, "echo");
}

INSTANTIATE_TEST_SUITE_P(Engines, LoadgenNginx,
                         ::testing::Values(EngineKind::asio, EngineKind::uring), engine_test_name);
INSTANTIATE_TEST_SUITE_P(Engines, LoadgenOwnServer,
                         ::testing::Values(EngineKind::asio, EngineKind::uring), engine_test_name);

// The CPU and switches of threads that exited during the window are counted: a thread per
// connection exits when its connection closes, and the stats file still carries its usage.
TEST(LoadgenOwnServerSampler, CountsExitedThreads) {
  auto dir = temp_dir("exited");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "threaded", "--stats-file", stats});
  shootout::load::SamplerConfig sc{server.pid(), stats, 0ms};
  shootout::load::ServerSampler sampler(sc);
  sampler.start();
  // Idle hold on its own: 50 connections, each a thread that exits when the load closes it.
  LoadConfig c = quick(own_url(server, "/cpu?us=2000"), 50, 100ms);
  c.mode = Mode::idle;
  const LoadResult r = shootout::load::run_load(c);
  ASSERT_EQ(r.idle_alive, 50u);
  for (int i = 0; i < 6000 && shootout::test::thread_count(server.pid()) > 10; ++i)
    std::this_thread::sleep_for(10ms);
  const auto s = sampler.stop();
  // 100 requests of 2 ms CPU each ran on threads that are gone now: RUSAGE_SELF of the stats
  // file counts them exactly (the kernel's run time, not ticks), so no allowance.
  EXPECT_GE(s.cpu_us, 100u * 2000u);
  EXPECT_GE(s.nvcsw + s.nivcsw, 50u);
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

// --- regressions ---------------------------------------------------------------------------

// With --connect-rate the opener starts connections over N / rate seconds. The timeout sweep
// must leave the ones it has not started alone: it used to fail them as connect errors (they
// looked like connects started at time zero), and an idle run could then never finish.
class LoadgenConnectRamp : public ::testing::TestWithParam<std::tuple<Mode, EngineKind>> {};

TEST_P(LoadgenConnectRamp, EveryConnectionGetsThroughWithoutErrors) {
  const auto [mode, engine] = GetParam();
  if (engine == EngineKind::uring && !shootout::load::uring_engine_unavailable().empty())
    GTEST_SKIP() << "--engine uring: " << shootout::load::uring_engine_unavailable();
  constexpr int kConnections = 2000;
  const auto [soft, hard] = shootout::load::raise_fd_limit();
  if (soft < 2 * kConnections + 256)
    GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << hard << " is below " << 2 * kConnections + 256;
  ServerProcess server({"--model", "evented"}, static_cast<long>(soft));
  LoadConfig c = quick(own_url(server), kConnections, 2s);  // the ramp takes 1 s of it
  c.mode = mode;
  c.engine = engine;
  c.threads = 2;
  c.connect_rate = 2000;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_EQ(r.errors.connect, 0u);
  EXPECT_EQ(r.errors.total(), 0u);
  if (c.mode == Mode::idle) {
    EXPECT_EQ(r.idle_opened, static_cast<std::uint64_t>(kConnections));
    EXPECT_EQ(r.idle_alive, static_cast<std::uint64_t>(kConnections));
  } else {
    EXPECT_GT(r.requests, 0u);
    EXPECT_EQ(r.sent_total, r.responses_total);
  }
  EXPECT_EQ(server.stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, LoadgenConnectRamp,
                         ::testing::Combine(::testing::Values(Mode::closed, Mode::idle),
                                            ::testing::Values(EngineKind::asio, EngineKind::uring)),
                         [](const auto& p) {
                           return std::string(shootout::load::mode_name(std::get<0>(p.param))) +
                                  "_" + shootout::load::engine_name(std::get<1>(p.param));
                         });

// A server whose connections are served by child processes: the sampler must count the CPU
// of every child exactly once, whether it is alive, exiting or reaped when a snapshot is
// taken. The sampler stops right after the load generator closed its connections, while the
// per-connection children exit and are reaped: the moment a child could fall between the
// server's stats file (RUSAGE_CHILDREN) and /proc. Each request burns 2,000 µs of its thread's
// CPU clock before it is answered, so the server's CPU over the sampler's window (which
// contains the whole load) is at least 2,000 µs per answer: a bound that holds on any machine.
class LoadgenForkedCpu : public ::testing::TestWithParam<int> {};

TEST_P(LoadgenForkedCpu, SamplerCountsEveryChildOnce) {
  constexpr std::uint64_t kBurnUs = 2000;
  auto dir = temp_dir("forked-cpu");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server(
      {"--model", "forked", "--prefork", std::to_string(GetParam()), "--stats-file", stats});
  shootout::load::ServerSampler sampler({server.pid(), stats, 0ms});
  sampler.start();  // before the first connection: no request has burnt anything yet
  const LoadResult r = shootout::load::run_load(quick(own_url(server, "/cpu?us=2000"), 4, 1s));
  const auto s = sampler.stop();  // the connections have just been closed
  ASSERT_GT(r.responses_total, 0u);
  EXPECT_EQ(r.errors.total(), 0u);
  // Every answer burnt kBurnUs of CPU inside the window, so this bound is causal. No
  // allowance for rounding: live and zombie children are read from their tasks' schedstat
  // (ns), reaped ones come through the stats file's RUSAGE_CHILDREN (µs, the kernel's exact
  // run time, measured equal to the zombies' schedstat): nothing is counted in whole ticks.
  EXPECT_GE(s.cpu_us, r.responses_total * kBurnUs)
      << r.responses_total << " answers, " << s.processes << " processes at the end";
  // The other side, so that counting a child twice fails: the server's own request count over
  // the window (its stats file, children folded in once as they are reaped) is every answer
  // the load generator got, plus at most one request per connection still in flight when the
  // load stopped; and the CPU is less than two burns per request (a child counted twice would
  // double it; parsing and answering cost a fraction of one 2 ms burn) plus 250 ms for each
  // of the 4 children's fork and exit (about 1 ms each here in Release; a TSan child's exit
  // costs far more). In Release hundreds of answers fit the second, so a double count (their
  // burns again) is well above the allowance.
  ASSERT_TRUE(s.server_requests.has_value());
  EXPECT_GE(*s.server_requests, r.responses_total);
  EXPECT_LE(*s.server_requests, r.responses_total + 4);
  EXPECT_LT(s.cpu_us, 2 * (*s.server_requests) * kBurnUs + 4 * 250'000);
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

// 0: a process per connection; 4: a pre-forked pool of 4 (Apache prefork's shape).
INSTANTIATE_TEST_SUITE_P(Models, LoadgenForkedCpu, ::testing::Values(0, 4), [](const auto& p) {
  return p.param == 0 ? std::string("PerConnection") : "Prefork" + std::to_string(p.param);
});

// Children of the forked server forked after a burst cost what a fresh server's children cost
// (docs/FORKED.md, "A child inherits the parent's heap"). With glibc's fastbins on, the parent
// left a freed node per reaped child in them, and each later child's first larger allocation
// consolidated them, copying every heap page that held one: 200 idle children then took about
// twice the memory after a burst of 3,000 connections as from a fresh server.
TEST(LoadgenForkedMemory, ChildrenForkedAfterABurstCostWhatAFreshServersChildrenCost) {
#ifdef SHOOTOUT_SANITIZER
  GTEST_SKIP() << "the sanitizer's allocator replaces glibc's (it has no fastbins); the "
                  "Release stage runs this";
#endif
  constexpr int kIdle = 200, kBurst = 3000;
  // PSS of the server's tree while it holds kIdle idle connections, a child each.
  auto idle_pss_kb = [&](const ServerProcess& server) {
    LoadConfig c = quick(own_url(server), kIdle, 500ms);
    c.mode = Mode::idle;
    c.server = shootout::load::SamplerConfig{server.pid(), "", 200ms};
    const LoadResult r = shootout::load::run_load(c);
    EXPECT_EQ(r.idle_alive, static_cast<std::uint64_t>(kIdle));
    return r.server ? r.server->pss_kb : 0;
  };
  // The server's live children, from the kernel's list.
  auto children = [](pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    std::string word;
    int n = 0;
    while (in >> word) ++n;
    return n;
  };
  std::uint64_t fresh = 0;
  {
    ServerProcess server({"--model", "forked"});
    fresh = idle_pss_kb(server);
    EXPECT_EQ(server.stop(), 0);
  }
  ServerProcess server({"--model", "forked"});
  LoadConfig burst = quick(own_url(server), kBurst, 500ms);
  burst.timeout = 60s;
  const LoadResult b = shootout::load::run_load(burst);
  EXPECT_EQ(b.ramp_reached, static_cast<std::uint64_t>(kBurst));
  // Every burst child gone (their connections closed) before the idle ones are forked.
  for (int i = 0; i < 3000 && children(server.pid()) > 0; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(children(server.pid()), 0);
  const std::uint64_t after = idle_pss_kb(server);
  ASSERT_GT(fresh, 0u);
  EXPECT_LT(after, fresh + fresh / 4) << "200 idle children: " << after << " KiB after a burst of "
                                      << kBurst << ", " << fresh << " KiB from a fresh server";
  EXPECT_EQ(server.stop(), 0);
}

// What the sampler relies on for reaped children (and the forked model's stats file): the
// kernel adds a child's exact run time to RUSAGE_CHILDREN when it is reaped, not a count of
// clock ticks. Children run in bursts far shorter than a tick (the case ticks miss); before
// each is reaped, its zombie's /proc/PID/schedstat (ns) and context switches are read; after,
// RUSAGE_CHILDREN must have grown by at least as much (µs: each child's ns truncated once).
TEST(LoadgenSamplerSources, RusageChildrenIsTheExactRunTimeOfReapedChildren) {
  constexpr int kChildren = 10;
  auto read_text = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  auto field = [](const std::string& text, const std::string& key) -> std::uint64_t {
    const auto at = text.find(key);
    return at == std::string::npos ? 0 : std::stoull(text.substr(at + key.size()));
  };
  auto children = [] {
    rusage u{};
    ::getrusage(RUSAGE_CHILDREN, &u);
    return u;
  };
  const rusage before = children();
  std::uint64_t run_ns = 0, switches = 0, floor_us = 0;
  for (int i = 0; i < kChildren; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int burst = 0; burst < 20; ++burst) {  // 20 bursts of 200 µs CPU, 1 ms apart
        timespec start{}, now{};
        ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
        do ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
        while ((now.tv_sec - start.tv_sec) * 1'000'000'000L + now.tv_nsec - start.tv_nsec <
               200'000);
        ::usleep(1000);
      }
      ::_exit(0);
    }
    siginfo_t info{};
    ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT), 0);
    const std::string proc = "/proc/" + std::to_string(pid);
    const std::uint64_t ns = std::stoull(read_text(proc + "/schedstat"));
    run_ns += ns;
    floor_us += ns / 1000;
    const std::string status = read_text(proc + "/status");
    switches += field(status, "\nvoluntary_ctxt_switches:") +
                field(status, "\nnonvoluntary_ctxt_switches:");
    ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
  }
  const rusage after = children();
  auto us = [](const timeval& t) {
    return std::uint64_t(t.tv_sec) * 1'000'000 + std::uint64_t(t.tv_usec);
  };
  const std::uint64_t grown =
      us(after.ru_utime) + us(after.ru_stime) - us(before.ru_utime) - us(before.ru_stime);
  // The reap reads the same counters a little later than the zombie's files were read, so
  // RUSAGE_CHILDREN can only be larger (by the last µs of the exit path), never smaller.
  EXPECT_GE(run_ns / 1000, kChildren * 20 * 200u);  // the bursts did run
  EXPECT_GE(grown + kChildren, floor_us) << "run time of the zombies: " << run_ns << " ns";
  EXPECT_GE(switches, kChildren * 20u);  // every usleep is a voluntary switch
  EXPECT_GE(std::uint64_t(after.ru_nvcsw + after.ru_nivcsw - before.ru_nvcsw - before.ru_nivcsw),
            switches);
}

// Children born, burning CPU, exiting and reaped all inside the window: kChildren connections
// one after the other, each served by its own child that burns 2,000 µs and exits when the
// connection closes. Every child is gone from /proc before the last snapshot, so its CPU
// reaches the sampler only through what its parent collected when reaping it. The bound is
// causal (that CPU was burnt inside the window), never a speed. With the stats file
// (RUSAGE_CHILDREN in µs) no allowance; from /proc only (nginx's case) the parent's
// cutime+cstime are exact nanosecond sums truncated to whole ticks, at most one tick lost per
// field, and the allowance is exactly that.
//
// ReportAtTheStartOnly: the server answers the first snapshot's SIGUSR1 but not the last one's
// (it is stopped then, as a server too busy to answer within stats_wait is). Both ends are
// then compared from /proc: the report counts its reaped children's switches and /proc only
// the live tasks', so a report at one end and /proc at the other made the switches (and a
// short window's CPU) come out as 0. Warm-up children before the window put switches in the
// report; the parent's accept() waits are switches of its live main thread in the window.
enum class CpuSource { stats_file, proc_only, report_at_start_only };

class LoadgenReapedCpu : public ::testing::TestWithParam<CpuSource> {};

TEST_P(LoadgenReapedCpu, ChildrenReapedInsideTheWindowAreCounted) {
  constexpr int kChildren = 40;
  constexpr std::uint64_t kBurnUs = 2000;
  const CpuSource source = GetParam();
  auto dir = temp_dir("reaped-cpu");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "forked", "--stats-file", stats});
  auto all_reaped = [&] {
    for (int i = 0; i < 6000 && !shootout::test::children_of(server.pid()).empty(); ++i)
      std::this_thread::sleep_for(10ms);
    return shootout::test::children_of(server.pid()).empty();
  };
  if (source == CpuSource::report_at_start_only) {
    for (int i = 0; i < 200; ++i)
      ASSERT_EQ(shootout::test::http_get(server.port(), "/").status, 200);
    ASSERT_TRUE(all_reaped()) << "warm-up children not reaped";
  }
  shootout::load::SamplerConfig config{server.pid(), source == CpuSource::proc_only ? "" : stats,
                                       0ms};
  config.stats_wait = 500ms;  // how long the stopped server is waited for at the end
  shootout::load::ServerSampler sampler(config);
  sampler.start();
  for (int i = 0; i < kChildren; ++i)
    ASSERT_EQ(shootout::test::http_get(server.port(), "/cpu?us=2000").status, 200);
  ASSERT_TRUE(all_reaped()) << "children not reaped";
  if (source == CpuSource::report_at_start_only) {
    ASSERT_EQ(::kill(server.pid(), SIGSTOP), 0);
  }
  const auto s = sampler.stop();
  if (source == CpuSource::report_at_start_only) {
    ASSERT_EQ(::kill(server.pid(), SIGCONT), 0);
  }
  EXPECT_EQ(s.source, source == CpuSource::stats_file ? "stats-file+proc" : "proc");
  const std::uint64_t tick_us = 1'000'000 / static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
  const std::uint64_t allowance = source == CpuSource::stats_file ? 0 : 2 * tick_us;
  EXPECT_GE(s.cpu_us + allowance, kChildren * kBurnUs);
  if (source == CpuSource::stats_file) {
    EXPECT_EQ(s.server_requests.value_or(0), static_cast<std::uint64_t>(kChildren));
  }
  if (source == CpuSource::report_at_start_only) {
    EXPECT_GE(s.nvcsw, static_cast<std::uint64_t>(kChildren)) << "the parent's accept() waits";
  }
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Sources, LoadgenReapedCpu,
                         ::testing::Values(CpuSource::stats_file, CpuSource::proc_only,
                                           CpuSource::report_at_start_only),
                         [](const auto& p) {
                           switch (p.param) {
                             case CpuSource::stats_file:
                               return "StatsFile";
                             case CpuSource::proc_only:
                               return "ProcOnly";
                             case CpuSource::report_at_start_only:
                               return "ReportAtTheStartOnly";
                           }
                           return "";
                         });

// Children reaped while a snapshot is being taken: a forked server with a child per request
// (Connection: close), each burning 20 ms, exits and reaps one every few milliseconds, so many
// passes over the tree have a child read in /proc and reaped before the report is written
// (counted twice unless the reap log takes it out). Snapshots follow one another at once, so a
// child counted twice (20 ms) shows as more CPU than the CPUs could give since the previous
// snapshot began, and the next snapshot's total as lower than this one's. With the log each
// snapshot is consistent in one pass and the cumulative CPU only grows, within that bound.
// (Without the subtraction, this test fails on the first race; before the log, a pass with no
// reap in it was rarely found under such churn, and one that counted a child twice gave 2.15
// cores on 2 in CI.)
TEST(LoadgenReapLog, SnapshotsUnderChildChurnCountEveryChildOnce) {
  auto dir = temp_dir("reap-log");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "forked", "--stats-file", stats});
  LoadConfig c = quick(own_url(server, "/cpu?us=20000"), 2, 3s);
  c.headers = {"Connection: close"};
  std::optional<LoadResult> load;
  std::atomic<bool> done{false};
  std::thread loader([&] {
    load = shootout::load::run_load(c);
    done = true;
  });
  shootout::load::SamplerConfig config{server.pid(), stats, 0ms};
  config.stats_wait = 30s;  // a slow host's server still answers: only a broken one waits it
  const double cpus = static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN));
  std::optional<shootout::load::TreeSnapshot> previous;
  int raced = 0, taken = 0;
  for (; taken < 1000 && !done; ++taken) {
    const auto s = shootout::load::snapshot_tree(config, false, true);
    ASSERT_TRUE(s.from_stats_file) << "snapshot " << taken;
    EXPECT_TRUE(s.cpu_consistent) << "snapshot " << taken << " after " << s.cpu_attempts
                                  << " passes";
    const auto& r = s.reaped_after_read;
    if (r.utime_us + r.stime_us + r.untracked_us + r.nvcsw + r.nivcsw > 0) ++raced;
    if (previous) {
      EXPECT_GE(s.cpu_us, previous->cpu_us) << "snapshot " << taken << ": the total went down";
      const double span_s =
          static_cast<double>(s.monotonic_ns - previous->monotonic_ns_begin) / 1e9;
      EXPECT_LE(static_cast<double>(s.cpu_us - std::min(s.cpu_us, previous->cpu_us)),
                cpus * span_s * 1e6)
          << "snapshot " << taken << " over " << span_s << " s";
    }
    previous = s;
  }
  loader.join();
  ASSERT_TRUE(load.has_value());
  EXPECT_GT(load->requests, 0u);
  std::printf("%d of %d snapshots had a child reaped between its /proc read and the report\n",
              raced, taken);
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

// --- the command line ---------------------------------------------------------------------

int run_cli(std::vector<std::string> args, std::string* out = nullptr, std::string* err = nullptr,
            long nofile = 0) {
  args.insert(args.begin(), {shootout::test::shootout_binary(), "load"});
  Process p(args, nofile);
  const int status = p.wait(60s);
  if (out) *out = p.stdout_text();
  if (err) *err = p.stderr_text();
  return status;
}

TEST(LoadgenCli, BadFlagsExitTwo) {
  std::string err;
  EXPECT_EQ(run_cli({"-c", "many", "http://127.0.0.1:1/"}, nullptr, &err), 2);
  EXPECT_NE(err.find("Usage"), std::string::npos);
  EXPECT_EQ(run_cli({"-d", "5parsecs", "http://127.0.0.1:1/"}), 2);
  EXPECT_EQ(run_cli({"--no-such-flag", "http://127.0.0.1:1/"}), 2);
  EXPECT_EQ(run_cli({"--server-stats", "/tmp/x"}), 2);  // needs --server-pid, and a URL
  EXPECT_EQ(run_cli({}), 2);
}

TEST(LoadgenCli, JsonOutputFollowsTheSchema) {
  auto dir = temp_dir("json");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "threaded", "--stats-file", stats});
  std::string out;
  ASSERT_EQ(run_cli({"-c", "4", "-d", "1s", "--json", "--server-pid", std::to_string(server.pid()),
                     "--server-stats", stats, own_url(server)},
                    &out),
            0);
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["schema"], "shootout-load/1");
  EXPECT_EQ(j["mode"], "closed");
  EXPECT_EQ(j["engine"], "asio");  // the default
  EXPECT_GT(j["requests"].get<std::uint64_t>(), 0u);
  for (const char* k : {"p50", "p90", "p99", "p99_9", "p99_99", "max"})
    EXPECT_TRUE(j["latency_us"].contains(k)) << k;
  for (const char* k : {"connect", "read", "write", "timeout", "status", "body"})
    EXPECT_EQ(j["errors"][k], 0) << k;
  EXPECT_EQ(j["server"]["source"], "stats-file+proc");
  EXPECT_GT(j["server"]["cpu_us"].get<std::uint64_t>(), 0u);
  // The load's own CPU is what getrusage counted over the window less the sampler's
  // snapshots, over the time between the two readings: at most this host's cores.
  const auto& cpu = j["client_cpu"];
  EXPECT_GT(cpu["cpu_us"].get<double>(), 0.0);
  EXPECT_GT(cpu["sampler_us"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(cpu["cpu_us"].get<double>(), cpu["utime_us"].get<double>() +
                                                    cpu["stime_us"].get<double>() -
                                                    cpu["sampler_us"].get<double>());
  const double span = cpu["to_s"].get<double>() - cpu["from_s"].get<double>();
  ASSERT_GT(span, 0.0);  // read at the window's opening, then at its close
  EXPECT_DOUBLE_EQ(cpu["cores"].get<double>(), cpu["cpu_us"].get<double>() / 1e6 / span);
  EXPECT_LE(cpu["cores"].get<double>(), std::thread::hardware_concurrency());
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

TEST(LoadgenCli, RunningOutOfDescriptorsIsAClearMessage) {
  ServerProcess server({"--model", "threaded"});
  std::string err;
  EXPECT_EQ(run_cli({"-c", "100", "-d", "1s", own_url(server)}, nullptr, &err, 64), 1);
  EXPECT_NE(err.find("RLIMIT_NOFILE is 64"), std::string::npos) << err;
  EXPECT_NE(err.find("of the 100 connections could be opened"), std::string::npos) << err;
}

}  // namespace
