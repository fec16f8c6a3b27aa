// The evented model beyond the shared integration suite: the poller backends against each
// other, the loop driven in-process over socketpairs (a callback closing another connection of
// the same ready batch), and real server processes for the slow reader, clients that write
// before they read (large echoes, long queues of answers), the /cpu stall, EMFILE, select's
// FD_SETSIZE limit, the output cap on every path that adds output, and timers that never fire
// early. The process tests of what every event loop must do (suites LoopServer,
// LoopCpuStall, LoopOutputCap, LoopTimers) run for both loop models, evented and uring (the
// uring loop's own tests are in uring_test.cpp).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <thread>
#include <tuple>

#include "client.hpp"
#include "evented/loop.hpp"
#include "files.hpp"
#include "mailbox.hpp"
#include "owner_thread.hpp"
#include "poller.hpp"
#include "server_process.hpp"
#include "timers.hpp"
#ifdef SHOOTOUT_HAVE_URING
#include "uring/loop.hpp"
#endif

namespace shootout {
namespace {

using test::Conn;
using test::ServerProcess;

// ---- small helpers ------------------------------------------------------------------------

struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0); }
  ~SocketPair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
};

// Readable/writable bits only: select cannot report a hang-up on its own.
std::vector<std::pair<int, std::uint32_t>> readiness(Poller& p) {
  std::vector<PollEvent> ready;
  p.wait(ready, 0);
  std::vector<std::pair<int, std::uint32_t>> got;
  for (auto e : ready) got.emplace_back(e.fd, e.events & (kReadable | kWritable));
  std::sort(got.begin(), got.end());
  return got;
}

std::string stderr_of(ServerProcess& s) { return s.process().stderr_text(); }

// A directory under the test temp dir with one file of `size` bytes, removed at the end.
struct FileRoot {
  std::string dir;
  explicit FileRoot(std::size_t size) {
    dir = test::temp_dir("evented-root").string();
    std::ofstream(dir + "/big", std::ios::binary) << std::string(size, 'f');
  }
  ~FileRoot() { std::filesystem::remove_all(dir); }
};

