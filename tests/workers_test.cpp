// `serve --workers N` (common/workers.hpp): a master and N worker processes for the models whose
// one process serves many connections (evented, coroutine, uring), checked against real
// processes and sockets: the process tree is one master and N workers, each holding connections;
// a killed worker is replaced and serving goes on; SIGTERM finishes every started response and
// leaves no process behind; the stats file counts every worker's requests; the server holds more
// connections than one process's RLIMIT_NOFILE allows (the point of the feature); threaded and
// forked refuse the flag. uring skips, with the reason, where io_uring is unavailable.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client.hpp"
#include "sampler.hpp"
#include "server_process.hpp"
#include "variants.hpp"

namespace shootout::test {
namespace {

using std::chrono::milliseconds;

// Polls `done` every 10 ms, at most `tries` times (60 s: generous for a slow or sanitized
// host, and only a failing test waits that long). Bounds every wait in this file.
bool eventually(const std::function<bool()>& done, int tries = 6000) {
  for (int i = 0; i < tries; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return done();
}

// Raises this process's soft RLIMIT_NOFILE to its hard limit; false if that is below `need`.
bool descriptors_for(std::size_t need) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need;
}

// Inodes of the established TCP sockets whose local port is `port` (/proc/net/tcp: the
// server's ends of its connections).
std::set<unsigned long> established_inodes(std::uint16_t port) {
  std::set<unsigned long> inodes;
  std::ifstream f("/proc/net/tcp");
  std::string line;
  std::getline(f, line);  // the header
  while (std::getline(f, line)) {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    std::istringstream in(line);
    std::string sl, local, remote, state, queues, timer, retr, uid, timeout;
    unsigned long inode = 0;
    if (!(in >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >>
          inode))
      continue;
    const auto colon = local.find(':');
    if (colon == std::string::npos || state != "01") continue;  // 01: TCP_ESTABLISHED
    if (std::stoul(local.substr(colon + 1), nullptr, 16) == port) inodes.insert(inode);
  }
  return inodes;
}

// How many of the server's established connections (on `port`) process `pid` holds, read from
// its descriptors (/proc/PID/fd: "socket:[INODE]").
int connections_held(pid_t pid, std::uint16_t port) {
  const auto inodes = established_inodes(port);
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  int held = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  while (dirent* e = ::readdir(d)) {
    char target[128] = {};
    const std::string link = dir + "/" + e->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    unsigned long inode = 0;
    if (std::sscanf(target, "socket:[%lu]", &inode) == 1 && inodes.count(inode)) ++held;
  }
  ::closedir(d);
  return held;
}

bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

// The soft "Max open files" of `pid` (/proc/PID/limits), -1 if not found.
long open_files_limit(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/limits");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("Max open files", 0) == 0) return std::stol(line.substr(26));
  return -1;
}

// Reaps whatever zombies this process (a subreaper) has collected: orphans of a killed master.
void reap_orphans() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

// `count` keep-alive connections, each having sent GET / and read its 200.
std::vector<Conn> answered_connections(std::uint16_t port, int count) {
  std::vector<Conn> conns;
  conns.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    conns.emplace_back(port);
    EXPECT_TRUE(conns.back().send(get_request("/")));
    EXPECT_EQ(read_response(conns.back()).status, 200) << "connection " << i;
  }
  return conns;
}

const std::vector<Variant>& worker_models() {
  static const std::vector<Variant> models = [] {
    std::vector<Variant> out;
    for (const auto& v : all_variants())
      if (v.name == "evented" || v.name == "coroutine" || v.name == "uring") out.push_back(v);
    return out;
  }();
  return models;
}

class WorkersTest : public ::testing::TestWithParam<Variant> {
 protected:
  // Orphans of a server are re-parented to this process, so "nothing left behind" is visible.
  void SetUp() override {
    if (std::string why = unavailable(GetParam()); !why.empty()) GTEST_SKIP() << why;
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  }
  void TearDown() override { reap_orphans(); }

