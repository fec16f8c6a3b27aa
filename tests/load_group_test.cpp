// Several load processes (loadgen/group.hpp, issue 21 A) and --source:
//   LoadMerge          merge_ranks() over an in-process group of threads, on made-up results
//   LoadGroupThreads   run_load() on two threads as two ranks, against a real server
//   LoadMpi            `mpirun -np 2 --oversubscribe build/shootout load ...` against real
//                      servers (skipped, naming the reason, without mpirun)
//   LoadSource         --source: which addresses the server sees its peers from (its own
//                      sockets in /proc/PID/net/tcp)
//   LoadNetns          several hosts on one machine (issue 21 C): the server in one network
//                      namespace, load ranks in two others joined to it by veth pairs
//                      (skipped, naming the reason, where namespaces cannot be made)
// Real processes and loopback sockets; every run bounded; counts and ranges, never speed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <barrier>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "files.hpp"
#include "group.hpp"
#include "histogram.hpp"
#include "load.hpp"
#include "load_support.hpp"
#include "merge.hpp"
#include "mpi_load.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using shootout::load::LatencyHistogram;
using shootout::load::LoadConfig;
using shootout::load::LoadGroup;
using shootout::load::LoadResult;
using shootout::test::Process;
using shootout::test::ServerProcess;

// K ranks as K threads of this process: each collective deposits this rank's data, waits for
// every rank, computes the result from all deposits, and waits again before the slots are reused.
// Threads: one thread per rank, each calling only its own ThreadRank.
class ThreadGroupShared {
 public:
  explicit ThreadGroupShared(int size)
      : size_(size), sync_(size), u64_(size), dbl_(size), strings_(size) {}
  int size() const { return size_; }
  void sync() { sync_.arrive_and_wait(); }
  std::vector<std::vector<std::uint64_t>>& u64() { return u64_; }
  std::vector<std::vector<double>>& dbl() { return dbl_; }
  std::vector<std::string>& strings() { return strings_; }

 private:
  int size_;
  std::barrier<> sync_;
  std::vector<std::vector<std::uint64_t>> u64_;
  std::vector<std::vector<double>> dbl_;
  std::vector<std::string> strings_;
};

class ThreadRank final : public LoadGroup {
 public:
  ThreadRank(ThreadGroupShared& shared, int rank) : s_(shared), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return s_.size(); }
  std::string host() const override { return "thread-" + std::to_string(rank_); }
  void barrier() override { s_.sync(); }
  void broadcast(std::span<std::uint64_t> data) override {
    s_.u64()[rank_].assign(data.begin(), data.end());
    s_.sync();
    std::copy(s_.u64()[0].begin(), s_.u64()[0].end(), data.begin());
    s_.sync();
  }
  void all_reduce(Op op, std::span<std::uint64_t> data) override { reduce(op, data, s_.u64()); }
  void all_reduce(Op op, std::span<double> data) override { reduce(op, data, s_.dbl()); }
  std::vector<std::string> gather(const std::string& mine) override {
    s_.strings()[rank_] = mine;
    s_.sync();
    std::vector<std::string> out;
    if (rank_ == 0) out = s_.strings();
    s_.sync();
    return out;
  }

 private:
  template <class T>
  void reduce(Op op, std::span<T> data, std::vector<std::vector<T>>& slots) {
    slots[rank_].assign(data.begin(), data.end());
    s_.sync();
    for (std::size_t i = 0; i < data.size(); ++i) {
      T v = slots[0].at(i);
      for (int r = 1; r < s_.size(); ++r) {
        const T x = slots[r].at(i);
        v = op == Op::sum ? v + x : op == Op::min ? std::min(v, x) : std::max(v, x);
      }
      data[i] = v;
    }
    s_.sync();
  }
  ThreadGroupShared& s_;
  int rank_;
};

// Runs fn(rank, group) on `size` threads, one rank each; returns after all have.
template <class Fn>
void on_ranks(int size, Fn fn) {
  ThreadGroupShared shared(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      ThreadRank g(shared, r);
      fn(r, g);
    });
  for (auto& t : threads) t.join();
}

// --- LoadMerge: merge_ranks on made-up results ---------------------------------------------

TEST(LoadMerge, MergedPercentilesEqualThoseOfOneHistogramOfAllSamples) {
  constexpr int kRanks = 3;
  // Each rank's latencies from a different distribution (a fast rank, a slow one, a tail), so
  // that an average of per-rank percentiles would be wrong; the reference histogram gets every
  // sample.
  LatencyHistogram all, all_uncorrected;
  std::vector<LoadResult> results(kRanks);
  std::mt19937_64 rng(21);
  for (int r = 0; r < kRanks; ++r) {
    std::lognormal_distribution<double> d(4.0 + 2.0 * r, 0.5 + 0.4 * r);
    for (int i = 0; i < 20'000 * (r + 1); ++i) {
      const double us = d(rng);
      results[r].latency.record(us);
      results[r].latency_uncorrected.record(us / 2);
      all.record(us);
      all_uncorrected.record(us / 2);
    }
  }
  on_ranks(kRanks, [&](int r, LoadGroup& g) {
    shootout::load::merge_ranks(results[r], g, {r, g.host(), 1, 0, 0, 0, ""});
  });
  for (int r = 0; r < kRanks; ++r) {
    for (const auto& [merged, reference] :
         {std::pair{&results[r].latency, &all},
          std::pair{&results[r].latency_uncorrected, &all_uncorrected}}) {
      const auto m = merged->summary(), ref = reference->summary();
      EXPECT_EQ(m.count, ref.count);
      EXPECT_EQ(m.min_us, ref.min_us);
      EXPECT_EQ(m.max_us, ref.max_us);
      EXPECT_EQ(m.p50_us, ref.p50_us);
      EXPECT_EQ(m.p90_us, ref.p90_us);
      EXPECT_EQ(m.p99_us, ref.p99_us);
      EXPECT_EQ(m.p999_us, ref.p999_us);
      EXPECT_EQ(m.p9999_us, ref.p9999_us);
      // Sums added in another order: equal to rounding.
      EXPECT_NEAR(m.mean_us, ref.mean_us, ref.mean_us * 1e-12);
      EXPECT_NEAR(m.stdev_us, ref.stdev_us, ref.stdev_us * 1e-9);
    }
  }
}