bool readable_now(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// ---- the poller seam ----------------------------------------------------------------------

class PollerTest : public ::testing::TestWithParam<std::string> {};

// One readiness scenario, run against every backend; each must report exactly this.
TEST_P(PollerTest, ReportsTheSameReadinessAsTheReference) {
  auto p = Poller::create(GetParam());
  EXPECT_EQ(p->name(), GetParam());
  SocketPair a, b, c;
  ASSERT_EQ(p->add(a.fd[0], kReadable), 0);
  ASSERT_EQ(p->add(b.fd[0], kReadable | kWritable), 0);
  ASSERT_EQ(p->add(c.fd[0], kReadable), 0);
  using V = std::vector<std::pair<int, std::uint32_t>>;
  EXPECT_EQ(readiness(*p), (V{{b.fd[0], kWritable}}));  // nothing to read yet; b can write

  ASSERT_EQ(::write(a.fd[1], "x", 1), 1);
  EXPECT_EQ(readiness(*p), (V{{a.fd[0], kReadable}, {b.fd[0], kWritable}}));
  // Level-triggered: still readable until drained.
  EXPECT_EQ(readiness(*p), (V{{a.fd[0], kReadable}, {b.fd[0], kWritable}}));

  EXPECT_EQ(p->modify(b.fd[0], kReadable), 0);  // stop watching writability
  ::close(c.fd[1]);                             // peer gone: c reads EOF
  c.fd[1] = -1;
  EXPECT_EQ(readiness(*p), (V{{a.fd[0], kReadable}, {c.fd[0], kReadable}}));

  p->remove(a.fd[0]);
  p->remove(c.fd[0]);
  EXPECT_TRUE(readiness(*p).empty());

  // Waiting with a timeout and nothing ready returns 0.
  std::vector<PollEvent> ready;
  EXPECT_EQ(p->wait(ready, 10), 0);
}

TEST_P(PollerTest, ReportsErrorsAsErrnoValues) {
  auto p = Poller::create(GetParam());
  SocketPair a;
  EXPECT_EQ(p->add(a.fd[0], kReadable), 0);
  EXPECT_EQ(p->add(a.fd[0], kReadable), EEXIST);
  EXPECT_EQ(p->modify(a.fd[1], kReadable), ENOENT);
  p->remove(a.fd[1]);  // not watched: nothing happens
  p->remove(a.fd[0]);
  EXPECT_EQ(p->modify(a.fd[0], kReadable), ENOENT);
}

// select has no hang-up condition of its own, so only epoll and poll promise this.
TEST(PollerSeam, HangupIsReportedWithoutAsking) {
  for (const char* backend : {"epoll", "poll"}) {
    auto p = Poller::create(backend);
    SocketPair a;
    ASSERT_EQ(p->add(a.fd[0], 0), 0);
    ::shutdown(a.fd[0], SHUT_RDWR);
    std::vector<PollEvent> ready;
    ASSERT_EQ(p->wait(ready, 1000), 1) << backend;
    EXPECT_TRUE(ready[0].events & kHangup) << backend;
  }
}

// Edge-triggered epoll reports a descriptor once per edge: not again while it stays readable,
// again when more data arrives, and again when watching restarts (EPOLL_CTL_MOD re-checks), so
// a loop that stops watching a connection while it waits on work loses nothing.
TEST(PollerSeam, EdgeTriggeredEpollReportsEachEdgeOnce) {
  auto p = Poller::create("epoll", Trigger::edge);
  EXPECT_TRUE(p->edge_triggered());
  SocketPair a;
  ASSERT_EQ(p->add(a.fd[0], kReadable), 0);
  using V = std::vector<std::pair<int, std::uint32_t>>;
  EXPECT_TRUE(readiness(*p).empty());
  ASSERT_EQ(::write(a.fd[1], "x", 1), 1);
  EXPECT_EQ(readiness(*p), (V{{a.fd[0], kReadable}}));
  EXPECT_TRUE(readiness(*p).empty());  // still readable, but no new edge
  ASSERT_EQ(::write(a.fd[1], "y", 1), 1);
  EXPECT_EQ(readiness(*p), (V{{a.fd[0], kReadable}}));  // new data: a new edge
  ASSERT_EQ(p->modify(a.fd[0], 0), 0);
  EXPECT_TRUE(readiness(*p).empty());
  ASSERT_EQ(p->modify(a.fd[0], kReadable), 0);  // watching again: the unread bytes are reported
  EXPECT_EQ(readiness(*p), (V{{a.fd[0], kReadable}}));
  // Data and the end in one edge: kPeerClosed says a read will end in EOF after the data.
  SocketPair b;
  ASSERT_EQ(p->add(b.fd[0], kReadable), 0);
  ASSERT_EQ(::write(b.fd[1], "z", 1), 1);
  ::shutdown(b.fd[1], SHUT_WR);
  std::vector<PollEvent> ready;
  ASSERT_EQ(p->wait(ready, 1000), 1);
  EXPECT_EQ(ready[0].events & (kReadable | kPeerClosed), kReadable | kPeerClosed);
}

TEST(PollerSeam, PollAndSelectStayLevelTriggeredWhenAskedForEdge) {
  for (const char* backend : {"poll", "select"}) {
    auto p = Poller::create(backend, Trigger::edge);
    EXPECT_FALSE(p->edge_triggered()) << backend;
    SocketPair a;
    ASSERT_EQ(p->add(a.fd[0], kReadable), 0);
    ASSERT_EQ(::write(a.fd[1], "x", 1), 1);
    EXPECT_EQ(readiness(*p).size(), 1u) << backend;
    EXPECT_EQ(readiness(*p).size(), 1u) << backend;  // level: reported until drained
  }
  EXPECT_FALSE(Poller::create("epoll")->edge_triggered());
}

INSTANTIATE_TEST_SUITE_P(Backends, PollerTest, ::testing::Values("epoll", "poll", "select"),
                         [](const auto& param_info) { return param_info.param; });

TEST(PollerSeam, UnknownBackendIsRefused) {
  EXPECT_THROW(Poller::create("kqueue"), std::invalid_argument);
}

TEST(PollerSeam, SelectRefusesDescriptorsAtOrAboveFdSetsize) {
  auto p = Poller::create("select");
  SocketPair a;
  int high = ::fcntl(a.fd[0], F_DUPFD_CLOEXEC, FD_SETSIZE + 10);
  ASSERT_GE(high, FD_SETSIZE) << "RLIMIT_NOFILE too low for this test";
  EXPECT_EQ(p->add(high, kReadable), EINVAL);
  EXPECT_EQ(p->add(FD_SETSIZE, kReadable), EINVAL);
  EXPECT_EQ(p->modify(high, kReadable), ENOENT);
  ::close(high);
  EXPECT_EQ(p->add(a.fd[0], kReadable), 0);  // and it still works
}

// ---- timers -------------------------------------------------------------------------------

TEST(Timers, HeapRunsDueTimersInOrderAndSkipsCancelledOnes) {
  TimerHeap heap;
  std::vector<int> ran;
  heap.add(30, [&] { ran.push_back(3); });
  auto cancelled = heap.add(10, [&] { ran.push_back(1); });
  heap.add(20, [&] { ran.push_back(2); });
  heap.cancel(cancelled);
  EXPECT_EQ(heap.next_due(), 20);
  heap.run_due(25);
  EXPECT_EQ(ran, (std::vector<int>{2}));
  heap.run_due(100);
  EXPECT_EQ(ran, (std::vector<int>{2, 3}));
  EXPECT_FALSE(heap.next_due());
}

TEST(Timers, DeadlineListKeepsArmOrderAndRearmMovesToTheBack) {
  DeadlineList list(std::chrono::milliseconds(100));
  DeadlineLink a, b, c;
  list.arm(a, 0);
  list.arm(b, 5);
  list.arm(c, 10);
  list.arm(a, 20);  // re-armed: now last
  DeadlineList::disarm(c);
  EXPECT_EQ(list.next_due(), 105);
  EXPECT_EQ(list.pop_due(104), nullptr);
  EXPECT_EQ(list.pop_due(200), &b);
  EXPECT_EQ(list.pop_due(200), &a);
  EXPECT_EQ(list.pop_due(1000), nullptr);
}

// ---- the mailbox and the owner-thread checks (common/) --------------------------------------

// The eventfd's counter says how many times it was written since the last reset.
std::uint64_t wakeups_pending(int efd) {
  std::uint64_t n = 0;
  if (::read(efd, &n, sizeof n) != static_cast<ssize_t>(sizeof n)) return 0;  // EAGAIN: none
  [[maybe_unused]] auto w = ::write(efd, &n, sizeof n);  // put it back as it was
  return n;
}

TEST(Mailbox, APostToANonEmptyBoxDoesNotWakeAgainAndTakeGetsEveryItemInOrder) {
  Mailbox<int> box;
  for (int i = 0; i < 5; ++i) box.post(i);
  std::thread([&] { box.post(5); }).join();  // from another thread too
  EXPECT_EQ(wakeups_pending(box.fd()), 1u) << "one wake-up for the whole batch";
  std::vector<int> got;
  box.take(got);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  pollfd p{box.fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "take() left the eventfd readable";
  box.post(6);  // the box is empty again: this post wakes
  EXPECT_EQ(::poll(&p, 1, 0), 1);
  box.take(got);
  EXPECT_EQ(got, (std::vector<int>{6}));
}

TEST(Mailbox, ItemsPostedByManyThreadsAreAllTakenWithoutLossOrDuplicates) {
  Mailbox<int> box;
  constexpr int kThreads = 4, kEach = 20'000;
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t)
    posters.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) box.post(t * kEach + i);
    });
  std::vector<int> all, batch;
  std::thread owner([&] {
    while (all.size() < static_cast<std::size_t>(kThreads * kEach)) {
      pollfd p{box.fd(), POLLIN, 0};
      ASSERT_GE(::poll(&p, 1, 10'000), 0);
      box.take(batch);
      all.insert(all.end(), batch.begin(), batch.end());
      if (p.revents == 0 && batch.empty()) break;  // 10 s without a wake-up: lost items
    }
  });
  for (auto& t : posters) t.join();
  owner.join();
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kThreads * kEach))
      << "an item was never woken for";
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
  EXPECT_EQ(all.front(), 0);
  EXPECT_EQ(all.back(), kThreads * kEach - 1);
}

