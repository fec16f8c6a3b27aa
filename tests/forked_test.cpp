// The forked model's own promises, checked against real processes (the integration suite covers
// the protocol for both forms): children are reaped, a killed child or worker does not take the
// server down, --max-procs holds, a failed fork is survived, reaped children's CPU reaches the
// stats file, and no process outlives the server, even when the grace period runs out or the
// parent is killed.
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "client.hpp"
#include "server_process.hpp"

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

std::string request_closing(std::string_view target) {
  return get_request(target, "Connection: close\r\n");
}

class ForkedTest : public ::testing::Test {
 protected:
  // Orphans of a server are re-parented to this process, so "nothing left behind" is visible.
  void SetUp() override { prctl(PR_SET_CHILD_SUBREAPER, 1); }

  std::string stats_path() const {
    return testing::TempDir() + "forked-stats-" + std::to_string(getpid()) + ".json";
  }
  // The server's stats file, freshly written on SIGUSR1 (the old one is removed first, and the
  // new one appears by rename, so it is read whole).
  nlohmann::json stats(ServerProcess& s) {
    const std::string path = stats_path();
    std::filesystem::remove(path);
    s.process().signal(SIGUSR1);
    if (!eventually([&] { return std::filesystem::exists(path); })) return {};
    std::ifstream f(path);
    return nlohmann::json::parse(f, nullptr, false);
  }
  // Waits until the server has started `n` responses (its request counter, shared by children).
  void wait_for_requests(ServerProcess& s, std::uint64_t n) {
    ASSERT_TRUE(eventually([&] { return stats(s).value("requests", 0ull) >= n; }, 6000));
  }
  static std::int64_t children_cpu_us(const nlohmann::json& j) {
    return j["children"]["utime_us"].get<std::int64_t>() +
           j["children"]["stime_us"].get<std::int64_t>();
  }
  static void expect_clean_stop(ServerProcess& s) {
    EXPECT_EQ(s.stop(), 0) << s.process().stderr_text();
    EXPECT_TRUE(children_of(getpid()).empty()) << "a process of the server outlived it";
  }
};

TEST_F(ForkedTest, NoZombiesAfterTwoThousandShortConnections) {
  ServerProcess s({"--model", "forked"});
  for (int i = 0; i < 2000; ++i) {
    Conn c(s.port());
    ASSERT_TRUE(c.send(request_closing("/")));
    ASSERT_EQ(read_response(c).status, 200) << "connection " << i;
  }
  // The last child exits after its response; SIGCHLD then reaps it. Nothing may stay behind.
  EXPECT_TRUE(eventually([&] { return children_of(s.pid()).empty(); }))
      << children_of(s.pid()).size() << " children left";
  EXPECT_FALSE(has_zombie_child(s.pid()));
  expect_clean_stop(s);
}

TEST_F(ForkedTest, ServerGoesOnAfterAChildIsKilledMidResponse) {
  ServerProcess s({"--model", "forked", "--stats-file", stats_path()});
  Conn busy(s.port());
  busy.send(get_request("/sleep?ms=60000"));  // killed long before it ends
  wait_for_requests(s, 1);
  auto kids = children_of(s.pid());
  ASSERT_EQ(kids.size(), 1u);
  ::kill(kids[0], SIGKILL);
  EXPECT_EQ(busy.read_all(), "");  // the connection died with its process, unanswered
  EXPECT_EQ(http_get(s.port(), "/").status, 200);
  EXPECT_TRUE(eventually([&] { return children_of(s.pid()).empty(); }));
  EXPECT_FALSE(has_zombie_child(s.pid()));
  expect_clean_stop(s);
}

TEST_F(ForkedTest, PreforkReplacesAKilledWorker) {
  constexpr std::size_t kWorkers = 3;
  ServerProcess s(
      {"--model", "forked", "--prefork", std::to_string(kWorkers), "--stats-file", stats_path()});
  ASSERT_TRUE(eventually([&] { return children_of(s.pid()).size() == kWorkers; }));
  Conn busy(s.port());
  busy.send(get_request("/sleep?ms=60000"));  // killed long before it ends
  wait_for_requests(s, 1);
  // The worker serving `busy` holds one descriptor more than the idle ones: the connection.
  auto kids = children_of(s.pid());
  auto serving = *std::max_element(kids.begin(), kids.end(),
                                   [](pid_t a, pid_t b) { return fd_count(a) < fd_count(b); });
  ::kill(serving, SIGKILL);
  EXPECT_EQ(busy.read_all(), "");
  EXPECT_TRUE(eventually([&] {
    auto now = children_of(s.pid());
    return now.size() == kWorkers && std::find(now.begin(), now.end(), serving) == now.end();
  })) << "the pool did not return to "
      << kWorkers << " workers";
  for (int i = 0; i < 10; ++i) EXPECT_EQ(http_get(s.port(), "/").status, 200);
  expect_clean_stop(s);
}