TEST(LoadMerge, CountersErrorsCpuAndPerSecondSumAndRanksAreListed) {
  constexpr int kRanks = 4;
  std::vector<LoadResult> results(kRanks);
  for (int r = 0; r < kRanks; ++r) {
    LoadResult& x = results[r];
    const auto k = static_cast<std::uint64_t>(r + 1);
    x.requests = 100 * k;
    x.bytes_read = 1000 * k;
    x.responses_total = 110 * k;
    x.sent_total = 111 * k;
    x.idle_opened = 5 * k;
    x.idle_alive = 4 * k;
    x.ramp_reached = 10 * k;
    x.connections_in_window = 9 * k;
    x.errors = {k, 2 * k, 3 * k, 4 * k, 5 * k, 6 * k};
    x.client_utime_us = 1000.0 * static_cast<double>(k);
    x.client_stime_us = 10.0 * static_cast<double>(k);
    x.client_sampler_cpu_us = r == 0 ? 7.0 : 0.0;  // rank 0 samples the server
    x.ramp_s = 0.1 * static_cast<double>(k);
    x.elapsed_s = 2.0;
    x.client_cpu_from_s = 3.0 + 0.1 * static_cast<double>(k);
    x.client_cpu_to_s = 6.0 + 0.2 * static_cast<double>(k);
    x.per_second = {k, 10 * k, 100 * k};
  }
  results[2].elapsed_s = 2.5;
  on_ranks(kRanks, [&](int r, LoadGroup& g) {
    shootout::load::merge_ranks(results[r], g, {r, g.host(), 25, 0, 0, 0, ""});
  });
  const std::uint64_t s = 1 + 2 + 3 + 4;  // sum of k
  for (const LoadResult& m : results) {
    EXPECT_EQ(m.ranks, kRanks);
    EXPECT_EQ(m.requests, 100 * s);
    EXPECT_EQ(m.bytes_read, 1000 * s);
    EXPECT_EQ(m.responses_total, 110 * s);
    EXPECT_EQ(m.sent_total, 111 * s);
    EXPECT_EQ(m.idle_opened, 5 * s);
    EXPECT_EQ(m.idle_alive, 4 * s);
    EXPECT_EQ(m.ramp_reached, 10 * s);
    EXPECT_EQ(m.connections_in_window, 9 * s);
    EXPECT_EQ(m.errors.connect, s);
    EXPECT_EQ(m.errors.body, 6 * s);
    EXPECT_EQ(m.errors.total(), 21 * s);
    EXPECT_DOUBLE_EQ(m.client_utime_us, 1000.0 * s);
    EXPECT_DOUBLE_EQ(m.client_stime_us, 10.0 * s);
    EXPECT_DOUBLE_EQ(m.client_sampler_cpu_us, 7.0);
    EXPECT_DOUBLE_EQ(m.ramp_s, 0.4);     // the slowest rank's ramp
    EXPECT_DOUBLE_EQ(m.elapsed_s, 2.5);  // the longest window
    // The summed CPU is over the span that holds every rank's: first opening, last closing.
    EXPECT_DOUBLE_EQ(m.client_cpu_from_s, 3.1);
    EXPECT_DOUBLE_EQ(m.client_cpu_to_s, 6.8);
    EXPECT_DOUBLE_EQ(m.client_cpu_s(), 3.7);
    EXPECT_EQ(m.per_second, (std::vector<std::uint64_t>{s, 10 * s, 100 * s}));
  }
  // Rank 0 lists every rank with its own figures, taken before the merge.
  const auto& list = results[0].per_rank;
  ASSERT_EQ(list.size(), static_cast<std::size_t>(kRanks));
  for (int r = 0; r < kRanks; ++r) {
    const auto k = static_cast<std::uint64_t>(r + 1);
    EXPECT_EQ(list[r].rank, r);
    EXPECT_EQ(list[r].host, "thread-" + std::to_string(r));
    EXPECT_EQ(list[r].connections, 25u);
    EXPECT_EQ(list[r].requests, 100 * k);
    EXPECT_EQ(list[r].responses_total, 110 * k);
    EXPECT_EQ(list[r].errors, 21 * k);
  }
  EXPECT_TRUE(results[1].per_rank.empty());
  const auto j = results[0].to_json();
  EXPECT_EQ(j.at("ranks"), kRanks);
  EXPECT_EQ(j.at("per_rank").size(), static_cast<std::size_t>(kRanks));
}

// --- LoadGroupThreads: run_load as two ranks in one process --------------------------------

using shootout::test::own_url;

TEST(LoadGroupThreads, TwoRanksMergedResponsesEqualTheServersCountAndShareTheConnections) {
  const auto dir = shootout::test::temp_dir("group-threads");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "evented", "--stats-file", stats});
  LoadConfig c;
  c.url = own_url(server);
  c.connections = 7;  // 4 + 3
  c.duration = 1s;
  c.timeout = 2s;
  std::vector<LoadResult> results(2);
  on_ranks(2, [&](int r, LoadGroup& g) { results[r] = shootout::load::run_load(c, g); });
  const LoadResult& m = results[0];
  EXPECT_EQ(m.ranks, 2);
  EXPECT_EQ(m.errors.total(), 0u);
  ASSERT_EQ(m.per_rank.size(), 2u);
  EXPECT_EQ(m.per_rank[0].connections, 4u);
  EXPECT_EQ(m.per_rank[1].connections, 3u);
  EXPECT_GT(m.per_rank[0].requests, 0u);
  EXPECT_GT(m.per_rank[1].requests, 0u);
  EXPECT_EQ(m.per_rank[0].responses_total + m.per_rank[1].responses_total, m.responses_total);
  EXPECT_EQ(m.connections_in_window, 7u);
  ASSERT_TRUE(shootout::test::await_requests(server, stats, m.responses_total));
  EXPECT_EQ(shootout::test::requests_seen(server, stats), m.responses_total);
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

