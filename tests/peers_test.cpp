// The other runtimes' peers (runner/peers/langs.cpp: node, node-cluster, go, go-2, tokio,
// tokio-mt, eventmachine), each started the way the sweep starts it — write_peer_config, then
// start_peer — as a real process answering on a real socket. Each peer is skipped, with the
// package to install, where it is missing (its interpreter, or for go and tokio the binary the
// `peers` target builds into build/peers/).
#include "peers/peers.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client.hpp"
#include "files.hpp"
#include "load.hpp"
#include "process.hpp"
#include "server_process.hpp"
#include "sweep.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
namespace runner = shootout::runner;
using shootout::test::Conn;

using shootout::test::read_file;
using shootout::test::temp_dir;

namespace {

constexpr const char* kBody = "Hello, World!";
constexpr int kIdle = 1000;

// The compiled peers are next to build/shootout, not next to this test binary.
void point_at_built_peers() {
  ::setenv("SHOOTOUT_PEERS_DIR",
           (fs::path(shootout::test::shootout_binary()).parent_path() / "peers").c_str(), 1);
}

// Alive and not a zombie (an exited process its parent has yet to reap has left nothing).
bool running(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return false;
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// The leader and every descendant, now.
std::vector<pid_t> tree_of(pid_t root) {
  std::vector<pid_t> all{root};
  for (std::size_t i = 0; i < all.size(); ++i)
    for (pid_t k : shootout::test::children_of(all[i])) all.push_back(k);
  return all;
}

// One peer started by the runner's own code, in a folder of its own.
class LangPeer : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    point_at_built_peers();
    if (std::string why = runner::peer_missing(GetParam()); !why.empty())
      GTEST_SKIP() << GetParam() << " is not available: " << why;
    dir_ = temp_dir(GetParam());
  }
  void TearDown() override {
    child_.reset();  // kills what is left of its group
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Starts the peer; with `start_nofile` > 0 it inherits that soft descriptor limit (this
  // process's is put back right after the fork).
  void start(long start_nofile = 0) {
    setup_ = runner::write_peer_config(GetParam(), dir_.string(), runner::free_port(), kIdle,
                                       runner::host_limits());
    rlimit saved{};
    ::getrlimit(RLIMIT_NOFILE, &saved);
    if (start_nofile > 0) {
      rlimit low = saved;
      low.rlim_cur = static_cast<rlim_t>(start_nofile);
      ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    }
    std::string error;
    child_ = runner::start_peer(setup_, (dir_ / "stdout.log").string(), -1, 30s, error);
    ::setrlimit(RLIMIT_NOFILE, &saved);
    ASSERT_TRUE(error.empty()) << error;
    ASSERT_FALSE(child_->poll().has_value()) << child_->log_tail();
  }

  std::uint16_t port() const { return setup_.port; }

  fs::path dir_;
  runner::PeerSetup setup_;
  std::unique_ptr<runner::Child> child_;
};

void expect_hello(const shootout::test::Response& r, const std::string& where) {
  EXPECT_EQ(r.status, 200) << where;
  EXPECT_EQ(r.body, kBody) << where;
  EXPECT_EQ(r.body.size(), 13u) << where;
  EXPECT_EQ(r.headers.count("content-length") ? r.headers.at("content-length") : "", "13") << where;
}

TEST_P(LangPeer, AnswersGetTwiceOverOneKeepAliveConnection) {
  ASSERT_NO_FATAL_FAILURE(start());
  Conn c(port());
  for (int i = 1; i <= 2; ++i) {
    ASSERT_TRUE(c.send(shootout::test::get_request("/")));
    auto r = shootout::test::read_response(c);
    expect_hello(r, fmt::format("request {} on one connection", i));
    EXPECT_TRUE(r.keep_alive) << "request " << i;
  }
}

// Started with a soft descriptor limit of 256, the peer must raise its own (to the hard limit)
// to hold a thousand connections; then a request on the first one opened is still answered.
TEST_P(LangPeer, HoldsAThousandIdleConnectionsOnTheDescriptorLimitItRaisedItself) {
  auto [soft, hard] = shootout::load::raise_fd_limit();
  if (hard < kIdle + 200)
    GTEST_SKIP() << "needs " << kIdle + 200 << " descriptors; the hard limit is " << hard;
  ASSERT_NO_FATAL_FAILURE(start(256));
  rlimit lim{};
  ASSERT_EQ(::prlimit(child_->pid(), RLIMIT_NOFILE, nullptr, &lim), 0);
  EXPECT_EQ(lim.rlim_cur, lim.rlim_max) << "the peer did not raise its soft RLIMIT_NOFILE";

  std::vector<Conn> conns;
  conns.reserve(kIdle);
  for (int i = 0; i < kIdle; ++i) conns.emplace_back(port());
  // One request on each (all sent, then all read): every connection was taken on.
  for (auto& c : conns) ASSERT_TRUE(c.send(shootout::test::get_request("/")));
  int answered = 0;
  for (auto& c : conns) answered += shootout::test::read_response(c).body == kBody ? 1 : 0;
  EXPECT_EQ(answered, kIdle);
  EXPECT_GE(shootout::load::server_sockets(port()).connected_sockets,
            static_cast<std::uint64_t>(kIdle))
      << "the server does not hold the connections";
  EXPECT_FALSE(child_->poll().has_value()) << child_->log_tail();
  // Idle now; the first connection opened is still served.
  ASSERT_TRUE(conns.front().send(shootout::test::get_request("/")));
  expect_hello(shootout::test::read_response(conns.front()), "first connection, after all");
}

// SIGTERM with a keep-alive connection open: the leader exits with status 0, and by the time
// it has, no process of its tree is left (a cluster's workers included).
TEST_P(LangPeer, StopsOnSigtermWithStatusZeroAndNoProcessLeft) {
  ASSERT_NO_FATAL_FAILURE(start());
  Conn c(port());
  ASSERT_TRUE(c.send(shootout::test::get_request("/")));
  expect_hello(shootout::test::read_response(c), "before SIGTERM");
  const pid_t leader = child_->pid();
  const auto tree = tree_of(leader);
  EXPECT_EQ(static_cast<int>(tree.size()), setup_.expected_processes);

  ASSERT_EQ(::kill(leader, SIGTERM), 0);
  // Waits for the leader's exit without reaping it (the Child reaps it below, and would kill
  // its group then, hiding what it left).
  siginfo_t info{};
  bool exited = false;
  for (auto deadline = std::chrono::steady_clock::now() + 20s;
       !exited && std::chrono::steady_clock::now() < deadline;) {
    info.si_pid = 0;
    ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(leader), &info, WEXITED | WNOHANG | WNOWAIT), 0);
    exited = info.si_pid == leader;
    if (!exited) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(exited) << GetParam() << " did not exit within 20 s of SIGTERM";
  for (pid_t p : tree) {
    if (p == leader) continue;
    EXPECT_FALSE(running(p)) << "process " << p << " of the tree was left";
  }
  auto status = child_->stop(SIGTERM, 5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0) << child_->log_tail();
}

std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (char& ch : n)
    if (ch == '-') ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(RunnerPeers, LangPeer,
                         ::testing::Values("node", "node-cluster", "go", "go-2", "tokio",
                                           "tokio-mt", "eventmachine"),
                         param_name);

// What the runner sets for each runtime, and what it says about it in the point's notes.
TEST(RunnerLangPeers, SetupsCarryTheirRuntimeSettingsAndSayThem) {
  point_at_built_peers();
  fs::path dir = temp_dir("langs");
  auto limits = runner::host_limits();
  auto notes = [](const runner::PeerSetup& s) {
    std::string all;
    for (const auto& n : s.notes) all += n + "\n";
    return all;
  };
  auto go = runner::write_peer_config("go", (dir / "go").string(), 23001, 10, limits);
  EXPECT_EQ(go.env, std::vector<std::string>{"GOMAXPROCS=1"});
  EXPECT_NE(notes(go).find("GOMAXPROCS=1"), std::string::npos) << notes(go);
  auto go2 = runner::write_peer_config("go-2", (dir / "go-2").string(), 23002, 10, limits);
  EXPECT_EQ(go2.env, std::vector<std::string>{"GOMAXPROCS=2"});
  EXPECT_NE(notes(go2).find("GOMAXPROCS=2"), std::string::npos) << notes(go2);
  // start.sh is the exact command, environment included.
  std::string start = read_file(dir / "go-2" / "start.sh");
  EXPECT_NE(start.find("env 'GOMAXPROCS=2' "), std::string::npos) << start;
  EXPECT_NE(start.find("'--port' '23002'"), std::string::npos) << start;

  auto cluster =
      runner::write_peer_config("node-cluster", (dir / "nc").string(), 23003, 10, limits);
  EXPECT_EQ(cluster.expected_processes, 3);
  EXPECT_EQ(cluster.parallelism, 2);
  EXPECT_NE(notes(cluster).find("2 workers"), std::string::npos) << notes(cluster);
  auto node = runner::write_peer_config("node", (dir / "n").string(), 23004, 10, limits);
  EXPECT_EQ(node.expected_processes, 1);

  auto mt = runner::write_peer_config("tokio-mt", (dir / "mt").string(), 23005, 10, limits);
  EXPECT_NE(std::find(mt.argv.begin(), mt.argv.end(), "multi-thread"), mt.argv.end());
  EXPECT_EQ(mt.argv.back(), "2");  // --workers 2
  auto ct = runner::write_peer_config("tokio", (dir / "ct").string(), 23006, 10, limits);
  EXPECT_NE(std::find(ct.argv.begin(), ct.argv.end(), "current-thread"), ct.argv.end());
  auto em = runner::write_peer_config("eventmachine", (dir / "em").string(), 23007, 10, limits);
  EXPECT_NE(notes(em).find("global VM lock"), std::string::npos) << notes(em);
  fs::remove_all(dir);
}

// A compiled peer that was not built is named with what to do: install its toolchain's
// package, or rebuild.
TEST(RunnerLangPeers, AnUnbuiltPeerSaysWhichPackageToInstallOrToRebuild) {
  fs::path empty = temp_dir("no-peers");
  ::setenv("SHOOTOUT_PEERS_DIR", empty.c_str(), 1);
  std::string go = runner::peer_missing("go-2");
  std::string tokio = runner::peer_missing("tokio");
  point_at_built_peers();
  EXPECT_NE(go.find("go-hello was not built"), std::string::npos) << go;
  EXPECT_NE(go.find(fs::exists("/usr/bin/go") ? "rebuild" : "install golang-go"), std::string::npos)
      << go;
  EXPECT_NE(tokio.find("tokio-hello was not built"), std::string::npos) << tokio;
  EXPECT_NE(tokio.find(fs::exists("/usr/bin/cargo") ? "rebuild" : "install cargo"),
            std::string::npos)
      << tokio;
  fs::remove_all(empty);
}

// In a sweep, a peer that is not there is a skipped point with the reason, never a failed run.
TEST(RunnerLangPeers, ASweepSkipsAnUnbuiltPeerWithTheReason) {
  fs::path cwd = temp_dir("skip-peer");
  std::string cmd = fmt::format(
      "SHOOTOUT_PEERS_DIR={0}/none exec {1} run --models none --peers go --connections 1 "
      "--duration 300ms --warmup 100ms --idle-hold-seconds 0.2 --out {0}/out",
      cwd.string(), shootout::test::shootout_binary());
  shootout::test::Process p({"/bin/sh", "-c", cmd});
  ASSERT_EQ(p.wait(120s), 0) << p.stderr_text();
  auto j = nlohmann::json::parse(read_file(cwd / "out" / "results.json"));
  ASSERT_EQ(j["points"].size(), 1u);
  EXPECT_EQ(j["points"][0]["status"], "skipped") << j["points"][0].dump();
  EXPECT_NE(j["points"][0]["reason"].get<std::string>().find("go-hello was not built"),
            std::string::npos)
      << j["points"][0].dump();
  fs::remove_all(cwd);
}

// A runtime peer goes through the whole sweep: measured, and drawn in the graphs' data.
TEST(RunnerLangPeers, ASweepMeasuresNodeAndDrawsIt) {
  point_at_built_peers();
  if (std::string why = runner::peer_missing("node"); !why.empty())
    GTEST_SKIP() << "node is not available: " << why;
  fs::path cwd = temp_dir("sweep-node");
  shootout::test::Process p({shootout::test::shootout_binary(), "run", "--models", "none",
                             "--peers", "node", "--connections", "10", "--duration", "300ms",
                             "--warmup", "100ms", "--idle-hold-seconds", "0.2", "--out",
                             (cwd / "out").string()});
  ASSERT_EQ(p.wait(120s), 0) << p.stderr_text();
  auto j = nlohmann::json::parse(read_file(cwd / "out" / "results.json"));
  ASSERT_EQ(j["points"].size(), 1u);
  const auto& pt = j["points"][0];
  EXPECT_EQ(pt["status"], "ok") << pt.dump();
  EXPECT_EQ(pt["kind"], "peer");
  EXPECT_GT(pt["requests"].get<double>(), 0) << pt.dump();
  EXPECT_TRUE(pt["idle_at_n"].get<bool>()) << pt.dump();
  EXPECT_NE(j["meta"]["versions"]["node"].get<std::string>().find("node v"), std::string::npos)
      << j["meta"]["versions"].dump();
  EXPECT_TRUE(fs::exists(cwd / "out" / "graphs" / "data" / "node.dat"));
  EXPECT_TRUE(fs::exists(cwd / "out" / "peers" / "node-10-r1" / "start.sh"));
  fs::remove_all(cwd);
}

// redis-server, the peer of --handler resp (runner/peers/redis.cpp), started as the sweep starts
// it. Redis's own INFO counters are the independent check of the load generator's counts.
class RedisPeer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = runner::peer_missing("redis"); !why.empty())
      GTEST_SKIP() << "redis is not available: " << why;
    dir_ = temp_dir("redis");
    setup_ = runner::write_peer_config("redis", dir_.string(), runner::free_port(), 100,
                                       runner::host_limits());
    std::string error;
    child_ = runner::start_peer(setup_, (dir_ / "stdout.log").string(), -1, 30s, error);
    ASSERT_TRUE(error.empty()) << error;
  }
  void TearDown() override {
    child_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // INFO stats' total_commands_processed: the commands redis had run before this INFO.
  std::uint64_t commands_processed() {
    Conn c(setup_.port);
    c.send("*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n");
    std::string info;
    for (;;) {
      const auto at = info.find("total_commands_processed:");
      if (at != std::string::npos && info.find("\r\n", at) != std::string::npos)
        return std::stoull(info.substr(at + 25));
      std::string more = c.read_some();
      if (more.empty()) return 0;
      info += more;
    }
  }
  fs::path dir_;
  runner::PeerSetup setup_;
  std::unique_ptr<runner::Child> child_;
};