// Builds that check threads (Debug, ASan, TSan) abort on a call from the wrong thread; Release
// compiles the checks out, and then there is nothing to prove here.
TEST(OwnerThreadDeathTest, APollerCalledFromAThreadOtherThanItsLoopsAborts) {
#if SHOOTOUT_CHECK_THREADS
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto poller = Poller::create("epoll");
        std::vector<PollEvent> ready;
        std::thread([&] {
          poller->bind_to_this_thread();
          poller->wait(ready, 0);  // the owner may
        }).join();
        poller->wait(ready, 0);  // this thread may not
      },
      "Poller::wait called on thread [0-9]+; only its owner");
  // Before bind() (set-up on another thread) every call is allowed.
  auto poller = Poller::create("epoll");
  std::vector<PollEvent> ready;
  EXPECT_EQ(poller->wait(ready, 0), 0);
#else
  GTEST_SKIP() << "owner-thread checks are compiled out of this (Release) build";
#endif
}

// ---- the loop, in-process -----------------------------------------------------------------

// Sessions that, on their first input, close the *other* connection of the pair through the
// loop. Session i belongs to the i-th adopted socket.
struct CloserState {
  EventLoop* loop = nullptr;
  int fds[2] = {-1, -1};
  std::vector<int> calls;
  int created = 0;
};

class CloserSession final : public Session {
 public:
  CloserSession(CloserState& s, int index) : s_(s), index_(index) {}
  Next on_input(std::string_view, std::string& out) override {
    s_.calls.push_back(index_);
    s_.loop->close_later(s_.fds[1 - index_]);
    out += "closed the other\n";
    return Next::read;
  }

 private:
  CloserState& s_;
  int index_;
};

class CloserHandler final : public Handler {
 public:
  explicit CloserHandler(CloserState& s) : s_(s) {}
  std::unique_ptr<Session> new_session() const override {
    return std::make_unique<CloserSession>(s_, s_.created++);
  }

 private:
  CloserState& s_;
};

class LoopTest : public ::testing::TestWithParam<std::string> {};

// Both connections are readable in the same batch. Whichever is dispatched first closes the
// other; the other's event, later in the same batch, must be skipped (no use of a closed
// connection, no read from a descriptor that may be reused), and its peer must see EOF.
TEST_P(LoopTest, CallbackClosingAnotherConnectionInTheSameBatchIsSafe) {
  ServeOptions options;
  options.poller = GetParam();
  CloserState state;
  CloserHandler handler(state);
  HelperPool pool(1);
  EventLoop loop(options, handler, pool, -1);
  state.loop = &loop;
  SocketPair a, b;
  ASSERT_EQ(loop.adopt(a.fd[0]), 0);
  state.fds[0] = a.fd[0];
  a.fd[0] = -1;  // the loop owns it now
  ASSERT_EQ(loop.adopt(b.fd[0]), 0);
  state.fds[1] = b.fd[0];
  b.fd[0] = -1;
  ASSERT_EQ(loop.connections(), 2u);

  ASSERT_EQ(::write(a.fd[1], "x", 1), 1);
  ASSERT_EQ(::write(b.fd[1], "y", 1), 1);
  ASSERT_TRUE(readable_now(state.fds[0], 1000) && readable_now(state.fds[1], 1000));
  loop.run_once();

  ASSERT_EQ(state.calls.size(), 1u) << "the closed connection's session was still fed input";
  int winner = state.calls[0];
  int survivor_peer = winner == 0 ? a.fd[1] : b.fd[1];
  int closed_peer = winner == 0 ? b.fd[1] : a.fd[1];
  EXPECT_EQ(loop.connections(), 1u);
  char buf[64];
  // Closed in the close phase: EOF, or ECONNRESET because its "y" was never read.
  ssize_t eof = ::read(closed_peer, buf, sizeof buf);
  EXPECT_TRUE(eof == 0 || (eof < 0 && errno == ECONNRESET)) << eof;
  ssize_t n = ::read(survivor_peer, buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "closed the other\n");
}

