// The load generator's two engines (loadgen/engine.hpp) against servers that misbehave, and the
// io_uring engine's own edge cases, each provoked on purpose: a receive buffer ring so small it
// runs dry (-ENOBUFS) on every response, responses many buffers long, a request larger than
// every socket buffer on the way (short sends), and io_uring forbidden by a seccomp filter.
//
// The misbehaving servers are real sockets on 127.0.0.1 served by a thread of the test: one
// that never answers, one that closes in the middle of a response, one that resets. Every run is
// bounded (short -d, few connections) and asserts counts and orderings, never speeds.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "files.hpp"
#include "load.hpp"
#include "load_support.hpp"
#include "sampler.hpp"
#include "server_process.hpp"

namespace shootout::load {
// Test names and messages say "asio" and "uring", not the enum's bytes.
inline void PrintTo(EngineKind e, std::ostream* os) { *os << engine_name(e); }
}  // namespace shootout::load

namespace {

using namespace std::chrono_literals;
using shootout::load::EngineKind;
using shootout::load::LoadConfig;
using shootout::load::LoadResult;
using shootout::test::Process;
using shootout::test::ServerProcess;

const std::string& uring_why() { return shootout::load::uring_engine_unavailable(); }

#define SKIP_WITHOUT_URING() \
  if (!uring_why().empty()) GTEST_SKIP() << "--engine uring: " << uring_why()

// What the server does once it has read a whole request (up to the blank line).
enum class Misbehaviour {
  never_answer,        // nothing: holds the connection open until the test ends
  close_mid_response,  // the status line, a header promising 100 bytes, 3 of them, then FIN
  reset,               // SO_LINGER 0 and close: an RST instead of an answer
};

// A listening socket on 127.0.0.1 and a pipe that tells a serving thread to stop: what the
// test servers below share. Each server owns its thread and its clients; its destructor asks
// the thread to stop and joins it before this closes the socket and the pipe.
class Loopback {
 public:
  explicit Loopback(const char* who) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 128) != 0 || ::pipe(stop_) != 0)
      throw std::runtime_error(std::string(who) + ": " + std::strerror(errno));
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Loopback() {
    ::close(listen_fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  Loopback(const Loopback&) = delete;
  Loopback& operator=(const Loopback&) = delete;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }
  int listen_fd() const { return listen_fd_; }
  int stop_fd() const { return stop_[0]; }  // readable once ask_stop() was called
  void ask_stop() const {
    const char x = 0;
    [[maybe_unused]] auto n = ::write(stop_[1], &x, 1);
  }

 private:
  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  std::uint16_t port_ = 0;
};

// A listening socket on 127.0.0.1 and a thread serving it with one misbehaviour.
class RawServer {
 public:
  explicit RawServer(Misbehaviour m) : net_("RawServer"), how_(m) {
    thread_ = std::thread([this] { loop(); });
  }
  ~RawServer() {
    net_.ask_stop();
    thread_.join();
    for (const auto& c : clients_) ::close(c.fd);
  }
  std::string url() const { return net_.url(); }
  // Requests read whole and answered with the misbehaviour so far.
  int misbehaved() const { return misbehaved_.load(); }

 private:
  struct Client {
    int fd;
    std::string in;
  };

  void loop() {
    for (;;) {
      std::vector<pollfd> fds{{net_.stop_fd(), POLLIN, 0}, {net_.listen_fd(), POLLIN, 0}};
      for (const auto& c : clients_) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return;
      if (fds[0].revents) return;
      if (fds[1].revents) {
        const int fd = ::accept4(net_.listen_fd(), nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) clients_.push_back({fd, {}});
      }
      // Back to front, so closing one does not move those still to be looked at.
      for (std::size_t i = fds.size(); i-- > 2;)
        if (fds[i].revents) serve(i - 2);
    }
  }