TEST_F(RedisPeer, LoadGeneratorCountsEqualRedisCommandsProcessed) {
  for (std::string path : {"/", "/ping", "/get"}) {
    const std::uint64_t before = commands_processed();  // this INFO counts from the next one on
    shootout::load::LoadConfig c;
    c.url = fmt::format("tcp://127.0.0.1:{}{}", setup_.port, path);
    c.handler = "resp";
    c.connections = 4;
    c.pipeline = 4;
    c.duration = 500ms;
    const auto r = shootout::load::run_load(c);
    EXPECT_GT(r.requests, 0u) << path;
    EXPECT_EQ(r.errors.total(), 0u) << path;
    EXPECT_EQ(r.responses_total, r.sent_total) << path;
    EXPECT_EQ(commands_processed(), before + 1 + r.sent_total) << path;
  }
}

TEST_F(RedisPeer, RunsWithoutPersistenceOnItsPortAndStopsOnSigterm) {
  const std::string conf = read_file(setup_.config_path);
  EXPECT_NE(conf.find("save \"\""), std::string::npos);
  EXPECT_NE(conf.find("appendonly no"), std::string::npos);
  EXPECT_NE(conf.find(fmt::format("port {}", setup_.port)), std::string::npos);
  Conn c(setup_.port);
  c.send("*1\r\n$4\r\nPING\r\n");
  EXPECT_EQ(c.read_some(), "+PONG\r\n");
  auto status = child_->stop(SIGTERM, 20s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0) << child_->log_tail();
  EXPECT_FALSE(fs::exists(dir_ / "dump.rdb")) << "nothing persisted";
}