// select cannot watch descriptors at or above FD_SETSIZE: the connection is refused with an
// errno, and the loop goes on serving the others.
TEST(LoopSelect, AdoptReportsAPollerRefusal) {
  ServeOptions options;
  options.poller = "select";
  CloserState state;
  CloserHandler handler(state);
  HelperPool pool(1);
  EventLoop loop(options, handler, pool, -1);
  SocketPair a;
  int high = ::fcntl(a.fd[0], F_DUPFD_CLOEXEC, FD_SETSIZE + 5);
  ASSERT_GE(high, FD_SETSIZE);
  EXPECT_EQ(loop.adopt(high), EINVAL);
  EXPECT_EQ(::fcntl(high, F_GETFD), -1) << "the refused socket is closed";
  EXPECT_EQ(loop.connections(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, LoopTest, ::testing::Values("epoll", "poll", "select"),
                         [](const auto& param_info) { return param_info.param; });

// ---- real server processes ----------------------------------------------------------------

// The models built on an event loop (common/run_loops.hpp): the process tests below that hold
// for every one of them run for each. uring is there when it is built (liburing) and skips,
// saying why, where this kernel cannot run it.
std::vector<std::string> loop_models() {
  return {"evented",
#ifdef SHOOTOUT_HAVE_URING
          "uring"
#endif
  };
}

// Empty if this machine can run `model`, else why not.
std::string model_unavailable([[maybe_unused]] const std::string& model) {
#ifdef SHOOTOUT_HAVE_URING
  if (model == "uring") return uring_unavailable();
#endif
  return {};
}

// A test of a server process, run for each loop model (GetParam() is its name).
class LoopModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (std::string why = model_unavailable(GetParam()); !why.empty()) GTEST_SKIP() << why;
  }
  // `shootout serve` arguments for this model, then `more`.
  std::vector<std::string> args(std::vector<std::string> more = {}) const {
    std::vector<std::string> a = {"--model", GetParam()};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
};

using LoopServer = LoopModelTest;

// A client that asked for 50 MB and reads none of it fills its socket buffers; the loop must
// park that connection (evented: EPOLLOUT armed; uring: its send waits in the kernel) and keep
// answering everybody else.
TEST_P(LoopServer, SlowReaderDoesNotDelayOtherClients) {
  ServerProcess s(args());
  Conn slow(s.port());
  ASSERT_TRUE(slow.send(test::get_request("/bytes?n=50000000")));
  ASSERT_TRUE(readable_now(slow.fd(), 15'000));  // the response has started (left unread)
  for (int i = 0; i < 50; ++i) {
    auto r = test::http_get(s.port(), "/");
    ASSERT_EQ(r.body, "Hello, World!") << "fast client " << i << " was not answered";
  }
  // The slow reader has read nothing so far; now it reads everything.
  auto r = test::read_response(slow);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 50'000'000u);
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

// Which of two connections' responses shows up first, watched by one poll() loop.
// Returns true if `second` became readable while `first` had not (yet) been answered.
bool answered_before(int second, int first) {
  for (int i = 0; i < 3000; ++i) {  // bounded: 3,000 × 100 ms (a burn on a loaded host)
    pollfd p[2] = {{first, POLLIN, 0}, {second, POLLIN, 0}};
    if (::poll(p, 2, 100) <= 0) continue;
    if (p[0].revents) return false;  // first answered (alone or together): no overtaking
    if (p[1].revents) return true;
  }
  ADD_FAILURE() << "neither response arrived";
  return false;
}

// A loop model, and whether /cpu is offloaded.
class LoopCpuStall : public ::testing::TestWithParam<std::tuple<std::string, bool>> {
 protected:
  void SetUp() override {
    if (std::string why = model_unavailable(std::get<0>(GetParam())); !why.empty())
      GTEST_SKIP() << why;
  }
};

// Without --offload-cpu, /cpu?us=1500000 burns the loop's own thread: a GET / sent while it
// runs cannot be answered before it. With --offload-cpu the pool burns instead, and the GET /
// overtakes it.
TEST_P(LoopCpuStall, CpuOnTheLoopStallsEveryClientUnlessOffloaded) {
  const auto& [model, offload] = GetParam();
  const std::string stats = testing::TempDir() + model + "-cpu-" + std::to_string(getpid()) +
                            (offload ? "-off" : "-on") + ".json";
  std::vector<std::string> args = {"--model", model, "--stats-file", stats};
  if (offload) args.push_back("--offload-cpu");
  ServerProcess s(args);
  // Long enough, on this host now, for the GET / to be answered many times over while it burns.
  const long burn_us = 1000 * std::max(1500L, 100 * test::slowest_round_trip_ms(s.port()));
  const std::uint64_t before = requests_seen(s, stats);
  Conn cpu(s.port()), hello(s.port());
  // A burn is CPU time: with busy loops beside the test a 3 s burn took over 15 s on the clock
  // (the client's default wait). Both answers are waited for as long as only a broken server
  // would take.
  cpu.set_timeout_ms(300'000);
  hello.set_timeout_ms(300'000);
  ASSERT_TRUE(cpu.send(test::get_request("/cpu?us=" + std::to_string(burn_us))));
  // Send the GET / only once the server has taken the /cpu request (its count goes up by one).
  ASSERT_TRUE(await_requests(s, stats, before + 1));
  ASSERT_TRUE(hello.send(test::get_request("/")));
  bool overtook = answered_before(hello.fd(), cpu.fd());
  EXPECT_EQ(overtook, offload);
  EXPECT_EQ(test::read_response(cpu).body, "burned " + std::to_string(burn_us) + " us\n");
  EXPECT_EQ(test::read_response(hello).body, "Hello, World!");
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

INSTANTIATE_TEST_SUITE_P(Models, LoopCpuStall,
                         ::testing::Combine(::testing::ValuesIn(loop_models()), ::testing::Bool()),
                         [](const auto& param_info) {
                           return std::get<0>(param_info.param) +
                                  (std::get<1>(param_info.param) ? "_offload" : "_on_loop");
                         });

// RLIMIT_NOFILE 32: the server runs out of descriptors with a few dozen clients. It must shed
// the excess (or pause accepting), keep serving the connections it has, and serve new ones once
// the clients are gone.
TEST_P(LoopServer, SurvivesRunningOutOfDescriptors) {
  ServerProcess s(args(), 32);
  std::vector<Conn> conns;
  for (int i = 0; i < 80; ++i) conns.emplace_back(s.port());
  // The first connection was accepted before the limit: it is served.
  ASSERT_TRUE(conns.front().send(test::get_request("/")));
  EXPECT_EQ(test::read_response(conns.front()).body, "Hello, World!");
  // The last one cannot have been kept: it was shed (closed at once) or waits in the backlog.
  // (Compare bodies: an empty response at EOF does not carry a meaningful status.)
  conns.back().set_timeout_ms(200);
  conns.back().send(test::get_request("/"));
  EXPECT_NE(test::read_response(conns.back()).body, "Hello, World!")
      << test::fd_count(s.pid()) << " fds; " << stderr_of(s);
  conns.clear();
  int status = 0;
  for (int i = 0; i < 1200 && status != 200; ++i) {  // the server closes its ends as it sees EOF
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = test::http_get(s.port(), "/").body == "Hello, World!" ? 200 : 0;
  }
  EXPECT_EQ(status, 200);
  EXPECT_NE(stderr_of(s).find("accept: Too many open files"), std::string::npos) << stderr_of(s);
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

// --poller select with more than FD_SETSIZE connections: the ones above the limit are closed
// with a clear message, the others keep working, and the server stays up.
TEST(EventedServer, SelectRefusesDescriptorsAboveFdSetsizeAndStaysUp) {
  ServerProcess s({"--model", "evented", "--poller", "select"}, 4096);
  std::vector<Conn> conns;
  for (int i = 0; i < FD_SETSIZE + 50; ++i) conns.emplace_back(s.port());
  EXPECT_TRUE(conns.back().closed_by_peer());  // its server-side descriptor is >= 1024
  ASSERT_TRUE(conns.front().send(test::get_request("/")));
  EXPECT_EQ(test::read_response(conns.front()).body, "Hello, World!");
  EXPECT_NE(stderr_of(s).find("select cannot watch descriptor"), std::string::npos) << stderr_of(s);
  conns.clear();
  int status = 0;
  for (int i = 0; i < 1200 && status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = test::http_get(s.port(), "/").body == "Hello, World!" ? 200 : 0;
  }
  EXPECT_EQ(status, 200);
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

// A client that pipelines requests without ever reading the answers: once more than
// --max-output bytes are queued for it, the server closes that connection (and only that one).
// A client that pipelines ~1 MB of answers per burst and never reads: whichever acts first, the
// output cap (small answers merged into a queue that grows while the loop goes on reading) or
// the session's yield (answers to one read past 64 KiB wait until they have gone out, and the
// loop stops reading meanwhile: uring once it holds 64 KiB), the client is cut off (by the cap,
// or by --idle-timeout once its writes stall) and a normal client is answered meanwhile.
TEST_P(LoopServer, AClientThatDoesNotReadIsCutOff) {
  ServerProcess s(args({"--max-output", "100000", "--idle-timeout", "2000"}));
  Conn greedy(s.port());
  greedy.set_timeout_ms(2000);
  std::string burst;
  for (int i = 0; i < 2000; ++i) burst += test::get_request("/bytes?n=1000");
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) refused = !greedy.send(burst);  // ~1 MB answers each
  EXPECT_TRUE(refused) << "the server kept taking requests from a client that never reads";
  EXPECT_EQ(test::http_get(s.port(), "/").body, "Hello, World!");
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

// What an echo exchange got back: bytes sent, bytes echoed and equal to them (in order), and
// why it ended short ("" if every byte came back).
struct EchoOutcome {
  std::uint64_t sent = 0, echoed = 0;
  std::string failure;
};

// `rounds` echoes of `size` bytes each, one after the other on one connection, by a client that
// writes before it reads: it writes while its socket takes bytes, and reads (a gulp of up to
// 8 MiB, all its socket holds) only once the socket has refused them for 20 ms, or all is sent.
// A server that reads on while its answers wait for this client queues them all (that is how
// the stall below was met); a server that stops reading holds it back, and then it reads. The
// stream is periodic with a prime period, so a lost, repeated or shifted chunk is caught at its
// first byte. The exchange ends short at a byte that differs, at EOF or an error, or when
// neither direction makes progress for 15 s (the support client's bound: only a wedged server
// takes that long), and says which.
EchoOutcome echo_eagerly(std::uint16_t port, int rounds, std::size_t size) {
  constexpr std::size_t kPeriod = 251, kStep = 1 << 20, kGulp = 8 << 20;
  constexpr int kRefusedMs = 20;
  std::string pattern(kPeriod + kGulp, '\0');  // any step or gulp, from any phase
  for (std::size_t i = 0; i < pattern.size(); ++i)
    pattern[i] = static_cast<char>(((i % kPeriod) * 7 + 13) & 0xFF);
  Conn c(port);
  ::fcntl(c.fd(), F_SETFL, ::fcntl(c.fd(), F_GETFL) | O_NONBLOCK);
  EchoOutcome r;
  std::vector<char> in(kGulp);
  for (int round = 0; round < rounds; ++round) {
    const std::uint64_t end = (round + 1) * static_cast<std::uint64_t>(size);
    while (r.echoed < end) {
      if (r.sent < end) {
        const std::size_t n = std::min<std::uint64_t>(kStep, end - r.sent);
        const ssize_t w = ::send(c.fd(), pattern.data() + r.sent % kPeriod, n, MSG_NOSIGNAL);
        if (w > 0) {
          r.sent += static_cast<std::uint64_t>(w);
          continue;  // the socket took bytes: write on
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
          r.failure = std::string("send: ") + std::strerror(errno);
          return r;
        }
        pollfd p{c.fd(), POLLOUT, 0};
        if (::poll(&p, 1, kRefusedMs) == 1) continue;  // room again: write on
      }
      const ssize_t got = ::recv(c.fd(), in.data(), in.size(), 0);
      if (got > 0) {
        if (std::memcmp(in.data(), pattern.data() + r.echoed % kPeriod, got) != 0) {
          r.failure = "a byte came back different";
          return r;
        }
        r.echoed += static_cast<std::uint64_t>(got);
        continue;
      }
      if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        r.failure = got == 0 ? "the server closed the connection"
                             : std::string("recv: ") + std::strerror(errno);
        return r;
      }
      pollfd p{c.fd(), static_cast<short>(POLLIN | (r.sent < end ? POLLOUT : 0)), 0};
      if (::poll(&p, 1, 15'000) == 0) {
        r.failure = "no progress either way for 15 s (the server stopped)";
        return r;
      }
    }
  }
  return r;
}

// Four echoes of 32 MiB, each larger than every socket buffer between the client and the
// server's answer, to a client that writes before it reads: every byte comes back. Before, the
// evented loop stopped sending with part of the answer queued and both sockets empty (what
// `shootout load --engine uring --echo 33554432` met as a timeout): the queue held more than one
// sendmsg's 64 chunks, the socket took all 64, and edge-triggered epoll never reports a socket
// writable again that never filled up. Now the queue stays short (reading pauses) and such a
// write is followed by another; the last test of this suite checks the second alone.
TEST_P(LoopServer, LargeEchoesComeBackWholeToAClientThatWritesBeforeItReads) {
  ServerProcess s(args({"--handler", "echo"}));
  constexpr int kRounds = 4;
  constexpr std::size_t kSize = 32u << 20;
  const EchoOutcome r = echo_eagerly(s.port(), kRounds, kSize);
  EXPECT_EQ(r.failure, "") << r.echoed << " of " << r.sent << " bytes sent came back";
  EXPECT_EQ(r.echoed, kRounds * kSize);
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

// The same client against a 4 MiB --max-output: whatever it sends, the server's queue for it
// stays below the cap, because the loop stops reading that connection while its output waits
// (TCP's window then holds the client back) and reads again once the output has drained; the
// connection is served whole, not cut off. Before, the loop read on and queued every answer,
// and closed the connection once they passed the cap.
TEST_P(LoopServer, AnEchoClientThatWritesFasterThanItReadsIsHeldBackNotCutOff) {
  constexpr std::size_t kCap = 4u << 20, kSize = 32u << 20;
  ServerProcess s(args({"--handler", "echo", "--max-output", std::to_string(kCap)}));
  const EchoOutcome r = echo_eagerly(s.port(), 1, kSize);
  EXPECT_EQ(r.failure, "") << r.echoed << " of " << r.sent << " bytes sent came back";
  EXPECT_EQ(r.echoed, kSize);
  EXPECT_EQ(stderr_of(s).find("queued more than"), std::string::npos) << stderr_of(s);
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

// Three times, on a new connection, 1,000 pipelined /file answers of 33 KiB (each its own chunk
// of the queue: two do not merge) to a client that reads only once 4 MiB of answers wait in
// its receive queue, so the server's socket is full and its queue waits behind it (33 MiB in
// all, 1,000 chunks). The client's receive buffer is wide (8 MiB), as a fast reader's
// becomes, so the server's socket can take many chunks in one write. Every answer arrives whole.
// Before, this met the lost edge of the test above without any echo: a write that took all 64
// chunks offered left the rest queued, and nothing woke the connection again (here the first
// connection stopped after 293 answers, every time).
TEST_P(LoopServer, AQueueOfManyAnswersIsSentWholeToAClientThatReadsLate) {
  constexpr int kRounds = 3, kAnswers = 1000;
  constexpr std::size_t kFile = 33 << 10;
  FileRoot root(kFile);
  const std::string stats =
      testing::TempDir() + GetParam() + "-many-" + std::to_string(getpid()) + ".json";
  ServerProcess s(args({"--root", root.dir, "--stats-file", stats}));
  std::string burst;
  for (int i = 0; i < kAnswers; ++i) burst += test::get_request("/file?name=big");
  ASSERT_LT(burst.size(), 64u << 10);  // one segment on loopback, one read of the server
  for (int round = 1; round <= kRounds; ++round) {
    Conn c(s.port());  // a new one each round: a connection that got through once keeps going
    const int rcvbuf = 4 << 20;  // the kernel doubles it
    ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    // The whole burst (49 KB) in one segment, so the server reads it in one read (64 KiB): sent
    // through the default 16 KiB send buffer it went in pieces, and a server that had read only
    // the first piece when its queue passed the read pause (as it must) stopped reading, while
    // this client waited for every request to be parsed before reading: a deadlock of the test.
    const int sndbuf = 1 << 20;
    ::setsockopt(c.fd(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    ASSERT_TRUE(c.send(burst));
    // Read late: only once our receive queue holds 4 MiB of answers (the kernel's own count,
    // FIONREAD), so the server's socket and queue are full behind it. Not once the server has
    // parsed every request: with its queue at the read pause the server rightly makes no more
    // answers until this client reads, and whether the kernel's buffers took all 33 MiB first
    // was luck (about 1 run in 15 here waited forever).
    for (int i = 0; i < 6000; ++i) {
      int queued = 0;
      if (::ioctl(c.fd(), FIONREAD, &queued) == 0 && queued >= (4 << 20)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    int whole = 0;
    while (whole < kAnswers && test::read_response(c).body.size() == kFile) ++whole;
    ASSERT_EQ(whole, kAnswers) << "round " << round;
    ASSERT_TRUE(await_requests(s, stats, round * kAnswers));
  }
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
  std::remove(stats.c_str());
}

INSTANTIATE_TEST_SUITE_P(Models, LoopServer, ::testing::ValuesIn(loop_models()),
                         [](const auto& param_info) { return param_info.param; });

// ---- the output cap on every path, and the timers (issue #17, items 2 and 5) --------------

// Waits (bounded; only a failing server takes that long) until the server's stderr holds
// `text`, or `give_up` says to stop looking.
bool await_stderr(ServerProcess& s, const std::string& text, const std::function<bool()>& give_up,
                  std::chrono::seconds bound = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (stderr_of(s).find(text) == std::string::npos) {
    if (give_up() || std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// True if the server ended the connection: after whatever the socket buffers still hold, EOF or
// a reset (false if it merely went quiet for the receive timeout).
bool ended_by_server(Conn& c) {
  char b[65536];
  for (;;) {
    ssize_t n = ::recv(c.fd(), b, sizeof b, 0);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    return n == 0 || errno == ECONNRESET;
  }
}

// Sends `burst` on a connection that never reads, then requires that the server's peak memory
// (VmHWM) stays within 16 caps of the baseline measured before the burst (where it grew by
// hundreds of MiB when the cap missed a path), that the connection is ended (with `by_cap`, by
// the cap: the server says "queued more than"; else by the cap or by the stall timeout, which
// the caller sets short), and that a normal client is answered meanwhile and after (`normal`
// checks one).
void expect_bounded_and_cut_off(ServerProcess& s, std::size_t cap, const std::string& burst,
                                bool by_cap, const std::function<void()>& normal) {
  normal();  // warms up what the answers need (the pool's threads, the loop's buffers)
  const long base_kib = test::status_kib(s.pid(), "VmHWM");
  ASSERT_GT(base_kib, 0);
  const long bound_kib = base_kib + 16 * static_cast<long>(cap / 1024);
  Conn greedy(s.port());
  ASSERT_TRUE(greedy.send(burst));
  EXPECT_EQ(test::http_get(s.port(), "/").body, "Hello, World!");
  const std::string capped_text = "queued more than " + std::to_string(cap) + " bytes";
  if (by_cap) {
    const bool capped = await_stderr(s, capped_text, [&] {
      return test::status_kib(s.pid(), "VmRSS") > bound_kib;  // growing past the bound: stop here
    });
    EXPECT_TRUE(capped) << "not closed by the cap; VmRSS " << test::status_kib(s.pid(), "VmRSS")
                        << " KiB against a baseline of " << base_kib << " KiB";
    if (capped) {
      EXPECT_TRUE(ended_by_server(greedy));
    }
  } else {
    EXPECT_TRUE(ended_by_server(greedy)) << "the connection was never cut off";
  }
  const long peak_kib = test::status_kib(s.pid(), "VmHWM");
  EXPECT_LE(peak_kib, bound_kib) << "peak " << peak_kib << " KiB, baseline " << base_kib;
  std::printf("[ info ] VmHWM %ld KiB before the burst, %ld KiB after (cap %zu KiB); %s\n",
              base_kib, peak_kib, cap / 1024,
              stderr_of(s).find(capped_text) != std::string::npos ? "closed by the cap"
                                                                  : "cut off by the stall timeout");
  normal();
  EXPECT_EQ(test::http_get(s.port(), "/").body, "Hello, World!");
}

// The pool-job path: a client pipelines 100 /file requests for a 2 MiB file and never reads.
// Each answer is added by a finished pool job with no new input, so a cap checked only when
// input is read never saw them.
using LoopOutputCap = LoopModelTest;

TEST_P(LoopOutputCap, AnswersAddedByPoolJobsAreCounted) {
  constexpr std::size_t kFile = 2 << 20, kCap = 4 << 20;
  FileRoot root(kFile);
  ServerProcess s(args({"--root", root.dir, "--max-output", std::to_string(kCap)}));
  Conn normal(s.port());
  std::string burst;
  for (int i = 0; i < 100; ++i) burst += test::get_request("/file?name=big");  // 200 MiB answered
  expect_bounded_and_cut_off(s, kCap, burst, /*by_cap=*/true, [&] {
    ASSERT_TRUE(normal.send(test::get_request("/file?name=big")));
    EXPECT_EQ(test::read_response(normal).body.size(), kFile);
  });
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

// The timer path, and requests parsed from input the session had buffered: groups of a
// /sleep?ms=0 and 30 /bytes?n=65536 (each answered at once, 64 KiB), all in one read. Every
// group after the first is answered from a timer's callback, with no new input: about 85 MiB
// from one 63 KiB burst, where the cap was not looked at. Now each answer waits for the one
// before it to go out (the session yields after 64 KiB), so the client's own socket holds it
// back; whether the cap or the stall timeout ends it, the server's memory stays bounded.
TEST_P(LoopOutputCap, AnswersAddedByTimersAreBounded) {
  constexpr std::size_t kCap = 4 << 20;
  ServerProcess s(args({"--max-output", std::to_string(kCap), "--idle-timeout", "2000"}));
  std::string burst;
  while (burst.size() < 60'000) {
    burst += test::get_request("/sleep?ms=0");
    for (int i = 0; i < 30; ++i) burst += test::get_request("/bytes?n=65536");
  }
  ASSERT_LT(burst.size(), 64u * 1024);  // one read of evented's buffer (uring: 4 KiB buffers)
  expect_bounded_and_cut_off(s, kCap, burst, /*by_cap=*/false, [&] {
    Conn normal(s.port());  // a new one each time: a kept one would meet the 2 s idle timeout
    ASSERT_TRUE(
        normal.send(test::get_request("/sleep?ms=1") + test::get_request("/bytes?n=65536")));
    EXPECT_EQ(test::read_response(normal).body, "slept 1 ms\n");
    EXPECT_EQ(test::read_response(normal).body.size(), 65536u);
  });
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

// A /sleep?ms=20 answer cannot leave the server less than 20 ms after its request arrived, so
// no client can measure less (a lower bound: causality, not a timing threshold). 50
// connections, each sending its next request as soon as its answer arrives, keep the loop
// waking at every moment, so a due time rounded down to a millisecond, or computed from a clock
// read earlier in the batch, is found.
INSTANTIATE_TEST_SUITE_P(Models, LoopOutputCap, ::testing::ValuesIn(loop_models()),
                         [](const auto& param_info) { return param_info.param; });

using LoopTimers = LoopModelTest;

TEST_P(LoopTimers, SleepIsNeverAnsweredEarly) {
  using Clock = std::chrono::steady_clock;
  ServerProcess s(args());
  constexpr int kConns = 50, kEach = 100;
  std::vector<Conn> conns;
  std::vector<Clock::time_point> sent(kConns);
  std::vector<int> left(kConns, kEach);
  const std::string request = test::get_request("/sleep?ms=20");
  for (int i = 0; i < kConns; ++i) conns.emplace_back(s.port());
  for (int i = 0; i < kConns; ++i) {
    sent[i] = Clock::now();
    ASSERT_TRUE(conns[i].send(request));
  }
  auto fastest = Clock::duration::max();
  int answered = 0, busy = kConns;
  const auto give_up = Clock::now() + std::chrono::seconds(60);
  while (busy > 0 && Clock::now() < give_up) {
    std::vector<pollfd> fds;
    std::vector<int> index;
    for (int i = 0; i < kConns; ++i)
      if (left[i] > 0) {
        fds.push_back({conns[i].fd(), POLLIN, 0});
        index.push_back(i);
      }
    if (::poll(fds.data(), fds.size(), 1000) <= 0) continue;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (!fds[k].revents) continue;
      const int i = index[k];
      const auto arrived = Clock::now();
      auto r = test::read_response(conns[i]);
      ASSERT_EQ(r.body, "slept 20 ms\n") << "connection " << i;
      fastest = std::min(fastest, arrived - sent[i]);
      ++answered;
      if (--left[i] == 0) {
        --busy;
        continue;
      }
      sent[i] = Clock::now();
      ASSERT_TRUE(conns[i].send(request));
    }
  }
  EXPECT_EQ(answered, kConns * kEach);
  const auto fastest_us = std::chrono::duration_cast<std::chrono::microseconds>(fastest).count();
  std::printf("[ info ] fastest /sleep?ms=20 round trip: %.2f ms\n", fastest_us / 1000.0);
  EXPECT_GE(fastest_us, 20'000) << "a 20 ms timer fired early";
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

// While an inline /cpu?us=1000000 burns, the latest moment at which the server's CPU clock was
// still more than 50 ms short of the burn: the burn (which counts the loop thread's own CPU time)
// cannot have ended before it, so neither can anything the loop does after the burn have begun.
// A lower bound that holds however slowly a loaded host runs the burn. Watches until `c` has
// something to read (the /cpu answer), bounded by 60 s.
std::chrono::steady_clock::time_point burn_not_over_at(pid_t server, std::int64_t cpu_before,
                                                       Conn& c) {
  using Clock = std::chrono::steady_clock;
  clockid_t clock;
  EXPECT_EQ(::clock_getcpuclockid(server, &clock), 0);
  auto not_over = Clock::now();
  for (int i = 0; i < 60'000 && !readable_now(c.fd(), 0); ++i) {
    const auto when = Clock::now();  // read before the CPU clock: the bound is then safe
    timespec cpu{};
    ::clock_gettime(clock, &cpu);
    if (cpu.tv_sec * 1'000'000'000LL + cpu.tv_nsec - cpu_before < 950'000'000LL) not_over = when;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return not_over;
}

std::int64_t cpu_ns(pid_t pid) {
  clockid_t clock;
  timespec cpu{};
  if (::clock_getcpuclockid(pid, &clock) != 0 || ::clock_gettime(clock, &cpu) != 0) return -1;
  return cpu.tv_sec * 1'000'000'000LL + cpu.tv_nsec;
}

// An inline /cpu holds the loop's thread for a second of its CPU time. A /sleep?ms=300
// pipelined behind it is asked for once the /cpu is done, so its answer cannot come before 300
// ms after the burn's end; a due time computed from the clock read before the /cpu fires as
// soon as the burn ends.
TEST_P(LoopTimers, SleepAfterAnInlineCpuCountsFromTheEndOfTheCpu) {
  using Clock = std::chrono::steady_clock;
  using std::chrono::milliseconds;
  ServerProcess s(args());  // no --offload-cpu: /cpu runs on the loop
  Conn c(s.port());
  c.set_timeout_ms(60'000);
  const std::int64_t cpu_before = cpu_ns(s.pid());
  ASSERT_GE(cpu_before, 0);
  ASSERT_TRUE(c.send(test::get_request("/cpu?us=1000000") + test::get_request("/sleep?ms=300")));
  const auto not_over = burn_not_over_at(s.pid(), cpu_before, c);
  EXPECT_EQ(test::read_response(c).body, "burned 1000000 us\n");
  EXPECT_EQ(test::read_response(c).body, "slept 300 ms\n");
  const auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - not_over).count();
  std::printf("[ info ] /sleep?ms=300 answered %ld ms after the /cpu was last seen burning\n",
              static_cast<long>(ms));
  EXPECT_GE(ms, 300);
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

// The idle deadline, too: a connection becomes idle when its /cpu answer has gone, after the
// burn, and must then live --idle-timeout (500 ms) more; from the clock read before the burn,
// its deadline had passed as soon as it was armed.
TEST_P(LoopTimers, IdleTimeoutAfterAnInlineCpuCountsFromTheAnswer) {
  using Clock = std::chrono::steady_clock;
  using std::chrono::milliseconds;
  ServerProcess s(args({"--idle-timeout", "500"}));
  Conn c(s.port());
  c.set_timeout_ms(60'000);
  const std::int64_t cpu_before = cpu_ns(s.pid());
  ASSERT_GE(cpu_before, 0);
  ASSERT_TRUE(c.send(test::get_request("/cpu?us=1000000")));
  const auto not_over = burn_not_over_at(s.pid(), cpu_before, c);
  EXPECT_EQ(test::read_response(c).body, "burned 1000000 us\n");
  EXPECT_TRUE(c.closed_by_peer());
  const auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - not_over).count();
  std::printf("[ info ] idle connection closed %ld ms after its /cpu was last seen burning\n",
              static_cast<long>(ms));
  EXPECT_GE(ms, 500);
  EXPECT_EQ(s.stop(), 0) << stderr_of(s);
}

INSTANTIATE_TEST_SUITE_P(Models, LoopTimers, ::testing::ValuesIn(loop_models()),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace shootout
