// The uring model beyond the shared suites (issue #19): its completion state machine driven
// in-process over real sockets (input held while a session waits on work, the hold limit, a
// half-close, a close with a send in flight, more ready connections than receive buffers, a
// completion for a connection already closing, the stop, and how few system calls a batch
// takes), and the real server where io_uring is forbidden or a flag does not apply.
// The process-level behaviours it shares with the evented model (the output cap, timers, slow
// and non-reading clients, running out of descriptors) run for both models in evented_test.cpp.
#include <fmt/format.h>
#include <gtest/gtest.h>

#ifdef SHOOTOUT_HAVE_URING

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "client.hpp"
#include "handler.hpp"
#include "helper_pool.hpp"
#include "net.hpp"
#include "serve_options.hpp"
#include "server_process.hpp"
#include "uring/loop.hpp"

namespace shootout {
namespace {

using std::chrono::milliseconds;

constexpr std::size_t kHoldLimit = 64 * 1024;  // input held for a busy session (loop.cpp)

// Polls `done` every 10 ms, at most `tries` times (60 s: only a failing test waits that long).
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

// Bytes the kernel holds for a socket that nobody has read yet (on the loop's end: what the
// loop has not taken).
int unread(int fd) {
  int n = -1;
  return ::ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

// Reads until `n` bytes have come, the end, or 15 s without a byte.
std::string read_exactly(int fd, std::size_t n) {
  std::string got;
  char buf[65536];
  while (got.size() < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 15'000) <= 0) break;
    ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - got.size()), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got.append(buf, static_cast<std::size_t>(r));
  }
  return got;
}

// True if the other end ended the stream (EOF or a reset) after whatever was still buffered;
// false after 15 s without a byte. `drained` counts the bytes read on the way.
bool ended(int fd, std::size_t* drained = nullptr) {
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 15'000) <= 0) return false;
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r > 0) {
      if (drained) *drained += static_cast<std::size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    return r == 0 || errno == ECONNRESET;
  }
}

struct SocketPair {
  int loop_end = -1, peer = -1;  // loop_end is handed to the loop, which then owns it
  SocketPair() {
    int fd[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) != 0)
      throw std::runtime_error("socketpair failed");
    loop_end = fd[0];
    peer = fd[1];
  }
  ~SocketPair() {
    if (peer >= 0) ::close(peer);
  }
  SocketPair(SocketPair&& o) noexcept : loop_end(o.loop_end), peer(o.peer) { o.peer = -1; }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
};