TEST(LoadGroupThreads, TimelineWithTwoRanksIsRefusedOnEveryRank) {
  ServerProcess server({"--model", "evented"});
  LoadConfig c;
  c.url = own_url(server);
  c.connections = 2;
  c.duration = 1s;
  c.timeline_max = 100;
  std::vector<std::string> errors(2);
  on_ranks(2, [&](int r, LoadGroup& g) {
    try {
      shootout::load::run_load(c, g);
    } catch (const shootout::load::LoadError& e) {
      errors[r] = e.what();
    }
  });
  for (const auto& e : errors) EXPECT_NE(e.find("timeline"), std::string::npos) << e;
}

// --- LoadMpi: the real thing under mpirun --------------------------------------------------

std::string mpirun_path() {
  for (const char* p : {"/usr/bin/mpirun", "/usr/local/bin/mpirun"})
    if (::access(p, X_OK) == 0) return p;
  return "";
}

// mpirun refuses root unless told; the tests run as root in CI.
void allow_root() {
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
}

// Under ASan/TSan (scripts/sanitize.sh) the mpirun'd ranks load Open MPI's uninstrumented
// libraries into a sanitized process, whose exit-time allocations LeakSanitizer would report as
// ours; the Release stage runs these tests, and the group and merge code runs under the
// sanitizers in LoadMerge and LoadGroupThreads (an in-process group).
#ifdef SHOOTOUT_SANITIZER
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

#define SKIP_WITHOUT_MPI()                                                                   \
  do {                                                                                       \
    if (mpirun_path().empty())                                                               \
      GTEST_SKIP() << "mpirun not found (scripts/setup.sh installs openmpi-bin)";            \
    if (!std::filesystem::exists(                                                            \
            std::filesystem::path(shootout::test::shootout_binary()).parent_path() /         \
            "shootout-mpi.so"))                                                              \
      GTEST_SKIP() << "build/shootout-mpi.so not built (libopenmpi-dev, -DSHOOTOUT_MPI=ON)"; \
    if (kSanitized)                                                                          \
      GTEST_SKIP() << "under a sanitizer the ranks would load uninstrumented Open MPI; the " \
                      "Release stage runs this test";                                        \
    allow_root();                                                                            \
  } while (0)

struct Ran {
  int status = -1;
  std::string out, err;
};

// `mpirun -np ranks --oversubscribe <binary> load <args>`, waited for (bounded).
Ran mpirun_load(int ranks, std::vector<std::string> args,
                std::string binary = shootout::test::shootout_binary()) {
  std::vector<std::string> argv{mpirun_path(),     "-np",  std::to_string(ranks),
                                "--oversubscribe", binary, "load"};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv);
  Ran r;
  r.status = p.wait(180s);
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  return r;
}

Ran plain_load(std::vector<std::string> args) {
  std::vector<std::string> argv{shootout::test::shootout_binary(), "load"};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv);
  Ran r;
  r.status = p.wait(180s);
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  return r;
}

TEST(LoadMpi, TwoRanksMergedResponsesEqualTheServersOwnCountExactly) {
  SKIP_WITHOUT_MPI();
  const auto dir = shootout::test::temp_dir("mpi-count");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "evented", "--stats-file", stats});
  const Ran run = mpirun_load(2, {"--json", "-c", "20", "-d", "2s", own_url(server)});
  ASSERT_EQ(run.status, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);  // rank 0 alone prints: one document
  EXPECT_EQ(j.at("ranks"), 2);
  EXPECT_EQ(j.at("connections"), 20);
  EXPECT_EQ(j.at("errors").at("total"), 0);
  const auto responses = j.at("responses_total").get<std::uint64_t>();
  ASSERT_GT(responses, 0u);
  // Both ranks' connections were answered, each rank drove its half.
  const auto& ranks = j.at("per_rank");
  ASSERT_EQ(ranks.size(), 2u);
  std::uint64_t sum = 0;
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(ranks[r].at("rank"), r);
    EXPECT_EQ(ranks[r].at("connections"), 10);
    EXPECT_GT(ranks[r].at("requests").get<std::uint64_t>(), 0u);
    sum += ranks[r].at("responses_total").get<std::uint64_t>();
  }
  EXPECT_EQ(sum, responses);
  EXPECT_EQ(j.at("concurrency").at("served_in_window"), 20);
  // Both ranks ran on this host: their summed CPU, over the span that holds both windows,
  // is at most this host's cores.
  const auto& cpu = j.at("client_cpu");
  EXPECT_GT(cpu.at("to_s").get<double>(), cpu.at("from_s").get<double>());
  EXPECT_LE(cpu.at("cores").get<double>(), std::thread::hardware_concurrency());
  // The merged count over the whole run is the server's own, exactly.
  ASSERT_TRUE(shootout::test::await_requests(server, stats, responses));
  EXPECT_EQ(shootout::test::requests_seen(server, stats), responses);
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