  void serve(std::size_t i) {
    Client& c = clients_[i];
    char buf[4096];
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n <= 0) return drop(i, false);
    c.in.append(buf, static_cast<std::size_t>(n));
    if (c.in.find("\r\n\r\n") == std::string::npos || how_ == Misbehaviour::never_answer) {
      if (c.in.find("\r\n\r\n") != std::string::npos && c.in.size() < 1 << 20) ++misbehaved_;
      c.in.clear();
      return;
    }
    ++misbehaved_;
    if (how_ == Misbehaviour::close_mid_response) {
      const std::string part = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc";
      [[maybe_unused]] auto w = ::send(c.fd, part.data(), part.size(), MSG_NOSIGNAL);
      return drop(i, false);
    }
    drop(i, true);
  }

  void drop(std::size_t i, bool reset) {
    if (reset) {
      const linger l{1, 0};
      ::setsockopt(clients_[i].fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    ::close(clients_[i].fd);
    clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(i));
  }

  const Loopback net_;  // before thread_, which uses it
  const Misbehaviour how_;
  std::vector<Client> clients_;  // the server thread's only
  std::atomic<int> misbehaved_{0};
  std::thread thread_;
};

// A well-behaved server that takes on its last connection late, the way a server that forks
// or spawns per connection does: it accepts all but one of `n`, answers each of their first
// requests, goes on serving them for a pause, and only then accepts the last. It counts the
// requests that were not a connection's first and arrived before that last accept.
class LateLastAcceptServer {
 public:
  explicit LateLastAcceptServer(int n) : net_("LateLastAcceptServer"), n_(n) {
    thread_ = std::thread([this] { loop(); });
  }
  ~LateLastAcceptServer() {
    net_.ask_stop();
    thread_.join();
    for (const auto& c : clients_) ::close(c.fd);
  }
  std::string url() const { return net_.url(); }
  // Requests that were not their connection's first and came before the last accept.
  int early_repeats() const { return early_.load(); }
  // Requests that were not their connection's first and came after it.
  int later_repeats() const { return later_.load(); }
  bool accepted_all() const { return accepted_all_.load(); }

 private:
  struct Client {
    int fd;
    std::string in;
    int requests = 0;
  };

  void loop() {
    using Clock = std::chrono::steady_clock;
    Clock::time_point pause_end{};
    for (;;) {
      const int firsts = static_cast<int>(std::count_if(
          clients_.begin(), clients_.end(), [](const Client& c) { return c.requests > 0; }));
      const int accepted = static_cast<int>(clients_.size());
      if (accepted == n_ - 1 && firsts == n_ - 1 && pause_end == Clock::time_point{})
        pause_end = Clock::now() + 300ms;
      const bool take_last = pause_end != Clock::time_point{} && Clock::now() >= pause_end;
      const bool listening = accepted < n_ - 1 || (accepted == n_ - 1 && take_last);
      std::vector<pollfd> fds{{net_.stop_fd(), POLLIN, 0},
                              {listening ? net_.listen_fd() : -1, POLLIN, 0}};
      for (const auto& c : clients_) fds.push_back({c.fd, POLLIN, 0});
      const int wait = accepted == n_ - 1 && !take_last ? 10 : -1;  // to see the pause end
      if (::poll(fds.data(), fds.size(), wait) < 0 && errno != EINTR) return;
      if (fds[0].revents) return;
      if (fds[1].revents) {
        const int fd = ::accept4(net_.listen_fd(), nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) clients_.push_back({fd, {}});
        if (static_cast<int>(clients_.size()) == n_) accepted_all_ = true;
      }
      for (std::size_t i = fds.size(); i-- > 2;)
        if (fds[i].revents) serve(i - 2);
    }
  }

  void serve(std::size_t i) {
    Client& c = clients_[i];
    char buf[4096];
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n <= 0) {
      ::close(c.fd);
      clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
    c.in.append(buf, static_cast<std::size_t>(n));
    for (std::size_t end; (end = c.in.find("\r\n\r\n")) != std::string::npos;) {
      c.in.erase(0, end + 4);
      if (c.requests++ > 0) ++(accepted_all_ ? later_ : early_);
      static const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      [[maybe_unused]] auto w = ::send(c.fd, ok.data(), ok.size(), MSG_NOSIGNAL);
    }
  }

  const Loopback net_;  // before thread_, which uses it
  const int n_;
  std::vector<Client> clients_;  // the server thread's only
  std::atomic<int> early_{0}, later_{0};
  std::atomic<bool> accepted_all_{false};
  std::thread thread_;
};