// `shootout run --handler resp --peers redis`: our model and redis-server, measured with the
// resp probe, in one sweep and one set of graphs; an HTTP peer is skipped with the reason.
TEST(RunnerRedisPeer, ARespSweepMeasuresOurModelBesideRedis) {
  if (std::string why = runner::peer_missing("redis"); !why.empty())
    GTEST_SKIP() << "redis is not available: " << why;
  fs::path cwd = temp_dir("sweep-redis");
  shootout::test::Process p({shootout::test::shootout_binary(), "run", "--handler", "resp",
                             "--models", "evented", "--peers", "redis,nginx", "--connections", "10",
                             "--duration", "300ms", "--warmup", "100ms", "--idle-hold-seconds",
                             "0.2", "--out", (cwd / "out").string()});
  ASSERT_EQ(p.wait(180s), 0) << p.stderr_text();
  auto j = nlohmann::json::parse(read_file(cwd / "out" / "results.json"));
  ASSERT_EQ(j["points"].size(), 3u) << j["points"].dump();
  for (const auto& pt : j["points"]) {
    if (pt["server"] == "nginx") {
      EXPECT_EQ(pt["status"], "skipped") << pt.dump();
      EXPECT_NE(pt["reason"].get<std::string>().find("http"), std::string::npos) << pt.dump();
      continue;
    }
    EXPECT_EQ(pt["status"], "ok") << pt.dump();
    EXPECT_GT(pt["requests"].get<double>(), 0) << pt.dump();
  }
  EXPECT_NE(j["meta"]["versions"]["redis"].get<std::string>().find("Redis server"),
            std::string::npos)
      << j["meta"]["versions"].dump();
  EXPECT_TRUE(fs::exists(cwd / "out" / "graphs" / "data" / "redis.dat"));
  EXPECT_TRUE(fs::exists(cwd / "out" / "graphs" / "data" / "evented.dat"));
  fs::remove_all(cwd);
}

}  // namespace