TEST(LoadMpi, MergedP50OfAFixed20msDelayIsThatOfOneProcess) {
  SKIP_WITHOUT_MPI();
  // Thread per connection, so the 20 ms sleeps overlap: each request takes 20 ms and a little.
  ServerProcess server({"--model", "threaded"});
  const std::vector<std::string> args{"--json", "-c", "8",
                                      "-d",     "2s", own_url(server, "/sleep?ms=20")};
  const Ran merged = mpirun_load(2, args);
  ASSERT_EQ(merged.status, 0) << merged.err;
  const Ran one = plain_load(args);
  ASSERT_EQ(one.status, 0) << one.err;
  const auto m = nlohmann::json::parse(merged.out), o = nlohmann::json::parse(one.out);
  EXPECT_EQ(m.at("ranks"), 2);
  EXPECT_FALSE(o.contains("ranks"));  // one process prints as before
  for (const auto* j : {&m, &o}) {
    EXPECT_EQ(j->at("errors").at("total"), 0);
    const double p50 = j->at("latency_us").at("p50").get<double>();
    EXPECT_GE(p50, 20'000.0);
    EXPECT_LE(p50, 30'000.0);
    EXPECT_GE(j->at("latency_us").at("min").get<double>(), 20'000.0);
  }
  // The merged histogram holds every rank's samples.
  EXPECT_EQ(m.at("latency_us").at("count"), m.at("requests"));
}

TEST(LoadMpi, WithoutTheModuleUnderMpirunIsAClearErrorExit1) {
  SKIP_WITHOUT_MPI();
  const auto dir = shootout::test::temp_dir("mpi-missing");
  const auto copy = dir / "shootout";
  std::filesystem::copy_file(shootout::test::shootout_binary(), copy);
  std::filesystem::permissions(copy, std::filesystem::perms::owner_all);
  const Ran run = mpirun_load(2, {"-c", "2", "-d", "1s", "http://127.0.0.1:9/"}, copy.string());
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.err.find("the MPI module " + (dir / "shootout-mpi.so").string() + " is missing"),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("rank 1: error"), std::string::npos) << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;
  std::filesystem::remove_all(dir);
}

// `shootout run ARGS --out DIR/run` under an open-file limit (0: this process's), waited for
// (bounded); the folder it wrote.
struct Sweep {
  int status = -1;
  std::string err;
  std::filesystem::path out;
};
Sweep run_sweep(const std::filesystem::path& dir, std::vector<std::string> args, long nofile = 0) {
  Sweep s;
  s.out = dir / "run";
  args.insert(args.begin(), {shootout::test::shootout_binary(), "run"});
  args.insert(args.end(), {"--out", s.out.string()});
  Process run(args, nofile);
  s.status = run.wait(300s);
  s.err = run.stderr_text();
  return s;
}
nlohmann::json read_json(const std::filesystem::path& path) {
  return nlohmann::json::parse(shootout::test::read_file(path));
}

TEST(LoadMpi, RunnerLoadRanksReadsBackTheMergedResultOfEachLoadRunWithRanksPinnedLikeTheLoad) {
  SKIP_WITHOUT_MPI();
  const auto dir = shootout::test::temp_dir("mpi-runner");
  const bool pin = std::thread::hardware_concurrency() >= 2;
  std::vector<std::string> args{
      "--models", "evented", "--connections",       "10", "--duration",   "1s",
      "--warmup", "0s",      "--idle-hold-seconds", "1",  "--load-ranks", "2"};
  if (pin) args.push_back("--pin");
  const Sweep run = run_sweep(dir, args);
  ASSERT_EQ(run.status, 0) << run.err;
  const auto results = read_json(run.out / "results.json");
  ASSERT_EQ(results.at("points").size(), 1u);
  const auto& point = results.at("points")[0];
  EXPECT_EQ(point.at("status"), "ok");
  // The closed loop (load-1) and the idle hold (load-2) went through mpirun as 2 ranks, and
  // the point holds what rank 0 wrote: the same request count and p99, to the bin.
  const auto closed = read_json(run.out / "load/load-1.json");
  const auto idle = read_json(run.out / "load/load-2.json");
  EXPECT_EQ(closed.at("ranks"), 2);
  EXPECT_EQ(idle.at("ranks"), 2);
  EXPECT_EQ(closed.at("errors").at("total"), 0);
  EXPECT_GT(closed.at("requests").get<std::uint64_t>(), 0u);
  EXPECT_EQ(point.at("requests"), closed.at("requests"));
  // --pin: the server runs on CPU 0 and the load on CPU 1, every rank of it.
  if (pin) {
    for (const auto& rank : closed.at("per_rank")) EXPECT_EQ(rank.at("cpus"), "1") << rank;
  }
  EXPECT_EQ(point.at("p99_us"), closed.at("latency_us").at("p99"));
  EXPECT_EQ(point.at("idle_opened"), 10);
  EXPECT_EQ(results.at("meta").at("config").at("load_ranks"), 2);
  std::filesystem::remove_all(dir);
}

// --load-ranks 0: a point with more connections than one load process may open goes through
// mpirun with as many ranks as it needs. Under a descriptor limit of 700 (256 kept for the load
// process's own files), 1,000 connections take 3 ranks; the server spreads them too
// (--workers 0). The point is at N, and says how its load was made.
TEST(LoadMpi, RunnerLoadRanksZeroSpreadsAPointPastOneProcesssDescriptors) {
  SKIP_WITHOUT_MPI();
  const auto dir = shootout::test::temp_dir("mpi-runner-auto");
  const Sweep run =
      run_sweep(dir,
                {"--models", "evented", "--connections", "10,1000", "--duration", "1s", "--warmup",
                 "0s", "--idle-hold-seconds", "1", "--workers", "0", "--load-ranks", "0"},
                700);
  ASSERT_EQ(run.status, 0) << run.err;
  const auto results = read_json(run.out / "results.json");
  ASSERT_EQ(results.at("points").size(), 2u);
  std::map<int, nlohmann::json> points;
  for (const auto& p : results.at("points")) points[p.at("connections").get<int>()] = p;
  const auto notes = [](const nlohmann::json& p) { return p.at("notes").dump(); };
  // 10 connections: one process, as without the flag (no mpirun run was made for it).
  EXPECT_EQ(points.at(10).at("status"), "ok");
  EXPECT_EQ(notes(points.at(10)).find("mpirun"), std::string::npos) << notes(points.at(10));
  // 1,000: three ranks, every connection served in the window.
  const auto& big = points.at(1000);
  EXPECT_EQ(big.at("status"), "ok") << big.dump();
  EXPECT_EQ(big.at("reached"), 1000) << notes(big);
  EXPECT_EQ(big.at("at_n"), true) << notes(big);
  EXPECT_NE(notes(big).find("load from 3 processes through mpirun"), std::string::npos)
      << notes(big);
  const auto closed = read_json(run.out / "load/load-1.json");
  EXPECT_EQ(closed.at("ranks"), 3);
  EXPECT_EQ(closed.at("connections"), 1000);
  EXPECT_EQ(closed.at("errors").at("total"), 0);
  std::filesystem::remove_all(dir);
}

// A point past a limit of this host is an end with its reason, not a missing point: threaded
// holds every connection in one process, and under a 400-descriptor limit cannot take 600 (the
// load, spread over ranks by --load-ranks 0, can). The point is measured at what it reached,
// says which limit stopped it, and its graph data carries the label drawn beside it.
// threaded at 600 connections under a 400-descriptor limit (the load spread over ranks), with
// `extra` flags: a point past what this host lets it hold.
Sweep threaded_past_its_descriptors(const std::filesystem::path& dir,
                                    std::vector<std::string> extra = {}) {
  std::vector<std::string> args{
      "--models",  "threaded", "--connections",       "600", "--duration",   "1s", "--warmup", "0s",
      "--timeout", "1s",       "--idle-hold-seconds", "0.5", "--load-ranks", "0"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_sweep(dir, args, 400);
}

TEST(LoadMpi, RunnerMarksWhereThisHostStopsAServerPastItsDescriptors) {
  SKIP_WITHOUT_MPI();
  const auto dir = shootout::test::temp_dir("mpi-runner-stop");
  const Sweep run = threaded_past_its_descriptors(dir);
  ASSERT_EQ(run.status, 0) << run.err;
  const auto results = read_json(run.out / "results.json");
  ASSERT_EQ(results.at("points").size(), 1u);
  const auto& p = results.at("points")[0];
  EXPECT_EQ(p.at("status"), "ok") << p.dump();
  EXPECT_EQ(p.at("at_n"), false) << p.dump();
  EXPECT_LT(p.at("reached").get<int>(), 400) << p.dump();
  EXPECT_EQ(p.at("stops_at"), "400 descriptors") << p.dump();
  EXPECT_NE(p.at("notes").dump().find("where this host stops it: one process holds every "
                                      "connection, and may open 400 descriptors"),
            std::string::npos)
      << p.at("notes").dump();
  const std::string data = shootout::test::read_file(run.out / "graphs/data/threaded.dat");
  EXPECT_NE(data.find("\"400 descriptors\""), std::string::npos) << data;
  std::filesystem::remove_all(dir);
}

// Past the same limit, a server that serves nothing in the window ends there: the point is
// measured at 0 and labelled with the limit, not a failure, and the figures that need a
// response (CPU per request, latency) are absent (null), never 0. Each answer takes 3 s and
// the timeout is 1 s, so after the ramp every request times out.
TEST(LoadMpi, APointPastThisHostsLimitThatServedNothingIsAnEndAtZeroNotAFailure) {
  SKIP_WITHOUT_MPI();
  const auto dir = shootout::test::temp_dir("mpi-runner-stop-zero");
  const Sweep run = threaded_past_its_descriptors(dir, {"--path", "/sleep?ms=3000"});
  ASSERT_EQ(run.status, 0) << run.err;
  const auto results = read_json(run.out / "results.json");
  ASSERT_EQ(results.at("points").size(), 1u);
  const auto& p = results.at("points")[0];
  EXPECT_EQ(p.at("status"), "ok") << p.dump();
  EXPECT_EQ(p.at("reached"), 0) << p.dump();
  EXPECT_EQ(p.at("rps"), 0) << p.dump();
  EXPECT_EQ(p.at("at_n"), false);
  EXPECT_EQ(p.at("stops_at"), "400 descriptors");
  EXPECT_TRUE(p.at("cpu_us_per_request").is_null()) << p.dump();
  EXPECT_TRUE(p.at("p99_us").is_null()) << p.dump();
  EXPECT_NE(p.at("notes").dump().find("no response completed in the 1 s window"), std::string::npos)
      << p.at("notes").dump();
  std::filesystem::remove_all(dir);
}

// --- LoadSource: --source -----------------------------------------------------------------

// The socket inodes among the descriptors of `pid` (/proc/PID/fd: "socket:[INODE]").
std::set<std::string> socket_inodes(pid_t pid) {
  std::set<std::string> inodes;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.starts_with("socket:[")) inodes.insert(target.substr(8, target.size() - 9));
  }
  return inodes;
}

// The peers of the server's established TCP connections on `port`, counted by address: the
// server's own sockets (their inodes among its descriptors) in /proc/net/tcp. Another process's
// client socket that happens to use the same local port number is not the server's.
std::map<std::string, int> peers_of_server(pid_t pid, std::uint16_t port) {
  const auto mine = socket_inodes(pid);
  std::map<std::string, int> peers;
  std::ifstream in("/proc/" + std::to_string(pid) + "/net/tcp");  // the server's namespace's
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string slot, local, remote, state, queues, timer, retrans, uid, timeout, inode;
    ss >> slot >> local >> remote >> state >> queues >> timer >> retrans >> uid >> timeout >> inode;
    if (state != "01" || !mine.count(inode)) continue;  // ESTABLISHED, the server's
    const auto lport = std::stoul(local.substr(local.find(':') + 1), nullptr, 16);
    if (lport != port) continue;
    in_addr a{};
    a.s_addr = static_cast<in_addr_t>(std::stoul(remote.substr(0, remote.find(':')), nullptr, 16));
    ++peers[::inet_ntoa(a)];
  }
  return peers;
}