// A loopback listener, to make connected TCP pairs whose client end is a test::Conn (so the
// HTTP answers are parsed by test::read_response).
class TcpPairs {
 public:
  TcpPairs() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 64) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("listener failed");
    port_ = ntohs(a.sin_port);
  }
  ~TcpPairs() { ::close(fd_); }
  // A connected client, and the server's end of it in *server (for the loop).
  test::Conn connect(int* server) {
    test::Conn c(port_);
    *server = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (*server < 0) throw std::runtime_error("accept failed");
    return c;
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// ---- a session the tests steer ----------------------------------------------------------------

// A line protocol:
//   "wait"    the session waits on work (a 1 ms timer, asked again and again while the gate is
//             shut), then answers "waited"
//   "boom"    the session throws (the loop drops the connection)
//   any other line is answered with itself
// The counters say what the loop did with the session; any thread may read them.
struct Steering {
  std::atomic<bool> gate_open{true};
  std::atomic<int> inputs{0};             // on_input calls, every session
  std::atomic<int> fed_while_waiting{0};  // on_input calls while the session waited on work
};

class SteeredSession final : public Session {
 public:
  explicit SteeredSession(Steering& s) : s_(s) {}
  Next on_input(std::string_view in, std::string& out) override {
    s_.inputs.fetch_add(1);
    if (waiting_) s_.fed_while_waiting.fetch_add(1);
    buf_.append(in);
    return lines(out);
  }
  Next on_work_done(WorkResult, std::string& out) override {
    if (!s_.gate_open.load()) return Next::work;
    waiting_ = false;
    out += "waited\n";
    return lines(out);
  }
  const Work& pending_work() const override { return work_; }
  bool mid_request() const override { return waiting_ || !buf_.empty(); }

 private:
  Next lines(std::string& out) {
    std::size_t pos = 0;
    for (std::size_t nl; (nl = buf_.find('\n', pos)) != std::string::npos;) {
      std::string_view line(buf_.data() + pos, nl - pos);
      pos = nl + 1;
      if (line == "boom") throw std::runtime_error("boom");
      if (line == "wait") {
        buf_.erase(0, pos);
        waiting_ = true;
        return Next::work;
      }
      out.append(line);
      out += '\n';
    }
    buf_.erase(0, pos);
    return Next::read;
  }

  Steering& s_;
  std::string buf_;
  bool waiting_ = false;
  const Work work_{Work::Kind::sleep, std::chrono::milliseconds(1), {}, 0};
};

class SteeredHandler final : public Handler {
 public:
  explicit SteeredHandler(Steering& s) : s_(s) {}
  std::unique_ptr<Session> new_session() const override {
    return std::make_unique<SteeredSession>(s_);
  }

 private:
  Steering& s_;
};

// ---- a UringLoop on its own thread ----------------------------------------------------------

// The loop is built (and may adopt sockets) on the test's thread, then run() on a thread of its
// own. After that only the loop's thread may call it (the owner-thread checks abort otherwise),
// so on_loop() runs a function there, through an eventfd the loop watches, and returns its
// result. Teardown in the order run_loops() uses: stop and join, the pool, then the loop.
class LoopThread {
 public:
  LoopThread(const ServeOptions& options, const Handler& handler)
      : options_(options),
        pool_(std::make_unique<HelperPool>(2)),
        loop_(std::make_unique<UringLoop>(options_, handler, *pool_, -1)),
        efd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    loop_->watch(efd_, [this] { run_calls(); });
  }
  ~LoopThread() {
    if (thread_.joinable()) {
      loop_->request_stop();
      thread_.join();
    }
    pool_.reset();
    loop_.reset();
    ::close(efd_);
  }
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;

  UringLoop& loop() { return *loop_; }  // before start(), or on the loop's thread
  void start() {
    thread_ = std::thread([this] {
      result_ = loop_->run();
      finished_.store(true);
    });
  }
  bool finished() const { return finished_.load(); }
  // request_stop() from this thread, then waits for run() to return; returns what it returned.
  bool stop() {
    loop_->request_stop();
    EXPECT_TRUE(eventually([&] { return finished(); })) << "run() did not return";
    thread_.join();
    return result_;
  }

  template <class F>
  auto on_loop(F f) -> decltype(f()) {
    auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
    auto result = task->get_future();
    {
      std::lock_guard lock(mu_);
      calls_.push_back([task] { (*task)(); });
    }
    const std::uint64_t one = 1;
    EXPECT_EQ(::write(efd_, &one, sizeof one), static_cast<ssize_t>(sizeof one));
    if (result.wait_for(std::chrono::seconds(60)) != std::future_status::ready)
      throw std::runtime_error("the loop did not run the call within 60 s");
    return result.get();
  }
  std::size_t connections() {
    return on_loop([this] { return loop_->connections(); });
  }
  UringLoop::Counts counts() {
    return on_loop([this] { return loop_->counts(); });
  }
  void adopt(int fd) {
    EXPECT_EQ(on_loop([&] { return loop_->adopt(fd); }), 0);
  }

 private:
  void run_calls() {
    std::uint64_t n;
    while (::read(efd_, &n, sizeof n) > 0) {
    }
    std::vector<std::function<void()>> calls;
    {
      std::lock_guard lock(mu_);
      calls.swap(calls_);
    }
    for (auto& call : calls) call();
  }

  const ServeOptions& options_;
  std::unique_ptr<HelperPool> pool_;
  std::unique_ptr<UringLoop> loop_;
  int efd_ = -1;
  std::thread thread_;
  std::atomic<bool> finished_{false};
  bool result_ = false;
  std::mutex mu_;
  std::vector<std::function<void()>> calls_;
};

class UringLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!uring_unavailable().empty()) GTEST_SKIP() << uring_unavailable();
  }
  ServeOptions options_;
  Steering steering_;
  SteeredHandler steered_{steering_};
  std::unique_ptr<Handler> http_ = make_handler("http", HandlerConfig{});
};

// ---- input while the session is busy --------------------------------------------------------

// One write carries a /sleep and a GET / behind it: the /sleep is answered first (after its
// timer), then the GET /, on the same connection.
TEST_F(UringLoopTest, RequestPipelinedBehindASleepIsAnsweredAfterIt) {
  TcpPairs tcp;
  int server;
  test::Conn c = tcp.connect(&server);
  LoopThread lt(options_, *http_);
  ASSERT_EQ(lt.loop().adopt(server), 0);
  lt.start();
  ASSERT_TRUE(c.send(test::get_request("/sleep?ms=50") + test::get_request("/")));
  EXPECT_EQ(test::read_response(c).body, "slept 50 ms\n");
  EXPECT_EQ(test::read_response(c).body, "Hello, World!");
  EXPECT_TRUE(lt.stop());
}

// Bytes that come while the session waits on work are taken from the socket by the loop (its
// multishot receive stays armed), held, not fed to the session, and fed once it reads again:
// every line answered, in order, after the work's answer.
TEST_F(UringLoopTest, BytesArrivingWhileTheSessionWaitsOnWorkAreHeldAndAnsweredAfterIt) {
  SocketPair sp;
  LoopThread lt(options_, steered_);
  ASSERT_EQ(lt.loop().adopt(sp.loop_end), 0);
  lt.start();
  steering_.gate_open = false;
  ASSERT_TRUE(test::send_all(sp.peer, "wait\n"));
  ASSERT_TRUE(eventually([&] { return steering_.inputs.load() == 1; }));
  ASSERT_TRUE(test::send_all(sp.peer, "one\n"));
  ASSERT_TRUE(test::send_all(sp.peer, "two\nthree\n"));
  // Taken by the loop while the gate is shut: the session is still waiting.
  EXPECT_TRUE(eventually([&] { return unread(sp.loop_end) == 0; }))
      << unread(sp.loop_end) << " bytes left in the socket";
  EXPECT_EQ(steering_.inputs.load(), 1) << "the session was fed while it waited on work";
  steering_.gate_open = true;
  EXPECT_EQ(read_exactly(sp.peer, 21), "waited\none\ntwo\nthree\n");
  EXPECT_EQ(steering_.fed_while_waiting.load(), 0);
  EXPECT_TRUE(lt.stop());
}