// --max-procs 3 and six connections held open without a byte: a child per connection until
// three are live, the other three left in the backlog. Nothing here depends on timing: a held
// connection keeps its child alive (the idle timeout is minutes), so a fourth child, if the cap
// let one through, would still be there whenever it is looked for. Answering the first three
// frees their slots for the rest.
TEST_F(ForkedTest, MaxProcsCapsLiveChildren) {
  ServerProcess s({"--model", "forked", "--max-procs", "3", "--stats-file", stats_path()});
  const std::uint64_t before = stats(s).value("connections", 0ull);
  std::vector<Conn> conns;
  for (int i = 0; i < 6; ++i) conns.emplace_back(s.port());
  // Each child counts its connection when it starts serving it.
  ASSERT_TRUE(eventually([&] { return stats(s).value("connections", 0ull) - before >= 3u; }));
  EXPECT_EQ(stats(s).value("connections", 0ull) - before, 3u) << "accepted past the cap";
  EXPECT_EQ(children_of(s.pid()).size(), 3u) << "more live children than --max-procs";
  // The first three are served and close; the rest are taken on as slots free.
  int answered = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(conns[i].send(request_closing("/")));
    answered += read_response(conns[i]).status == 200;
  }
  for (int i = 3; i < 6; ++i) {
    ASSERT_TRUE(conns[i].send(request_closing("/")));
    answered += read_response(conns[i]).status == 200;
    EXPECT_LE(children_of(s.pid()).size(), 3u) << "more live children than --max-procs";
  }
  EXPECT_EQ(answered, 6);  // the excess waited in the backlog, then was served
  EXPECT_EQ(stats(s).value("connections", 0ull) - before, 6u);
  expect_clean_stop(s);
}