LoadConfig quick(const std::string& url, EngineKind engine, int connections = 2,
                 std::chrono::milliseconds d = 1s) {
  LoadConfig c;
  c.url = url;
  c.connections = connections;
  c.threads = 1;
  c.duration = d;
  c.engine = engine;
  return c;
}

// A server that answers nothing whole: the closed loop's window opens at once instead of
// waiting for every connection's first answer (the ramp's bound, 5 s by default).
LoadConfig unanswered(const std::string& url, EngineKind engine) {
  LoadConfig c = quick(url, engine);
  c.ramp_timeout = 1ms;
  return c;
}

using shootout::test::own_url;
using shootout::test::server_requests;

// --- both engines: servers that misbehave, and sizes past the buffers ----------------------

class LoadgenEngines : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override {
    if (GetParam() == EngineKind::uring) SKIP_WITHOUT_URING();
  }
};

// Every connection's first request is cut short (each is at least one read error); each cut is
// at most one (it is counted once, and nothing else is), and nothing is a response.
TEST_P(LoadgenEngines, AServerClosingMidResponseIsAReadErrorAndTheConnectionIsReopened) {
  RawServer server(Misbehaviour::close_mid_response);
  const LoadResult r = shootout::load::run_load(unanswered(server.url(), GetParam()));
  EXPECT_EQ(r.responses_total, 0u);
  EXPECT_GE(r.errors.read, 2u);
  EXPECT_LE(r.errors.read, static_cast<std::uint64_t>(server.misbehaved()));
  EXPECT_EQ(r.errors.body + r.errors.status + r.errors.write, 0u);
  EXPECT_GT(server.misbehaved(), 2);  // reopened and asked again
}

TEST_P(LoadgenEngines, AServerThatResetsIsAReadErrorAndTheConnectionIsReopened) {
  RawServer server(Misbehaviour::reset);
  const LoadResult r = shootout::load::run_load(unanswered(server.url(), GetParam()));
  EXPECT_EQ(r.responses_total, 0u);
  EXPECT_GE(r.errors.read, 2u);
  EXPECT_LE(r.errors.read + r.errors.write, static_cast<std::uint64_t>(server.misbehaved()));
  EXPECT_EQ(r.errors.body + r.errors.status, 0u);
  EXPECT_GT(server.misbehaved(), 2);
}

// A request never answered is a timeout, at least once per connection (the last one after the
// window, by the sweep), and the run still ends: every wait is bounded.
TEST_P(LoadgenEngines, AServerThatNeverAnswersIsTimeoutsAndTheRunEnds) {
  RawServer server(Misbehaviour::never_answer);
  LoadConfig c = unanswered(server.url(), GetParam());
  c.timeout = 200ms;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_EQ(r.responses_total, 0u);
  EXPECT_GE(r.errors.timeout, 2u);
  EXPECT_EQ(r.errors.read + r.errors.connect + r.errors.body, 0u);
  EXPECT_GT(server.misbehaved(), 0);  // the requests did arrive whole
}

// Nothing listens: connects are refused, counted, and retried after a pause, on either engine.
TEST_P(LoadgenEngines, ARefusedConnectIsAConnectErrorAndIsRetried) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);  // a port that was free a moment ago
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  LoadConfig c =
      unanswered("http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/", GetParam());
  c.duration = 500ms;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_EQ(r.responses_total, 0u);
  EXPECT_GT(r.errors.connect, 2u);  // retried
  EXPECT_EQ(r.errors.total(), r.errors.connect);
}