// More than the hold limit arrives while the session waits: the loop stops taking it (the
// rest stays in the socket, pushing back on the client) and receives again once the session
// reads. Every line comes back, once, in order.
TEST_F(UringLoopTest, InputBeyondTheHoldLimitWhileBusyIsAllAnsweredAfterTheWork) {
  SocketPair sp;
  LoopThread lt(options_, steered_);
  ASSERT_EQ(lt.loop().adopt(sp.loop_end), 0);
  lt.start();
  steering_.gate_open = false;
  ASSERT_TRUE(test::send_all(sp.peer, "wait\n"));
  ASSERT_TRUE(eventually([&] { return steering_.inputs.load() == 1; }));

  std::string lines;
  for (int i = 0; lines.size() < 8 * kHoldLimit; ++i) lines += fmt::format("line {}\n", i);
  std::atomic<std::size_t> written{0};
  std::thread writer([&] {
    std::string_view rest = lines;
    while (!rest.empty()) {
      ssize_t n = ::send(sp.peer, rest.data(), std::min<std::size_t>(rest.size(), 4096), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      rest.remove_prefix(static_cast<std::size_t>(n));
      written.fetch_add(static_cast<std::size_t>(n));
    }
  });
  // Bytes written (read first) minus bytes still in the socket: a lower bound on what the loop
  // has taken, and held, since the session cannot have had them yet.
  const bool over = eventually([&] {
    const std::size_t w = written.load();
    const int q = unread(sp.loop_end);
    return q >= 0 && w > static_cast<std::size_t>(q) && w - q > kHoldLimit;
  });
  EXPECT_TRUE(over) << "the loop did not take " << kHoldLimit << " bytes while the session waited";
  EXPECT_EQ(steering_.inputs.load(), 1);
  steering_.gate_open = true;
  const std::string want = "waited\n" + lines;
  const std::string got = read_exactly(sp.peer, want.size());
  writer.join();
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "the answers differ from the lines sent (lost, doubled or reordered)";
  EXPECT_EQ(steering_.fed_while_waiting.load(), 0);
  EXPECT_TRUE(lt.stop());
}

// ---- the end of the peer's input -----------------------------------------------------------

// The request, then the client's FIN while the 4 MB answer is still going out: the whole answer
// arrives, then the end.
TEST_F(UringLoopTest, HalfClosedPeerGetsTheWholeAnswerThenTheEnd) {
  TcpPairs tcp;
  int server;
  test::Conn c = tcp.connect(&server);
  LoopThread lt(options_, *http_);
  ASSERT_EQ(lt.loop().adopt(server), 0);
  lt.start();
  ASSERT_TRUE(c.send(test::get_request("/bytes?n=4000000")));
  c.shutdown_write();
  auto r = test::read_response(c);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 4'000'000u);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_TRUE(eventually([&] { return lt.connections() == 0; }));
  EXPECT_TRUE(lt.stop());
}

// Data and the FIN come while the session waits on work: the work's answer, then the held line's,
// then the end.
TEST_F(UringLoopTest, PeerThatHalfClosesWhileTheSessionWaitsGetsEveryAnswerThenTheEnd) {
  SocketPair sp;
  LoopThread lt(options_, steered_);
  ASSERT_EQ(lt.loop().adopt(sp.loop_end), 0);
  lt.start();
  steering_.gate_open = false;
  ASSERT_TRUE(test::send_all(sp.peer, "wait\n"));
  ASSERT_TRUE(eventually([&] { return steering_.inputs.load() == 1; }));
  ASSERT_TRUE(test::send_all(sp.peer, "after\n"));
  ::shutdown(sp.peer, SHUT_WR);
  EXPECT_TRUE(eventually([&] { return unread(sp.loop_end) == 0; }));
  steering_.gate_open = true;
  EXPECT_EQ(read_exactly(sp.peer, 13), "waited\nafter\n");
  EXPECT_TRUE(ended(sp.peer));
  EXPECT_TRUE(eventually([&] { return lt.connections() == 0; }));
  EXPECT_TRUE(lt.stop());
}

// ---- closing with operations in flight -------------------------------------------------------

// A client asks for 200 MB and reads none of it: the loop's send waits in the kernel until the
// stall timeout (--idle-timeout, 300 ms here) closes the connection. It is closed (the client
// sees the end after what its buffers held, far short of the answer), the loop counts no
// connection left, and a connection that comes next (its descriptor number may be the same) is
// answered.
TEST_F(UringLoopTest, ConnectionStalledWithASendInFlightIsClosedAndTheNextIsServed) {
  options_.idle_timeout = milliseconds(300);
  TcpPairs tcp;
  int server;
  test::Conn greedy = tcp.connect(&server);
  LoopThread lt(options_, *http_);
  ASSERT_EQ(lt.loop().adopt(server), 0);
  lt.start();
  ASSERT_TRUE(greedy.send(test::get_request("/bytes?n=200000000")));
  // Read nothing until the loop has given up on the connection.
  EXPECT_TRUE(eventually([&] { return lt.connections() == 0; }));
  std::size_t got = 0;
  EXPECT_TRUE(ended(greedy.fd(), &got));
  EXPECT_LT(got, 200'000'000u) << "the whole answer arrived: it was never cut off";

  int server2;
  test::Conn next = tcp.connect(&server2);
  ASSERT_TRUE(next.send(test::get_request("/")));  // before the adopt: no idle timer runs first
  lt.adopt(server2);
  EXPECT_EQ(test::read_response(next).body, "Hello, World!");
  EXPECT_TRUE(lt.stop());
}