// Holds `connections` idle connections (one request each, then a long hold) from `argv`,
// waits until the server has answered all of them, and returns the server's peers then. The
// load is stopped (SIGTERM) after, well inside its hold.
std::map<std::string, int> peers_while_held(std::vector<std::string> argv, ServerProcess& server,
                                            const std::string& stats, std::uint64_t connections) {
  Process load(argv);
  const bool all = shootout::test::await_requests(server, stats, connections);
  auto peers = peers_of_server(server.pid(), server.port());
  load.signal(SIGTERM);
  load.wait(60s);
  EXPECT_TRUE(all) << load.stderr_text();
  return peers;
}

// On both load engines (loadgen/engine.hpp): they bind the same way, through one function.
class LoadSourceEngines : public ::testing::TestWithParam<const char*> {};

TEST_P(LoadSourceEngines, ServerSeesPeersFromEveryAddressOfTheRangeRoundRobin) {
  const std::string engine = GetParam();
  if (engine == "uring" && !shootout::load::uring_engine_unavailable().empty())
    GTEST_SKIP() << "--engine uring: " << shootout::load::uring_engine_unavailable();
  const auto dir = shootout::test::temp_dir("source");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "evented", "--stats-file", stats});
  const auto peers = peers_while_held(
      {shootout::test::shootout_binary(), "load", "--engine", engine, "--idle", "-c", "8", "-d",
       "120s", "--source", "127.0.0.2-127.0.0.3", own_url(server)},
      server, stats, 8);
  EXPECT_EQ(peers, (std::map<std::string, int>{{"127.0.0.2", 4}, {"127.0.0.3", 4}}));
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Engines, LoadSourceEngines, ::testing::Values("asio", "uring"),
                         [](const auto& p) { return std::string(p.param); });