// A pids cgroup with a limit: the honest way to make fork(2) fail with EAGAIN for root, who
// is exempt from RLIMIT_NPROC. Removed at the end (it is empty once the server has exited).
class PidsCgroup {
 public:
  PidsCgroup() {
    for (const char* root : {"/sys/fs/cgroup/pids", "/sys/fs/cgroup"}) {
      std::filesystem::path dir =
          std::filesystem::path(root) / ("shootout-forked-test-" + std::to_string(getpid()));
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

TEST_F(ForkedTest, FailedForkIsLoggedAndSurvived) {
  PidsCgroup cg;
  if (!cg.ok())
    GTEST_SKIP() << "needs a writable pids cgroup (root with /sys/fs/cgroup/pids or cgroup v2 "
                    "with the pids controller) to make fork fail; root ignores RLIMIT_NPROC";
  ServerProcess s({"--model", "forked", "--stats-file", stats_path()});
  // The server's two threads (main, control) are its whole allowance: every fork fails.
  ASSERT_TRUE(cg.write("cgroup.procs", std::to_string(s.pid())));
  ASSERT_TRUE(cg.write("pids.max", "2"));
  for (int i = 0; i < 20; ++i) {
    Conn c(s.port());
    c.send(request_closing("/"));
    EXPECT_EQ(c.read_all(), "") << "fork should have failed: closed unanswered";
  }
  EXPECT_GE(stats(s).value("errors", 0ull), 20u);
  EXPECT_NE(s.process().stderr_text().find("cannot fork"), std::string::npos);
  ASSERT_TRUE(cg.write("pids.max", "max"));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(http_get(s.port(), "/").status, 200);
  expect_clean_stop(s);
}

TEST_F(ForkedTest, ReapedChildrenCpuReachesTheStatsFile) {
  ServerProcess s({"--model", "forked", "--stats-file", stats_path()});
  const auto before = stats(s);
  ASSERT_FALSE(before.is_discarded());
  constexpr int kConns = 20, kBurnUs = 5000;
  for (int i = 0; i < kConns; ++i) {
    Conn c(s.port());
    c.send(request_closing("/cpu?us=" + std::to_string(kBurnUs)));
    ASSERT_EQ(read_response(c).status, 200);
  }
  ASSERT_TRUE(eventually([&] { return children_of(s.pid()).empty(); }));
  const auto after = stats(s);
  ASSERT_FALSE(after.is_discarded());
  // Each child burned kBurnUs of its own CPU clock and was then reaped into RUSAGE_CHILDREN,
  // which holds the kernel's exact run time of every reaped child (not clock ticks: see
  // docs/LOADGEN.md), so the bound is causal and needs no allowance.
  EXPECT_GE(children_cpu_us(after) - children_cpu_us(before), kConns * kBurnUs);
  EXPECT_EQ(after.value("requests", 0ull) - before.value("requests", 0ull), kConns + 0ull);
  EXPECT_EQ(after.value("connections", 0ull) - before.value("connections", 0ull), kConns + 0ull);
  expect_clean_stop(s);
}

// Past --grace the stragglers are SIGKILLed and reaped: exit 1 (not a clean drain), and no
// process remains. Both forms.
class ForkedGraceTest : public ForkedTest, public ::testing::WithParamInterface<int> {};

TEST_P(ForkedGraceTest, StragglersAreKilledAfterTheGracePeriod) {
  ServerProcess s({"--model", "forked", "--prefork", std::to_string(GetParam()), "--grace", "300",
                   "--stats-file", stats_path()});
  Conn busy(s.port());
  busy.send(get_request("/sleep?ms=60000"));  // outlasts any --grace here
  wait_for_requests(s, 1);
  s.process().signal(SIGTERM);
  EXPECT_EQ(busy.read_all(), "");  // killed before it could answer
  EXPECT_EQ(s.process().wait(std::chrono::seconds(30)), 1);
  EXPECT_NE(s.process().stderr_text().find("grace period"), std::string::npos);
  EXPECT_TRUE(children_of(getpid()).empty()) << "a process of the server outlived it";
}

INSTANTIATE_TEST_SUITE_P(Forms, ForkedGraceTest, ::testing::Values(0, 2),
                         [](const auto& p) { return p.param ? "prefork" : "per_connection"; });

// The parent is SIGKILLed (nobody stops the children, nobody bounds their drain with --grace
// any more): every child must die with it, whatever it is doing. Here: a child parked in a
// /sleep of 60 s, one blocked writing a 1 GB body to a client that reads none of it (with an
// idle timeout of 10 minutes, so only the death signal can end it), one waiting on an idle
// keep-alive connection and, in a pool, the idle workers blocked in accept4. A stop handler
// could not end the first two (it lets a response finish) nor a worker that entered accept4
// just after checking its flag, so the death signal (PR_SET_PDEATHSIG) is SIGKILL. Afterwards
// every client sees its connection end and nobody listens on the port any more. Both forms.
class ForkedParentDeathTest : public ForkedTest, public ::testing::WithParamInterface<int> {};

bool in_accept4(pid_t pid) {  // the system call the process is blocked in (/proc/PID/syscall)
  std::ifstream f("/proc/" + std::to_string(pid) + "/syscall");
  long nr = -1;
  return (f >> nr) && nr == SYS_accept4;
}

TEST_P(ForkedParentDeathTest, ChildrenInAcceptOrServingDieWithTheirKilledParent) {
  const int workers = GetParam();
  std::vector<std::string> args{"--model", "forked",       "--idle-timeout",
                                "600000",  "--stats-file", stats_path()};
  if (workers > 0) args.insert(args.end(), {"--prefork", std::to_string(workers)});
  ServerProcess s(args);
  if (workers > 0) {
    ASSERT_TRUE(eventually([&] { return children_of(s.pid()).size() == std::size_t(workers); }));
  }
  Conn idle(s.port());  // answered once, then idle
  ASSERT_TRUE(idle.send(get_request("/")));
  ASSERT_EQ(read_response(idle).status, 200);
  Conn stuck(s.port());  // never reads its body
  ASSERT_TRUE(stuck.send(get_request("/bytes?n=1000000000")));
  Conn sleeper(s.port());
  ASSERT_TRUE(sleeper.send(get_request("/sleep?ms=60000")));
  wait_for_requests(s, 3);  // all three have reached their children
  const auto kids = children_of(s.pid());
  ASSERT_EQ(kids.size(), workers > 0 ? std::size_t(workers) : 3u);
  if (workers > 0) {
    ASSERT_TRUE(eventually([&] { return std::any_of(kids.begin(), kids.end(), in_accept4); }))
        << "no idle worker is blocked in accept4";
  }

  s.process().signal(SIGKILL);
  ASSERT_EQ(s.process().wait(std::chrono::seconds(60)), 128 + SIGKILL);
  // The children are now ours (subreaper): reap each one, or kill it if it outlived the bound.
  for (pid_t k : kids) {
    bool gone = eventually([&] { return ::waitpid(k, nullptr, WNOHANG) == k; });
    EXPECT_TRUE(gone) << "child " << k << " outlived its parent";
    if (!gone) {
      ::kill(k, SIGKILL);
      ::waitpid(k, nullptr, 0);
    }
  }
  EXPECT_TRUE(children_of(getpid()).empty()) << "a process of the server outlived it";
  for (Conn* c : {&idle, &sleeper}) EXPECT_EQ(c->read_all(), "");  // ended, unanswered
  EXPECT_THROW(Conn{s.port()}, std::runtime_error) << "something still listens on the port";
  std::filesystem::remove(stats_path());
}

INSTANTIATE_TEST_SUITE_P(Forms, ForkedParentDeathTest, ::testing::Values(0, 4),
                         [](const auto& p) { return p.param ? "prefork" : "per_connection"; });

// --no-reap (teaching point: children must be reaped). Children of `pid` in state Z, from
// /proc/<child>/stat (the field after the parenthesised command).
int zombie_children(pid_t pid) {
  int n = 0;
  for (pid_t k : children_of(pid)) {
    std::ifstream f("/proc/" + std::to_string(k) + "/stat");
    std::string line;
    std::getline(f, line);
    auto close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z') ++n;
  }
  return n;
}

TEST_F(ForkedTest, NoReapLeavesExitedChildrenAsZombiesAndStopReapsThem) {
  ServerProcess s({"--model", "forked", "--no-reap"});
  for (int i = 0; i < 3; ++i) {
    Conn c(s.port());
    ASSERT_TRUE(c.send(request_closing("/")));
    ASSERT_EQ(read_response(c).status, 200);
  }
  // Each child exits after its response and stays <defunct>: the parent's child, state Z.
  EXPECT_TRUE(eventually([&] { return zombie_children(s.pid()) == 3; }))
      << zombie_children(s.pid()) << " zombies";
  EXPECT_EQ(children_of(s.pid()).size(), 3u);
  // The kernel makes a child a zombie before the parent's SIGCHLD handling logs it.
  EXPECT_TRUE(eventually([&] {
    return s.process().stderr_text().find("left unreaped (--no-reap)") != std::string::npos;
  }));
  expect_clean_stop(s);  // SIGTERM reaps them: none is handed to us (the subreaper)
  // All three, or fewer if SIGTERM overtook the last SIGCHLD (then the usual reap takes it).
  EXPECT_NE(s.process().stderr_text().find("children left unreaped (--no-reap)"), std::string::npos)
      << s.process().stderr_text();
}

TEST_F(ForkedTest, WithoutNoReapExitedChildrenAreReapedNotLeftAsZombies) {
  ServerProcess s({"--model", "forked"});
  for (int i = 0; i < 3; ++i) {
    Conn c(s.port());
    ASSERT_TRUE(c.send(request_closing("/")));
    ASSERT_EQ(read_response(c).status, 200);
  }
  EXPECT_TRUE(eventually([&] { return children_of(s.pid()).empty(); }));
  EXPECT_EQ(zombie_children(s.pid()), 0);
  expect_clean_stop(s);
}

TEST(ForkedFlags, NoReapWithAnotherModelIsAUsageError) {
  Process p({shootout_binary(), "serve", "--model", "threaded", "--port", "0", "--no-reap"});
  EXPECT_EQ(p.wait(std::chrono::seconds(30)), 2);
  EXPECT_NE(p.stderr_text().find("--model forked"), std::string::npos) << p.stderr_text();
}

TEST_F(ForkedTest, NoReapStopsAcceptingAtMaxZombiesAndSaysSo) {
  ServerProcess s({"--model", "forked", "--no-reap", "--max-zombies", "2"});
  for (int i = 0; i < 2; ++i) {
    Conn c(s.port());
    ASSERT_TRUE(c.send(request_closing("/")));
    ASSERT_EQ(read_response(c).status, 200);
  }
  ASSERT_TRUE(eventually([&] {
    return s.process().stderr_text().find("not accepting any more until SIGTERM") !=
           std::string::npos;
  })) << s.process().stderr_text();
  EXPECT_EQ(zombie_children(s.pid()), 2);
  // A third client gets into the backlog (or is accepted by an accept() that was already
  // waiting, and refused), but no child is forked for it: it is closed without an answer.
  Conn late(s.port());
  ASSERT_TRUE(late.send(request_closing("/")));
  expect_clean_stop(s);
  EXPECT_EQ(read_response(late).status, 0);
}

}  // namespace
}  // namespace shootout::test