// `shootout peer NAME`: the peer a run would start, started by hand. What it prints is what
// a user points strace or perf at, so the pid it prints must be the serving process itself.
class PeerCommand : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (std::string why = runner::peer_missing(GetParam()); !why.empty())
      GTEST_SKIP() << GetParam() << " is not available: " << why;
    dir_ = temp_dir("peer-command");
  }
  void TearDown() override {
    child_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // Starts `shootout peer` and returns the port; the line it printed is in `said_`.
  std::uint16_t start() {
    const std::uint16_t port = runner::free_port();
    child_ = std::make_unique<runner::Child>(
        std::vector<std::string>{shootout::test::shootout_binary(), "peer", GetParam(), "--port",
                                 std::to_string(port), "--dir", dir_.string()},
        (dir_ / "stdout.log").string());
    said_ = child_->wait_for_line("peer ", 30s).value_or("");
    return port;
  }
  fs::path dir_;
  std::string said_;
  std::unique_ptr<runner::Child> child_;
};

TEST_P(PeerCommand, ServesUnderThePidItPrintsAndStopsOnSigterm) {
  const std::uint16_t port = start();
  ASSERT_FALSE(said_.empty()) << child_->log_tail();
  EXPECT_NE(said_.find(fmt::format("pid {},", child_->pid())), std::string::npos)
      << "the printed pid is not the peer's own: " << said_;
  EXPECT_NE(said_.find(fmt::format("127.0.0.1:{}", port)), std::string::npos) << said_;
  ASSERT_TRUE(runner::wait_for_port(port, 30s, child_.get())) << child_->log_tail();
  Conn c(port);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c.send(shootout::test::get_request("/")));
    expect_hello(shootout::test::read_response(c), fmt::format("request {}", i));
  }
  auto status = child_->stop(SIGTERM, 20s);
  ASSERT_TRUE(status.has_value()) << GetParam() << " did not stop within 20 s of SIGTERM";
  EXPECT_EQ(*status, 0) << child_->log_tail();
}