TEST(LoadSource, UnderTwoRanksEachRankBindsItsOwnPartOfTheRange) {
  SKIP_WITHOUT_MPI();
  const auto dir = shootout::test::temp_dir("source-mpi");
  const std::string stats = (dir / "stats.json").string();
  ServerProcess server({"--model", "evented", "--stats-file", stats});
  // 3 addresses, 2 ranks: rank 0 takes .2 and .3 for its 4 connections, rank 1 .4 for its 4.
  // (One process would spread 8 over three: 3, 3, 2.)
  const auto peers = peers_while_held(
      {mpirun_path(), "-np", "2", "--oversubscribe", shootout::test::shootout_binary(), "load",
       "--idle", "-c", "8", "-d", "120s", "--source", "127.0.0.2-127.0.0.4", own_url(server)},
      server, stats, 8);
  EXPECT_EQ(peers,
            (std::map<std::string, int>{{"127.0.0.2", 2}, {"127.0.0.3", 2}, {"127.0.0.4", 4}}));
  EXPECT_EQ(server.stop(), 0);
  std::filesystem::remove_all(dir);
}

TEST(LoadSource, BadRangeIsAUsageErrorExit2) {
  for (const char* bad :
       {"127.0.0.3-127.0.0.2", "127.0.0", "127.0.0.1-", "::1", "10.0.0.0-10.2.0.0"}) {
    const Ran r = plain_load({"-c", "1", "-d", "1s", "--source", bad, "http://127.0.0.1:9/"});
    EXPECT_EQ(r.status, 2) << bad << ": " << r.err;
    EXPECT_NE(r.err.find("--source"), std::string::npos) << r.err;
  }
}