  std::vector<std::string> args(int workers, std::vector<std::string> more = {}) const {
    std::vector<std::string> a = GetParam().args;
    a.insert(a.end(), {"--workers", std::to_string(workers)});
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  std::string stats_path() const {
    return testing::TempDir() + "workers-stats-" + std::to_string(getpid()) + ".json";
  }
  // Waits for the master's N workers (its only children) and returns them.
  static std::vector<pid_t> workers_of(ServerProcess& s, std::size_t n) {
    std::vector<pid_t> kids;
    EXPECT_TRUE(eventually([&] { return (kids = children_of(s.pid())).size() == n; }))
        << kids.size() << " children of the master, not " << n;
    return kids;
  }
  // SIGTERM: the master exits 0, and no process of its tree is left anywhere.
  static void expect_clean_stop(ServerProcess& s, const std::vector<pid_t>& workers) {
    EXPECT_EQ(s.stop(), 0) << s.process().stderr_text();
    EXPECT_TRUE(children_of(getpid()).empty()) << "a process of the server outlived it";
    for (pid_t w : workers) EXPECT_FALSE(alive(w)) << "worker " << w << " is still there";
  }
};

TEST_P(WorkersTest, ThreeWorkersUnderOneMasterEachHoldConnections) {
  constexpr int kConns = 90;
  ServerProcess s(args(3));
  auto conns = answered_connections(s.port(), kConns);
  const auto workers = workers_of(s, 3);
  int total = 0;
  for (pid_t w : workers) {
    EXPECT_TRUE(children_of(w).empty()) << "worker " << w << " has children of its own";
    const int held = connections_held(w, s.port());
    EXPECT_GT(held, 0) << "worker " << w << " holds no connection";
    total += held;
  }
  EXPECT_EQ(total, kConns) << "the workers hold every connection between them";
  EXPECT_EQ(connections_held(s.pid(), s.port()), 0) << "the master accepts nothing";
  conns.clear();
  expect_clean_stop(s, workers);
}

// What the shootout's sampler counts as the server's sockets (sock_diag on the port): every
// connection and one listener per worker; the master's bound socket that never listens is no
// connection, and is not counted as one.
TEST_P(WorkersTest, TheSamplerCountsEachConnectionOnceAndOneListenerPerWorker) {
  constexpr int kConns = 40;
  ServerProcess s(args(2));
  auto conns = answered_connections(s.port(), kConns);
  const auto workers = workers_of(s, 2);
  const auto seen = load::server_sockets(s.port());
  ASSERT_TRUE(seen.sockets_measured);
  EXPECT_EQ(seen.connected_sockets, std::uint64_t{kConns});
  EXPECT_EQ(seen.sockets, std::uint64_t{kConns} + 2) << "connections and two listeners";
  conns.clear();
  expect_clean_stop(s, workers);
}

TEST_P(WorkersTest, AKilledWorkerIsReplacedAndRequestsKeepBeingAnswered) {
  ServerProcess s(args(3));
  const auto before = workers_of(s, 3);
  const pid_t victim = before[1];
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  // The master says it restarted the worker, and that the new one listens.
  std::vector<pid_t> after;
  ASSERT_TRUE(eventually([&] {
    after = children_of(s.pid());
    return after.size() == 3 && std::find(after.begin(), after.end(), victim) == after.end() &&
           s.process().stderr_text().find("is listening") != std::string::npos;
  })) << s.process().stderr_text();
  EXPECT_NE(s.process().stderr_text().find("was killed by signal 9"), std::string::npos)
      << s.process().stderr_text();
  for (int i = 0; i < 60; ++i) EXPECT_EQ(http_get(s.port(), "/").status, 200) << "request " << i;
  // The new worker takes its share of connections.
  auto conns = answered_connections(s.port(), 60);
  int held = 0;
  for (pid_t w : after) held += connections_held(w, s.port());
  EXPECT_EQ(held, 60);
  conns.clear();
  expect_clean_stop(s, after);
}

TEST_P(WorkersTest, SigtermUnderLoadFinishesEveryStartedResponseAndLeavesNoProcess) {
  constexpr int kSleeping = 30, kIdle = 30;
  ServerProcess s(args(3, {"--stats-file", stats_path()}));
  const auto workers = workers_of(s, 3);
  auto idle = answered_connections(s.port(), kIdle);
  std::vector<Conn> sleeping;
  for (int i = 0; i < kSleeping; ++i) {
    sleeping.emplace_back(s.port());
    ASSERT_TRUE(sleeping.back().send(get_request("/sleep?ms=1500")));
  }
  // Every /sleep has started (its response is counted when it starts), then the stop.
  ASSERT_TRUE(await_requests(s, stats_path(), kIdle + kSleeping));
  s.process().signal(SIGTERM);
  for (int i = 0; i < kSleeping; ++i) {
    Response r = read_response(sleeping[static_cast<std::size_t>(i)]);
    EXPECT_EQ(r.status, 200) << "started response " << i << " was cut";
  }
  for (auto& c : idle) EXPECT_TRUE(c.closed_by_peer()) << "an idle connection was left open";
  EXPECT_EQ(s.process().wait(std::chrono::seconds(60)), 0) << s.process().stderr_text();
  EXPECT_TRUE(children_of(getpid()).empty()) << "a process of the server outlived it";
  for (pid_t w : workers) EXPECT_FALSE(alive(w)) << "worker " << w << " is still there";
}

TEST_P(WorkersTest, StatsFileCountsEveryRequestOfEveryWorker) {
  constexpr int kConns = 40, kEach = 25;
  ServerProcess s(args(3, {"--stats-file", stats_path()}));
  const auto workers = workers_of(s, 3);
  int answered = 0;
  {
    auto conns = answered_connections(s.port(), kConns);
    answered += kConns;
    for (int round = 1; round < kEach; ++round)
      for (auto& c : conns) {
        ASSERT_TRUE(c.send(get_request("/")));
        answered += read_response(c).status == 200;
      }
  }
  ASSERT_EQ(answered, kConns * kEach);
  expect_clean_stop(s, workers);
  std::ifstream f(stats_path());
  auto j = nlohmann::json::parse(f, nullptr, false);
  ASSERT_TRUE(j.is_object()) << "no stats file at exit";
  EXPECT_EQ(j.value("pid", 0), s.pid()) << "written by the master";
  EXPECT_EQ(j.value("requests", 0ull), static_cast<std::uint64_t>(answered));
  EXPECT_EQ(j.value("connections", 0ull), static_cast<std::uint64_t>(kConns));
  // The workers were reaped, so their CPU is in the master's rusage of its children.
  EXPECT_GT(j["children"].value("utime_us", 0ll) + j["children"].value("stime_us", 0ll), 0);
}

// The point of the feature: a server whose every process may hold 256 descriptors holds 600
// connections, and answers on each of them again.
TEST_P(WorkersTest, FourWorkersHoldMoreConnectionsThanOneProcessMayOpen) {
  constexpr int kConns = 600;
  constexpr long kNofile = 256;
  if (!descriptors_for(kConns + 200)) GTEST_SKIP() << "RLIMIT_NOFILE too low for the clients";
  ServerProcess s(args(4), kNofile);
  const auto workers = workers_of(s, 4);
  for (pid_t w : workers) ASSERT_EQ(open_files_limit(w), kNofile) << "worker " << w;
  auto conns = answered_connections(s.port(), kConns);
  int answered = 0;
  for (auto& c : conns) {
    ASSERT_TRUE(c.send(get_request("/")));
    answered += read_response(c).status == 200;
  }
  EXPECT_EQ(answered, kConns);
  int held = 0;
  for (pid_t w : workers) {
    const int n = connections_held(w, s.port());
    EXPECT_LT(n, kNofile) << "worker " << w;
    held += n;
  }
  EXPECT_EQ(held, kConns) << "more than one process's " << kNofile << " descriptors, held at once";
  conns.clear();
  expect_clean_stop(s, workers);
}

TEST_P(WorkersTest, NoWorkerOutlivesAKilledMaster) {
  ServerProcess s(args(2));
  const auto workers = workers_of(s, 2);
  s.process().signal(SIGKILL);
  EXPECT_EQ(s.process().wait(std::chrono::seconds(30)), 128 + SIGKILL);
  EXPECT_TRUE(eventually([&] {
    reap_orphans();  // the killed workers are re-parented here (a subreaper) as zombies
    return std::none_of(workers.begin(), workers.end(), alive);
  })) << "a worker outlived its master";
}

TEST_P(WorkersTest, EachWorkerWritesItsOwnTrace) {
  const std::string trace = testing::TempDir() + "workers-trace-" + std::to_string(getpid());
  ServerProcess s(args(2, {"--trace", trace}));
  const auto workers = workers_of(s, 2);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(http_get(s.port(), "/").status, 200);
  expect_clean_stop(s, workers);
  EXPECT_FALSE(std::filesystem::exists(trace)) << "the master records nothing";
  for (pid_t w : workers) {
    const std::string file = trace + "." + std::to_string(w);
    std::ifstream f(file);
    auto j = nlohmann::json::parse(f, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("traceEvents")) << file;
    std::filesystem::remove(file);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, WorkersTest, ::testing::ValuesIn(worker_models()), variant_name);

// A pids cgroup with a limit: the honest way to make fork(2) fail with EAGAIN for root, who
// is exempt from RLIMIT_NPROC. Removed at the end (it is empty once the server has exited).
class PidsCgroup {
 public:
  PidsCgroup() {
    for (const char* root : {"/sys/fs/cgroup/pids", "/sys/fs/cgroup"}) {
      std::filesystem::path dir =
          std::filesystem::path(root) / ("shootout-workers-test-" + std::to_string(getpid()));
      if (!std::filesystem::exists(std::filesystem::path(root) / "cgroup.procs")) continue;
      if (::mkdir(dir.c_str(), 0755) != 0) continue;
      if (std::filesystem::exists(dir / "pids.max")) {
        dir_ = dir;
        return;
      }
      ::rmdir(dir.c_str());
    }
  }
  ~PidsCgroup() {
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  bool ok() const { return !dir_.empty(); }
  bool write(const std::string& file, const std::string& value) {
    std::ofstream f(dir_ / file);
    f << value << std::flush;
    return static_cast<bool>(f);
  }

 private:
  std::filesystem::path dir_;
};

// The master alone in a cgroup that allows it no other task: the restart of a killed worker
// cannot fork. The master says so, keeps serving with the workers it has, and starts the
// worker once the limit is lifted.
TEST(WorkersFork, ARestartThatCannotForkIsLoggedAndRetriedUntilItSucceeds) {
  PidsCgroup cg;
  if (!cg.ok())
    GTEST_SKIP() << "needs a writable pids cgroup (root with /sys/fs/cgroup/pids or cgroup v2 "
                    "with the pids controller) to make fork fail; root ignores RLIMIT_NPROC";
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  {
    ServerProcess s({"--model", "evented", "--workers", "2"});
    std::vector<pid_t> workers;
    ASSERT_TRUE(eventually([&] { return (workers = children_of(s.pid())).size() == 2; }));
    ASSERT_TRUE(cg.write("cgroup.procs", std::to_string(s.pid())));  // the master only
    ASSERT_TRUE(cg.write("pids.max", "1"));
    ASSERT_EQ(::kill(workers[0], SIGKILL), 0);
    ASSERT_TRUE(eventually([&] {
      return s.process().stderr_text().find("cannot fork worker 1 of 2") != std::string::npos;
    })) << s.process().stderr_text();
    for (int i = 0; i < 20; ++i) EXPECT_EQ(http_get(s.port(), "/").status, 200) << "request " << i;
    ASSERT_TRUE(cg.write("pids.max", "max"));
    ASSERT_TRUE(eventually([&] {
      return s.process().stderr_text().find("is listening") != std::string::npos &&
             children_of(s.pid()).size() == 2;
    })) << s.process().stderr_text();
    for (int i = 0; i < 20; ++i) EXPECT_EQ(http_get(s.port(), "/").status, 200) << "request " << i;
    EXPECT_EQ(s.stop(), 0) << s.process().stderr_text();
  }
  reap_orphans();
  EXPECT_TRUE(children_of(getpid()).empty());
}

TEST(WorkersUsage, ThreadedAndForkedRefuseWorkersWithExitTwo) {
  for (const char* model : {"threaded", "forked"}) {
    Process p({shootout_binary(), "serve", "--port", "0", "--model", model, "--workers", "2"});
    EXPECT_EQ(p.wait(std::chrono::seconds(30)), 2) << model;
    const std::string err = p.stderr_text();
    EXPECT_NE(err.find("--workers is for evented, coroutine and uring"), std::string::npos)
        << model << ": " << err;
    EXPECT_NE(err.find("Usage"), std::string::npos) << model << ": " << err;
  }
}

TEST(WorkersUsage, AWorkerThatCannotStartStopsTheServerWithItsStatus) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // The coroutine model checks --stack-size itself, in each worker, and exits 2.
  Process p({shootout_binary(), "serve", "--port", "0", "--model", "coroutine", "--workers", "2",
             "--stack-size", "1000"});
  EXPECT_EQ(p.wait(std::chrono::seconds(60)), 2) << p.stderr_text();
  EXPECT_EQ(p.stdout_text().find("listening on"), std::string::npos);
  EXPECT_NE(p.stderr_text().find("before the server listened"), std::string::npos)
      << p.stderr_text();
  EXPECT_TRUE(children_of(getpid()).empty());
}

}  // namespace
}  // namespace shootout::test