INSTANTIATE_TEST_SUITE_P(RunnerPeers, PeerCommand,
                         ::testing::Values("nginx", "apache-prefork", "apache-worker",
                                           "apache-event"),
                         param_name);

// A stock Debian Apache reads no .htaccess (its apache2.conf says AllowOverride None for /).
// The generated configuration must say so too, or every request pays for looking up a
// .htaccess in each folder above the document root. An invalid one there proves it is unread:
// read, it would turn every answer into a 500.
TEST(RunnerPeers, ApacheReadsNoHtaccessAboveItsDocumentRoot) {
  if (std::string why = runner::peer_missing("apache-worker"); !why.empty())
    GTEST_SKIP() << "apache2 is not available: " << why;
  fs::path dir = temp_dir("apache-htaccess");
  { std::ofstream(dir / ".htaccess") << "ThisIsNotADirective at all\n"; }
  auto setup = runner::write_peer_config("apache-worker", dir.string(), runner::free_port(), 10,
                                         runner::host_limits());
  std::string error;
  auto child = runner::start_peer(setup, (dir / "stdout.log").string(), -1, 30s, error);
  ASSERT_TRUE(error.empty()) << error;
  auto r = shootout::test::http_get(setup.port, "/");
  EXPECT_EQ(r.status, 200) << "Apache read " << (dir / ".htaccess") << ": " << r.body;
  EXPECT_EQ(r.body, kBody);
  child.reset();
  fs::remove_all(dir);
}

TEST(RunnerPeers, PeerCommandRejectsAnUnknownPeerWithUsageAndExit2) {
  shootout::test::Process p({shootout::test::shootout_binary(), "peer", "no-such-server"});
  EXPECT_EQ(p.wait(30s), 2);
  EXPECT_NE(p.stderr_text().find("Usage"), std::string::npos) << p.stderr_text();
}