TEST(LoadSource, AnAddressNotOnThisHostIsAClearErrorExit1) {
  // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this host.
  const Ran r = plain_load({"-c", "1", "-d", "1s", "--source", "192.0.2.7", "http://127.0.0.1:9/"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("cannot bind 192.0.2.7"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not an address of this host"), std::string::npos) << r.err;
}

TEST(LoadSource, MoreConnectionsThanHalfAnAddresssPortsWarnToSpreadThemAndTheRunnerSpreadsThem) {
  using shootout::load::connections_per_source_address;
  using shootout::load::source_port_warning;
  const int per = connections_per_source_address();
  EXPECT_EQ(per, shootout::load::ephemeral_ports() / 2);
  LoadConfig c;
  c.connections = per;
  EXPECT_EQ(source_port_warning(c), "");
  c.connections = per + 1;
  EXPECT_NE(source_port_warning(c).find("--source"), std::string::npos);
  c.source = "127.0.0.2-127.0.0.3";
  EXPECT_EQ(source_port_warning(c), "");
  // The command line says it before it starts (here it then stops: the address is not ours).
  const Ran r = plain_load(
      {"-c", std::to_string(per + 1), "-d", "1s", "--source", "192.0.2.7", "http://127.0.0.1:9/"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("warning: " + std::to_string(per + 1) + " connections per source address"),
            std::string::npos)
      << r.err;
  // The runner gives a point's load that many per loopback address at most, one per rank.
  using shootout::runner::loopback_sources_for;
  EXPECT_EQ(loopback_sources_for(per, 1), "");
  EXPECT_EQ(loopback_sources_for(per + 1, 1), "127.0.0.2-127.0.0.3");
  EXPECT_EQ(loopback_sources_for(3 * per, 6), "127.0.0.2-127.0.0.7");
  EXPECT_EQ(loopback_sources_for(7 * per + 1, 6), "127.0.0.2-127.0.0.9");
}

// --- LoadNetns: several hosts on one machine ----------------------------------------------

// Three network namespaces of this test's own (names carry the pid): "srv" holds the server,
// which listens on 10.77.0.1 (its loopback); "l1" and "l2" are load hosts, each joined to srv by
// a veth pair (10.77.K.2 <-> 10.77.K.1) with a route to 10.77.0.1 through it. Nothing outside
// the namespaces is touched; the destructor deletes them (and their veth pairs with them).
class Namespaces {
 public:
  Namespaces() {
    const std::string id = std::to_string(::getpid());
    srv_ = "shootout-srv-" + id;
    load_ = {"shootout-l1-" + id, "shootout-l2-" + id};
    if (::geteuid() != 0) {
      why_ = "network namespaces need root (CAP_SYS_ADMIN)";
      return;
    }
    if (ip_path().empty()) {
      why_ = "ip not found (scripts/setup.sh installs iproute2)";
      return;
    }
    if (!ip({"netns", "add", srv_})) {
      why_ = "ip netns add failed (no CAP_SYS_ADMIN here?): " + last_err_;
      return;
    }
    made_.push_back(srv_);
    ok_ = ip_in(srv_, {"link", "set", "lo", "up"}) &&
          ip_in(srv_, {"addr", "add", "10.77.0.1/32", "dev", "lo"});
    for (int k = 1; ok_ && k <= 2; ++k) {
      const std::string ns = load_[k - 1], ks = std::to_string(k);
      const std::string a = "so" + id + "s" + ks, b = "so" + id + "l" + ks;  // <= 15 chars
      ok_ = ip({"netns", "add", ns});
      if (ok_) made_.push_back(ns);
      ok_ = ok_ && ip_in(ns, {"link", "set", "lo", "up"}) &&
            ip({"link", "add", a, "type", "veth", "peer", "name", b}) &&
            ip({"link", "set", a, "netns", srv_}) && ip({"link", "set", b, "netns", ns}) &&
            ip_in(srv_, {"addr", "add", "10.77." + ks + ".1/24", "dev", a}) &&
            ip_in(ns, {"addr", "add", "10.77." + ks + ".2/24", "dev", b}) &&
            ip_in(srv_, {"link", "set", a, "up"}) && ip_in(ns, {"link", "set", b, "up"}) &&
            ip_in(ns, {"route", "add", "10.77.0.1/32", "via", "10.77." + ks + ".1"});
    }
    if (!ok_) why_ = "setting up the namespaces failed: " + last_err_;
  }
  ~Namespaces() {
    if (srv_fd_ >= 0) ::close(srv_fd_);
    for (const auto& ns : made_) ip({"netns", "del", ns});
  }
  Namespaces(const Namespaces&) = delete;
  Namespaces& operator=(const Namespaces&) = delete;

  // Empty when ready; else why the namespaces could not be made (the test skips, or fails if
  // they were made in part).
  const std::string& why_not() const { return why_; }
  bool made_in_part() const { return !ok_ && !made_.empty(); }
  const std::string& server_ns() const { return srv_; }
  const std::string& load_ns(int k) const { return load_.at(static_cast<std::size_t>(k)); }
  // The server's namespace as a descriptor for ChildSetup::netns_fd (open while this lives).
  int server_fd() {
    if (srv_fd_ < 0) srv_fd_ = ::open(("/run/netns/" + srv_).c_str(), O_RDONLY | O_CLOEXEC);
    return srv_fd_;
  }
  std::string url(const ServerProcess& s, const std::string& path = "/") const {
    return "http://10.77.0.1:" + std::to_string(s.port()) + path;
  }

 private:
  static std::string ip_path() {
    for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
      if (::access(p, X_OK) == 0) return p;
    return "";
  }
  bool ip(std::vector<std::string> args, const shootout::test::ChildSetup& setup = {}) {
    args.insert(args.begin(), ip_path());
    Process p(args, setup);
    const int status = p.wait(30s);
    if (status != 0) last_err_ = p.stderr_text() + " (ip exit " + std::to_string(status) + ")";
    return status == 0;
  }
  // `ip ARGS` run inside namespace `ns` (setns before exec). Not `ip -n`, which also remounts
  // /sys in a mount namespace of its own and fails where / is not a mount point (a chroot).
  bool ip_in(const std::string& ns, std::vector<std::string> args) {
    shootout::test::ChildSetup setup;
    setup.netns_fd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (setup.netns_fd < 0) {
      last_err_ = "cannot open /run/netns/" + ns;
      return false;
    }
    const bool ok = ip(std::move(args), setup);
    ::close(setup.netns_fd);
    return ok;
  }
  std::string srv_, why_, last_err_;
  std::vector<std::string> load_, made_;
  bool ok_ = false;
  int srv_fd_ = -1;
};

#define MAKE_NAMESPACES(ns)                                               \
  Namespaces ns;                                                          \
  do {                                                                    \
    ASSERT_FALSE(ns.made_in_part()) << ns.why_not();                      \
    if (!ns.why_not().empty()) GTEST_SKIP() << ns.why_not();              \
    ASSERT_GE(ns.server_fd(), 0) << "cannot open the server's namespace"; \
  } while (0)

// A server in namespace srv, listening on every address there (10.77.0.1 among them).
std::unique_ptr<ServerProcess> server_in(Namespaces& ns, std::vector<std::string> args) {
  shootout::test::ChildSetup setup;
  setup.netns_fd = ns.server_fd();
  args.insert(args.end(), {"--host", "0.0.0.0"});
  return std::make_unique<ServerProcess>(std::move(args), setup);
}

// One load process whose connections are made in namespace l1: the server, in srv, sees them
// come from l1's address over the veth pair, and counts exactly what the load generator counted.
// The load generator's main thread stays in this test's namespace (only its workers enter l1).
TEST(LoadNetns, OneProcessInANamespaceIsCountedExactlyByTheServerInAnother) {
  MAKE_NAMESPACES(ns);
  const auto dir = shootout::test::temp_dir("netns-one");
  const std::string stats = (dir / "stats.json").string();
  auto server = server_in(ns, {"--model", "evented", "--stats-file", stats});
  const Ran run =
      plain_load({"--json", "-c", "6", "-d", "1s", "--netns", ns.load_ns(0), ns.url(*server)});
  ASSERT_EQ(run.status, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j.at("errors").at("total"), 0);
  const auto responses = j.at("responses_total").get<std::uint64_t>();
  ASSERT_GT(responses, 0u);
  ASSERT_TRUE(shootout::test::await_requests(*server, stats, responses));
  EXPECT_EQ(shootout::test::requests_seen(*server, stats), responses);
  // Held connections come from l1's end of its veth pair.
  const auto peers =
      peers_while_held({shootout::test::shootout_binary(), "load", "--idle", "-c", "6", "-d",
                        "120s", "--netns", ns.load_ns(0), ns.url(*server)},
                       *server, stats, responses + 6);
  EXPECT_EQ(peers, (std::map<std::string, int>{{"10.77.1.2", 6}}));
  EXPECT_EQ(server->stop(), 0);
  std::filesystem::remove_all(dir);
}

// The sampler counts the server's sockets in the server's namespace (sock_diag answers for the
// namespace its socket is made in): an idle hold of 5 connections from l1, sampled by --server-pid
// from this namespace, counts the server's 5 connections and its listener.
TEST(LoadNetns, TheSamplerCountsTheServersSocketsInTheServersNamespace) {
  MAKE_NAMESPACES(ns);
  auto server = server_in(ns, {"--model", "evented"});
  const Ran run = plain_load({"--json", "--idle", "-c", "5", "-d", "1s", "--netns", ns.load_ns(0),
                              "--server-pid", std::to_string(server->pid()), ns.url(*server)});
  ASSERT_EQ(run.status, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j.at("idle").at("alive_after_hold"), 5) << run.out;
  // 5 connections and the listener (null would mean "not measured").
  EXPECT_EQ(j.at("server").at("sockets"), 6) << j.at("server").dump();
  EXPECT_EQ(server->stop(), 0);
}

TEST(LoadNetns, ANamespaceThatDoesNotExistIsAClearErrorExit1) {
  const Ran r = plain_load(
      {"-c", "1", "-d", "1s", "--netns", "shootout-no-such-namespace", "http://127.0.0.1:9/"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("/run/netns/shootout-no-such-namespace"), std::string::npos) << r.err;
}

// Two ranks under mpirun, each making its connections in its own namespace (l1, l2): like two
// load hosts. MPI's own traffic stays in this namespace, where mpirun reaches the ranks. The
// merged count is the server's own, exactly, and the server holds connections from both hosts.
TEST(LoadNetns, TwoRanksInTwoNamespacesMergeToTheServersOwnCountExactly) {
  SKIP_WITHOUT_MPI();
  MAKE_NAMESPACES(ns);
  const auto dir = shootout::test::temp_dir("netns-mpi");
  const std::string stats = (dir / "stats.json").string();
  auto server = server_in(ns, {"--model", "evented", "--stats-file", stats});
  const std::string both = ns.load_ns(0) + "," + ns.load_ns(1);
  const Ran run =
      mpirun_load(2, {"--json", "-c", "20", "-d", "2s", "--netns", both, ns.url(*server)});
  ASSERT_EQ(run.status, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j.at("ranks"), 2);
  EXPECT_EQ(j.at("errors").at("total"), 0);
  EXPECT_EQ(j.at("concurrency").at("served_in_window"), 20);
  const auto responses = j.at("responses_total").get<std::uint64_t>();
  ASSERT_TRUE(shootout::test::await_requests(*server, stats, responses));
  EXPECT_EQ(shootout::test::requests_seen(*server, stats), responses);

  // Held connections, to see where they come from: rank 0's 4 from l1, rank 1's 4 from l2.
  const auto before = shootout::test::requests_seen(*server, stats);
  const auto peers = peers_while_held(
      {mpirun_path(), "-np", "2", "--oversubscribe", shootout::test::shootout_binary(), "load",
       "--idle", "-c", "8", "-d", "120s", "--netns", both, ns.url(*server)},
      *server, stats, before + 8);
  EXPECT_EQ(peers, (std::map<std::string, int>{{"10.77.1.2", 4}, {"10.77.2.2", 4}}));
  EXPECT_EQ(server->stop(), 0);
  std::filesystem::remove_all(dir);
}

// Against a server that answers after a fixed 20 ms, the merged histogram of two ranks in two
// namespaces has the 20 ms floor and the p50 of one process making the same connections alone.
TEST(LoadNetns, TwoRanksMergedP50OfAFixed20msDelayIsThatOfOneProcess) {
  SKIP_WITHOUT_MPI();
  MAKE_NAMESPACES(ns);
  auto server = server_in(ns, {"--model", "threaded"});
  const std::string url = ns.url(*server, "/sleep?ms=20");
  const Ran merged = mpirun_load(
      2, {"--json", "-c", "8", "-d", "2s", "--netns", ns.load_ns(0) + "," + ns.load_ns(1), url});
  ASSERT_EQ(merged.status, 0) << merged.err;
  const Ran one = plain_load({"--json", "-c", "8", "-d", "2s", "--netns", ns.load_ns(0), url});
  ASSERT_EQ(one.status, 0) << one.err;
  const auto m = nlohmann::json::parse(merged.out), o = nlohmann::json::parse(one.out);
  EXPECT_EQ(m.at("ranks"), 2);
  EXPECT_EQ(m.at("latency_us").at("count"), m.at("requests"));
  for (const auto* j : {&m, &o}) {
    EXPECT_EQ(j->at("errors").at("total"), 0);
    EXPECT_GE(j->at("latency_us").at("min").get<double>(), 20'000.0);
    const double p50 = j->at("latency_us").at("p50").get<double>();
    EXPECT_GE(p50, 20'000.0);
    EXPECT_LE(p50, 30'000.0);
  }
  EXPECT_EQ(server->stop(), 0);
}

}  // namespace