// A response many receives long (200,000 bytes of body) is put together whole on both engines:
// the server's count and ours agree, and every byte is counted.
TEST_P(LoadgenEngines, ResponsesManyReadsLongAreWhole) {
  const auto dir = shootout::test::temp_dir("engine-bytes");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "evented", "--stats-file", stats});
  const LoadResult r =
      shootout::load::run_load(quick(own_url(server, "/bytes?n=200000"), GetParam(), 2));
  EXPECT_GT(r.requests, 0u);
  EXPECT_EQ(r.errors.total(), 0u);
  EXPECT_GE(r.bytes_read, r.requests * 200'000);
  EXPECT_EQ(server_requests(server.pid(), stats), r.responses_total);
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

// A 32 MiB echo request is more than every buffer between us and the server's answer can hold
// (our send buffer, its receive buffer, its send buffer and our receive buffer, at most 4, 6, 4
// and 6 MiB by default), and (uring) our receive is not reaped while the send is made: the
// socket takes part of it, the rest goes in further sends. Every byte comes back and is
// compared. (Asio: reads fill the 64 KiB buffer, and the one that drains the socket exactly must
// not wait for more: it once did, in poll(), past every deadline.)
TEST_P(LoadgenEngines, ARequestLargerThanTheSocketTakesIsSentWholeAndAnsweredWhole) {
  constexpr std::size_t kSize = 32u << 20;
  // The evented server: it once stopped sending back an echo this size, the request read whole
  // and nothing queued on either socket (a lost edge: LoopServer.LargeEchoesComeBackWhole... in
  // evented_test.cpp), and the uring engine met it on every run.
  ServerProcess server({"--model", "evented", "--handler", "echo"});
  LoadConfig c = quick("tcp://127.0.0.1:" + std::to_string(server.port()), GetParam(), 1);
  c.echo_size = kSize;
  c.timeout = 30s;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_GT(r.responses_total, 0u);
  EXPECT_EQ(r.errors.total(), 0u);
  EXPECT_EQ(r.bytes_read, r.requests * kSize);
  if (GetParam() == EngineKind::uring) {
    EXPECT_GT(r.engine_counts.short_sends, 0u);
  }
  EXPECT_EQ(server.stop(), 0);
}

// The closed loop's ramp holds each answered connection's next request until every connection
// has been answered once, then releases them together: while the server is still taking on its
// last connection, the others send nothing more (without the hold they would keep it busy for
// the whole pause, as a forked server's children keep its acceptor from its core), and once it
// has, every connection is served in the window.
TEST_P(LoadgenEngines, TheRampHoldsAnsweredConnectionsUntilEveryOneHasBeenAnswered) {
  constexpr int kConnections = 6;
  LateLastAcceptServer server(kConnections);
  LoadConfig c = quick(server.url(), GetParam(), kConnections, 500ms);
  c.warmup = 0ms;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_TRUE(server.accepted_all());
  EXPECT_EQ(server.early_repeats(), 0);
  EXPECT_GT(server.later_repeats(), 0);
  EXPECT_EQ(r.ramp_reached, static_cast<std::uint64_t>(kConnections));
  EXPECT_EQ(r.connections_in_window, static_cast<std::uint64_t>(kConnections));
  EXPECT_EQ(r.errors.total(), 0u);
}

// The ramp's release sends every held request at once; the window opens only once they have
// been answered, so that burst is not measured as the server's steady pace. Against a server
// that answers each request after 300 ms, that is at least 300 ms after the release.
TEST_P(LoadgenEngines, TheWindowOpensOnceTheRampsReleasedRequestsHaveBeenAnswered) {
  ServerProcess server({"--model", "evented"});
  LoadConfig c = quick(own_url(server, "/sleep?ms=300"), GetParam(), 4, 700ms);
  c.warmup = 0ms;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_EQ(r.ramp_reached, 4u);
  EXPECT_GE(r.settle_s, 0.3);
  EXPECT_EQ(r.connections_in_window, 4u);
  EXPECT_EQ(r.errors.total(), 0u);
  EXPECT_EQ(r.to_json().at("concurrency").at("settle_s"), r.settle_s);
  EXPECT_EQ(server.stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(Engines, LoadgenEngines,
                         ::testing::Values(EngineKind::asio, EngineKind::uring),
                         [](const auto& p) { return shootout::load::engine_name(p.param); });

// --- the uring engine's own edge cases ---------------------------------------------------

// Two receive buffers of 64 bytes for the thread, and responses of about 150 bytes: every
// response needs more buffers than the ring has, so receives end with -ENOBUFS and are armed
// again once the buffers are back. Nothing is lost: the server's count and ours agree, and
// no error is counted.
TEST(LoadgenUring, ATinyBufferRingRunsDryAndEveryResponseStillArrives) {
  SKIP_WITHOUT_URING();
  const auto dir = shootout::test::temp_dir("uring-enobufs");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "evented", "--stats-file", stats});
  LoadConfig c = quick(own_url(server), EngineKind::uring, 4);
  c.uring = {2, 64};
  c.pipeline = 2;
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_GT(r.requests, 0u);
  EXPECT_EQ(r.errors.total(), 0u);
  EXPECT_EQ(r.sent_total, r.responses_total);
  EXPECT_GT(r.engine_counts.no_buffers, 0u);
  EXPECT_GE(r.engine_counts.recv_rearms, r.engine_counts.no_buffers);
  EXPECT_EQ(server_requests(server.pid(), stats), r.responses_total);
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

// Two buffers of 16 bytes and a server that cuts each response short: the status line and the
// header (45 bytes, sent at once) fill both buffers, the rest waits for them to come back
// (-ENOBUFS, the receive armed again), then the end of the stream. That is a read error, never a
// response, once per cut, and the buffers all come back (the connections go on reconnecting and
// being cut; a ring that lost its buffers would starve them into timeouts).
TEST(LoadgenUring, AResponseCutShortAcrossSeveralBuffersIsAReadError) {
  SKIP_WITHOUT_URING();
  RawServer server(Misbehaviour::close_mid_response);
  LoadConfig c = unanswered(server.url(), EngineKind::uring);
  c.uring = {2, 16};
  const LoadResult r = shootout::load::run_load(c);
  EXPECT_EQ(r.responses_total, 0u);
  EXPECT_GE(r.errors.read, 2u);
  EXPECT_LE(r.errors.read, static_cast<std::uint64_t>(server.misbehaved()));
  EXPECT_EQ(r.errors.timeout + r.errors.body, 0u);
  EXPECT_GT(r.engine_counts.no_buffers, 0u);  // 45 bytes in one segment, 2 x 16 of buffers
}

// --- the command line --------------------------------------------------------------------

// io_uring_setup refused with ENOSYS by a seccomp filter, as a container's profile does:
// `--engine uring` says why in one line and exits 2 before connecting anything.
TEST(LoadgenUringCli, ExitsTwoNamingTheReasonWhereASeccompFilterForbidsIoUring) {
  SKIP_WITHOUT_URING();
  shootout::test::ChildSetup setup;
  setup.forbid_io_uring = true;
  Process p({shootout::test::shootout_binary(), "load", "--engine", "uring", "-c", "1", "-d", "1s",
             "http://127.0.0.1:9/"},
            setup);
  EXPECT_EQ(p.wait(20s), 2);
  const std::string err = p.stderr_text();
  EXPECT_NE(err.find("--engine uring cannot run here"), std::string::npos) << err;
  EXPECT_NE(err.find(std::strerror(ENOSYS)), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST(LoadgenUringCli, AnUnknownEngineIsAUsageError) {
  Process p(
      {shootout::test::shootout_binary(), "load", "--engine", "kqueue", "http://127.0.0.1:9/"});
  EXPECT_EQ(p.wait(20s), 2);
  EXPECT_NE(p.stderr_text().find("--engine"), std::string::npos) << p.stderr_text();
}

TEST(LoadgenUringCli, TheJsonNamesTheEngineAndTheSummarySaysIt) {
  SKIP_WITHOUT_URING();
  ServerProcess server({"--model", "evented"});
  Process json({shootout::test::shootout_binary(), "load", "--engine", "uring", "-c", "2", "-d",
                "500ms", "--json", own_url(server)});
  ASSERT_EQ(json.wait(60s), 0) << json.stderr_text();
  const auto j = nlohmann::json::parse(json.stdout_text());
  EXPECT_EQ(j["engine"], "uring");
  EXPECT_GT(j["requests"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["errors"]["total"], 0);
  Process text({shootout::test::shootout_binary(), "load", "--engine", "uring", "-c", "2", "-d",
                "500ms", own_url(server)});
  ASSERT_EQ(text.wait(60s), 0) << text.stderr_text();
  EXPECT_NE(text.stdout_text().find("uring engine"), std::string::npos) << text.stdout_text();
  EXPECT_EQ(server.stop(), 0);
}

}  // namespace