// Connections reset by their clients while a send to each waits in the kernel (each asked for
// 50 MB and read nothing): the receive and the send of each complete with errors, in the same
// batch or not; each is closed once both are back, and the loop goes on serving.
TEST_F(UringLoopTest, ConnectionsResetWithSendsInFlightAreClosedAndTheLoopServesOthers) {
  TcpPairs tcp;
  LoopThread lt(options_, *http_);
  lt.start();
  std::vector<test::Conn> greedy;
  for (int i = 0; i < 20; ++i) {
    int server;
    greedy.push_back(tcp.connect(&server));
    ASSERT_TRUE(greedy.back().send(test::get_request("/bytes?n=50000000")));
    lt.adopt(server);
  }
  for (auto& g : greedy) {  // each answer has started, and is left unread
    pollfd p{g.fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 15'000), 1);
  }
  for (auto& g : greedy) {
    linger l{1, 0};  // close sends a reset
    ::setsockopt(g.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    g.close();
  }
  EXPECT_TRUE(eventually([&] { return lt.connections() == 0; })) << lt.connections() << " left";
  int server;
  test::Conn c = tcp.connect(&server);
  lt.adopt(server);
  ASSERT_TRUE(c.send(test::get_request("/")));
  EXPECT_EQ(test::read_response(c).body, "Hello, World!");
  EXPECT_TRUE(lt.stop());
}

// ---- the receive buffers -------------------------------------------------------------------

// More connections with input, in one batch, than the ring has receive buffers: 1,500 sockets
// (the ring starts with far fewer), each with a line waiting, adopted in one iteration, so
// their receives are all issued before any buffer is given back or added. The ones that find
// the ring empty complete with -ENOBUFS (counted), the ring grows, and they are armed again:
// every connection is answered.
TEST_F(UringLoopTest, MoreReadyConnectionsThanReceiveBuffersAreAllAnswered) {
  constexpr std::size_t kConns = 1500;
  if (!descriptors_for(2 * kConns + 100)) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  std::vector<SocketPair> pairs(kConns);
  for (std::size_t i = 0; i < kConns; ++i)
    ASSERT_TRUE(test::send_all(pairs[i].peer, fmt::format("hello {}\n", i)));
  LoopThread lt(options_, steered_);
  lt.start();
  const UringLoop::Counts before = lt.counts();
  ASSERT_LT(before.buffers, kConns) << "the ring has a buffer for every connection already";
  lt.on_loop([&] {
    for (auto& p : pairs) EXPECT_EQ(lt.loop().adopt(p.loop_end), 0);
  });
  for (std::size_t i = 0; i < kConns; ++i) {
    const std::string want = fmt::format("hello {}\n", i);
    ASSERT_EQ(read_exactly(pairs[i].peer, want.size()), want) << "connection " << i;
  }
  const UringLoop::Counts after = lt.counts();
  std::printf("[ info ] %llu receives found the buffer ring empty; %u buffers, then %u\n",
              static_cast<unsigned long long>(after.no_buffers - before.no_buffers), before.buffers,
              after.buffers);
  EXPECT_GT(after.no_buffers, before.no_buffers) << "the -ENOBUFS path was not taken";
  EXPECT_GT(after.buffers, before.buffers) << "the ring did not grow";
  EXPECT_EQ(lt.connections(), kConns);
  EXPECT_TRUE(lt.stop());
}

// Before run() the ring is not enabled, so the submission queue cannot be handed to the kernel
// when it fills: adopting more sockets than it holds refuses the rest with EAGAIN (the socket
// closed, nothing left pointing at it), and the ones taken are all served once the loop runs.
TEST_F(UringLoopTest, AdoptingMoreSocketsBeforeRunThanTheQueueHoldsRefusesTheRestCleanly) {
  constexpr std::size_t kConns = 1500;  // the queue holds 1,024 submissions
  if (!descriptors_for(2 * kConns + 100)) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  std::vector<SocketPair> pairs(kConns);
  LoopThread lt(options_, steered_);
  std::vector<bool> taken(kConns);
  std::size_t refused = 0;
  for (std::size_t i = 0; i < kConns; ++i) {
    ASSERT_TRUE(test::send_all(pairs[i].peer, fmt::format("hello {}\n", i)));
    const int err = lt.loop().adopt(pairs[i].loop_end);
    ASSERT_TRUE(err == 0 || err == EAGAIN) << std::strerror(err);
    taken[i] = err == 0;
    refused += err == EAGAIN;
  }
  EXPECT_GT(refused, 0u) << "every socket fitted: the test no longer fills the queue";
  lt.start();
  for (std::size_t i = 0; i < kConns; ++i) {
    if (!taken[i]) {
      EXPECT_TRUE(ended(pairs[i].peer)) << "refused connection " << i << " was left open";
      continue;
    }
    const std::string want = fmt::format("hello {}\n", i);
    ASSERT_EQ(read_exactly(pairs[i].peer, want.size()), want) << "connection " << i;
  }
  EXPECT_EQ(lt.connections(), kConns - refused);
  EXPECT_TRUE(lt.stop());
}

// A session that throws on its first input while more of its bytes sit in further receive
// completions (10 KB waiting, 4 KiB buffers): the loop drops the connection, never feeds its
// session again, and gives every buffer of those completions back. Proof of the last: then
// exactly as many connections as the ring has buffers, each with a line waiting and adopted in
// one iteration, are answered without a single receive finding the ring empty.
TEST_F(UringLoopTest, CompletionsOfAClosingConnectionAreSkippedAndTheirBuffersGivenBack) {
  SocketPair doomed;
  ASSERT_TRUE(test::send_all(doomed.peer, "boom\n" + std::string(10'000, 'x') + "\n"));
  LoopThread lt(options_, steered_);
  ASSERT_EQ(lt.loop().adopt(doomed.loop_end), 0);
  lt.start();
  EXPECT_TRUE(ended(doomed.peer));
  EXPECT_TRUE(eventually([&] { return lt.connections() == 0; }));
  EXPECT_EQ(steering_.inputs.load(), 1) << "a closing connection's session was fed again";

  const UringLoop::Counts before = lt.counts();
  if (!descriptors_for(2 * before.buffers + 100)) GTEST_SKIP() << "RLIMIT_NOFILE too low";
  std::vector<SocketPair> pairs(before.buffers);
  for (std::size_t i = 0; i < pairs.size(); ++i)
    ASSERT_TRUE(test::send_all(pairs[i].peer, fmt::format("{}\n", i)));
  lt.on_loop([&] {
    for (auto& p : pairs) EXPECT_EQ(lt.loop().adopt(p.loop_end), 0);
  });
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const std::string want = fmt::format("{}\n", i);
    ASSERT_EQ(read_exactly(pairs[i].peer, want.size()), want) << "connection " << i;
  }
  EXPECT_EQ(lt.counts().no_buffers, before.no_buffers)
      << "buffers were missing from the ring (" << before.buffers << " provided)";
  EXPECT_TRUE(lt.stop());
}

// ---- system calls ----------------------------------------------------------------------------

// 200 connections, each with one request waiting, adopted in one iteration: their receives,
// the answers' sends and every completion go through a handful of io_uring_enter calls, not
// one or two per request as with epoll.
TEST_F(UringLoopTest, ManyBusyConnectionsTakeFarFewerEntersThanRequests) {
  constexpr std::size_t kConns = 200;
  std::vector<SocketPair> pairs(kConns);
  for (std::size_t i = 0; i < kConns; ++i)
    ASSERT_TRUE(test::send_all(pairs[i].peer, fmt::format("r{}\n", i)));
  LoopThread lt(options_, steered_);
  lt.start();
  std::uint64_t before = 0;
  lt.on_loop([&] {
    before = lt.loop().counts().enters;
    for (auto& p : pairs) EXPECT_EQ(lt.loop().adopt(p.loop_end), 0);
  });
  for (std::size_t i = 0; i < kConns; ++i) {
    const std::string want = fmt::format("r{}\n", i);
    ASSERT_EQ(read_exactly(pairs[i].peer, want.size()), want) << "connection " << i;
  }
  const std::uint64_t enters = lt.counts().enters - before;
  std::printf("[ info ] %zu requests answered with %llu io_uring_enter calls\n", kConns,
              static_cast<unsigned long long>(enters));
  EXPECT_LT(enters, kConns / 10);
  EXPECT_TRUE(lt.stop());
}

// ---- stopping --------------------------------------------------------------------------------

// request_stop() from another thread while one connection waits on work and another is idle:
// the idle one is closed at once, the busy one keeps its connection until its answer has gone
// out (run() has not returned meanwhile), then it is closed and run() returns true.
TEST_F(UringLoopTest, StopFromAnotherThreadFinishesInFlightWorkThenRunReturnsTrue) {
  SocketPair busy, idle;
  LoopThread lt(options_, steered_);
  ASSERT_EQ(lt.loop().adopt(busy.loop_end), 0);
  ASSERT_EQ(lt.loop().adopt(idle.loop_end), 0);
  lt.start();
  steering_.gate_open = false;
  ASSERT_TRUE(test::send_all(busy.peer, "wait\n"));
  ASSERT_TRUE(eventually([&] { return steering_.inputs.load() == 1; }));
  lt.loop().request_stop();  // from this thread, as a signal handler's thread would
  EXPECT_TRUE(ended(idle.peer)) << "the idle connection was not closed";
  EXPECT_FALSE(lt.finished()) << "run() returned with work in flight";
  pollfd p{busy.peer, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "the busy connection was answered or closed early";
  steering_.gate_open = true;
  EXPECT_EQ(read_exactly(busy.peer, 7), "waited\n");
  EXPECT_TRUE(ended(busy.peer));
  EXPECT_TRUE(eventually([&] { return lt.finished(); }));
  EXPECT_TRUE(lt.stop());
}

// Work that outlasts --grace (the gate stays shut): run() gives up and returns false.
TEST_F(UringLoopTest, RunReturnsFalseWhenWorkOutlastsTheGracePeriod) {
  options_.grace = milliseconds(100);
  SocketPair busy;
  LoopThread lt(options_, steered_);
  ASSERT_EQ(lt.loop().adopt(busy.loop_end), 0);
  lt.start();
  steering_.gate_open = false;
  ASSERT_TRUE(test::send_all(busy.peer, "wait\n"));
  ASSERT_TRUE(eventually([&] { return steering_.inputs.load() == 1; }));
  EXPECT_FALSE(lt.stop());
}

// ---- peer_gone(): how a stopping loop finds clients whose reset it was never told of ---------

// Waits until the kernel has taken in the client's FIN or reset on `fd` (poll reports RDHUP, HUP
// or ERR), so the state peer_gone() reads is the one after it.
bool peer_end_arrived(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 20'000) == 1;
}

// The stopping uring loop closes a connection mid-request whose client is gone (check(), for
// the reset a multishot recv can miss). peer_gone() must say so for a reset and for a FIN with
// nothing left unread, and must not for an open connection, nor for a half-closed one whose
// bytes (complete requests, perhaps) are still to be read; asking must not take the pending
// error that the loop's own receive reports.
TEST(PeerGone, ForAResetAndForAHalfCloseWithNothingUnreadOnly) {
  TcpPairs tcp;
  int server = -1;
  test::Conn open = tcp.connect(&server);
  EXPECT_FALSE(peer_gone(server)) << "an open connection";
  const std::string line = "GET / HTTP/1.1\r\n", half = line + "X-Half: ";
  ASSERT_TRUE(open.send(line));
  open.shutdown_write();
  ASSERT_TRUE(peer_end_arrived(server));
  EXPECT_FALSE(peer_gone(server)) << "half-closed with bytes unread";
  char buf[64];
  EXPECT_EQ(::recv(server, buf, sizeof buf, 0), static_cast<ssize_t>(line.size()));
  EXPECT_TRUE(peer_gone(server)) << "half-closed, everything read";
  ::close(server);

  test::Conn reset = tcp.connect(&server);
  ASSERT_TRUE(reset.send(half));
  linger lg{1, 0};
  ::setsockopt(reset.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  reset.close();
  ASSERT_TRUE(peer_end_arrived(server));
  EXPECT_TRUE(peer_gone(server)) << "reset";
  EXPECT_TRUE(peer_gone(server)) << "reset, asked again";
  // The bytes, then the reset: still there for the loop's receive to report.
  EXPECT_EQ(::recv(server, buf, sizeof buf, 0), static_cast<ssize_t>(half.size()));
  EXPECT_EQ(::recv(server, buf, sizeof buf, 0), -1);
  EXPECT_EQ(errno, ECONNRESET);
  ::close(server);
}

// ---- the server process ------------------------------------------------------------------------

// io_uring_setup refused with ENOSYS by a seccomp filter, as a container's profile does: the
// server says why on stderr and exits 2 without listening; --check says the same.
TEST(UringServer, ExitsWithStatus2NamingIoUringWhereASeccompFilterForbidsIt) {
  if (!uring_unavailable().empty()) GTEST_SKIP() << uring_unavailable();
  test::ChildSetup setup;
  setup.forbid_io_uring = true;
  for (const char* check : {"", "--check"}) {
    std::vector<std::string> argv = {
        test::shootout_binary(), "serve", "--port", "0", "--model", "uring"};
    if (*check) argv.push_back(check);
    test::Process p(argv, setup);
    EXPECT_EQ(p.wait(std::chrono::seconds(20)), 2) << check;
    const std::string err = p.stderr_text();
    EXPECT_NE(err.find("--model uring cannot run here"), std::string::npos) << err;
    EXPECT_NE(err.find("io_uring_setup"), std::string::npos) << err;
    EXPECT_NE(err.find(std::strerror(ENOSYS)), std::string::npos) << err;
    EXPECT_EQ(p.stdout_text().find("listening on"), std::string::npos) << p.stdout_text();
  }
}

// The filter forbids io_uring alone: the same child set-up runs the evented model.
TEST(UringServer, TheSeccompFilterLeavesOtherModelsRunning) {
  if (!uring_unavailable().empty()) GTEST_SKIP() << uring_unavailable();
  test::ChildSetup setup;
  setup.forbid_io_uring = true;
  test::ServerProcess s({"--model", "evented"}, setup);
  EXPECT_EQ(test::http_get(s.port(), "/").body, "Hello, World!");
  EXPECT_EQ(s.stop(), 0) << s.process().stderr_text();
}

// The uring model has no readiness backend: --poller with it is a usage error, not ignored.
TEST(UringServer, PollerFlagIsRefusedWithTheUsage) {
  if (!uring_unavailable().empty()) GTEST_SKIP() << uring_unavailable();
  test::Process p(
      {test::shootout_binary(), "serve", "--port", "0", "--model", "uring", "--poller", "poll"});
  EXPECT_EQ(p.wait(std::chrono::seconds(20)), 2);
  const std::string err = p.stderr_text();
  EXPECT_NE(err.find("Usage"), std::string::npos) << err;
  EXPECT_NE(err.find("--poller"), std::string::npos) << err;
  EXPECT_EQ(p.stdout_text().find("listening on"), std::string::npos) << p.stdout_text();
}

}  // namespace
}  // namespace shootout

#endif  // SHOOTOUT_HAVE_URING
