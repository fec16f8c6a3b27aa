// The shootout runner against real processes: a short sweep of real models writes the CSV,
// JSON, graphs and report; `plot` redraws them; generated peer configurations say what they
// must; installed peers really answer from them; Ctrl-C keeps the results; bad flags exit 2.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "client.hpp"
#include "files.hpp"
#include "machine.hpp"
#include "peers/peers.hpp"
#include "process.hpp"
#include "results.hpp"
#include "server_process.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using shootout::test::Process;
using shootout::test::shootout_binary;

using shootout::test::read_file;
using shootout::test::temp_dir;

namespace {

// The models this build has: threaded and forked when both exist, else what there is (at most 2).
std::vector<std::string> two_models() {
  auto all = shootout::runner::available_models(shootout_binary());
  std::vector<std::string> picked;
  for (const char* want : {"threaded", "forked"})
    if (std::find(all.begin(), all.end(), want) != all.end()) picked.push_back(want);
  for (const auto& m : all)
    if (picked.size() < 2 && std::find(picked.begin(), picked.end(), m) == picked.end())
      picked.push_back(m);
  return picked;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

int run_cli(std::vector<std::string> args, std::chrono::seconds timeout = 120s,
            std::string* err = nullptr) {
  args.insert(args.begin(), shootout_binary());
  Process p(args);
  int status = p.wait(timeout);
  if (status == -1) p.signal(SIGKILL);
  if (err) *err = p.stderr_text();
  return status;
}

std::size_t count_lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

// One short sweep shared by the sweep and plot tests.
class RunnerSweep : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    models_ = two_models();
    dir_ = temp_dir("sweep");
    status_ =
        run_cli({"run", "--models", join(models_), "--connections", "1,10", "--duration", "300ms",
                 "--warmup", "100ms", "--idle-hold-seconds", "0.2", "--out", dir_.string()},
                120s, &stderr_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::vector<std::string> models_;
  static fs::path dir_;
  static int status_;
  static std::string stderr_;
};
std::vector<std::string> RunnerSweep::models_;
fs::path RunnerSweep::dir_;
int RunnerSweep::status_ = -1;
std::string RunnerSweep::stderr_;

void expect_graphs(const fs::path& dir) {
  for (const char* g : {"rps", "capacity", "memory", "memory-whole", "latency", "switches", "cpu"})
    for (const char* ext : {".svg", ".png"}) {
      fs::path f = dir / "graphs" / (std::string(g) + ext);
      ASSERT_TRUE(fs::exists(f)) << f;
      EXPECT_GT(fs::file_size(f), 0u) << f;
    }
}

TEST_F(RunnerSweep, WritesCsvJsonWithEveryPoint) {
  ASSERT_EQ(status_, 0) << stderr_;
  const std::size_t points = models_.size() * 2;
  std::string csv = read_file(dir_ / "results.csv");
  EXPECT_EQ(count_lines(csv), points + 1) << csv;  // header + one row per point
  EXPECT_EQ(csv.rfind("server,kind,connections,status", 0), 0u);
  auto j = nlohmann::json::parse(read_file(dir_ / "results.json"));
  ASSERT_EQ(j["points"].size(), points);
  for (const auto& p : j["points"]) {
    EXPECT_EQ(p["status"], "ok") << p.dump();
    EXPECT_GT(p["rps"].get<double>(), 0) << p.dump();
    EXPECT_GT(p["requests"].get<std::uint64_t>(), 0u);
    EXPECT_GT(p["pss_idle_mb"].get<double>(), 0) << p.dump();
    EXPECT_TRUE(p.contains("loadgen_bound"));
    EXPECT_EQ(p["runs"].size(), 1u);
  }
  EXPECT_GT(j["meta"]["machine"]["nproc"].get<int>(), 0);
  EXPECT_TRUE(j["meta"]["versions"].contains("nginx"));
  EXPECT_NE(j["meta"]["command_line"].get<std::string>().find("--connections 1,10"),
            std::string::npos);
}

TEST_F(RunnerSweep, DrawsGraphsAndReport) {
  ASSERT_EQ(status_, 0) << stderr_;
  expect_graphs(dir_);
  std::string report = read_file(dir_ / "report.md");
  EXPECT_NE(report.find("![Requests per second](graphs/rps.svg)"), std::string::npos);
  EXPECT_NE(report.find("Load-generator-bound points"), std::string::npos);
  for (const auto& m : models_)
    EXPECT_NE(report.find("| " + m + " | 10 |"), std::string::npos) << m;
  // Every graph says under its title which machine, which day and which build drew it.
  const std::string gp = read_file(dir_ / "graphs" / "plot.gp");
  const auto j = nlohmann::json::parse(read_file(dir_ / "results.json"));
  const std::string sub = fmt::format(
      "{} ({} CPUs), {}, commit {}", j["meta"]["machine"]["cpu_model"].get<std::string>(),
      j["meta"]["machine"]["nproc"].dump(), j["meta"]["started"].get<std::string>().substr(0, 10),
      j["meta"]["versions"]["commit"].get<std::string>());
  std::size_t titles = 0, with_sub = 0;
  for (std::size_t at = 0; (at = gp.find("set title ", at)) != std::string::npos; ++at) {
    ++titles;
    with_sub += gp.compare(gp.find("\\n", at) + 2, sub.size(), sub) == 0;
  }
  EXPECT_GT(titles, 0u);
  EXPECT_EQ(with_sub, titles) << "a graph title without the machine, date and commit: " << sub;
  EXPECT_NE(j["meta"]["versions"]["commit"], "") << "no commit recorded";
}

// Issue #16, items 5 and 6: the server capacity (requests per server CPU-second) and the
// memory the kernel holds beside PSS, per connection, on the same short sweep.
TEST_F(RunnerSweep, CapacityAndKernelMemoryPerConnection) {
  ASSERT_EQ(status_, 0) << stderr_;
  const std::string csv = read_file(dir_ / "results.csv");
  std::string header = ",";  // every column between commas
  header += csv.substr(0, csv.find('\n'));
  header += ',';
  for (const char* col :
       {"capacity_rps", "threads_baseline", "threads_idle", "sockets_idle", "kernel_baseline_mb",
        "kernel_idle_mb", "sock_per_conn_kb", "pte_per_conn_kb", "stack_per_conn_kb",
        "kernel_per_conn_kb", "whole_per_conn_kb", "kernel_fell"})
    EXPECT_NE(header.find(std::string(",") + col + ","), std::string::npos) << col;
  const auto j = nlohmann::json::parse(read_file(dir_ / "results.json"));
  std::map<std::pair<std::string, int>, nlohmann::json> by;
  for (const auto& p : j["points"]) {
    by[{p["server"].get<std::string>(), p["connections"].get<int>()}] = p;
    SCOPED_TRACE(p.dump());
    // Capacity follows from a valid, positive CPU figure, else it is null (NaN): never
    // infinite, never negative.
    const auto& cpu = p["cpu_us_per_request"];
    if (cpu.is_number() && cpu.get<double>() > 0) {
      ASSERT_TRUE(p["capacity_rps"].is_number());
      EXPECT_DOUBLE_EQ(p["capacity_rps"].get<double>(), 1e6 / cpu.get<double>());
    } else {
      EXPECT_TRUE(p["capacity_rps"].is_null());
    }
    // Every part is measured here (sock_diag works as root and as a user) and never negative.
    double parts = 0;
    for (const char* part : {"sock_per_conn_kb", "pte_per_conn_kb", "stack_per_conn_kb"}) {
      ASSERT_TRUE(p[part].is_number()) << part;
      EXPECT_GE(p[part].get<double>(), 0.0) << part;
      parts += p[part].get<double>();
    }
    EXPECT_NEAR(p["kernel_per_conn_kb"].get<double>(), parts, 1e-6);
    EXPECT_NEAR(p["whole_per_conn_kb"].get<double>(), p["mem_per_conn_kb"].get<double>() + parts,
                1e-6);
    // The server's sockets with the connections held: its listener and one per connection.
    const auto held = p["idle_opened"].get<std::uint64_t>();
    ASSERT_GT(held, 0u);
    EXPECT_GE(p["sockets_idle"].get<std::uint64_t>(), held + 1);
    EXPECT_GT(p["sock_per_conn_kb"].get<double>(), 0.0);
    // Kernel stacks are 16 KiB per thread the connections added, over the connections held.
    const auto base = p["threads_baseline"].get<double>();
    const auto idle = p["threads_idle"].get<double>();
    EXPECT_DOUBLE_EQ(p["stack_per_conn_kb"].get<double>(),
                     16.0 * std::max(0.0, idle - base) / static_cast<double>(held));
  }
  // A thread per connection: ten held connections are ten more threads than one, each with its
  // kernel stack, so the point's kernel-stack share grows with its threads.
  if (by.count({"threaded", 10}) && by.count({"threaded", 1})) {
    const auto& one = by[{"threaded", 1}];
    const auto& ten = by[{"threaded", 10}];
    EXPECT_GT(ten["threads_idle"].get<int>(), one["threads_idle"].get<int>()) << ten.dump();
    EXPECT_GE(ten["threads_idle"].get<int>() - ten["threads_baseline"].get<int>(), 10);
    EXPECT_GE(ten["stack_per_conn_kb"].get<double>(), 16.0) << ten.dump();
  }
  // A process per connection: each child has page tables of its own.
  if (by.count({"forked", 10})) {
    const auto& forked = by[{"forked", 10}];
    EXPECT_GT(forked["pte_per_conn_kb"].get<double>(), 0.0) << forked.dump();
  }
  const std::string report = read_file(dir_ / "report.md");
  EXPECT_NE(report.find("(requests per server CPU-second)](graphs/capacity.svg)"),
            std::string::npos);
  EXPECT_NE(report.find("| req/CPU-s |"), std::string::npos);
  EXPECT_NE(report.find("Per idle connection at 10 connections"), std::string::npos) << report;
  EXPECT_TRUE(fs::exists(dir_ / "graphs/data/breakdown.dat"));
}

// Results written before capacity and the kernel's memory existed: capacity follows from the
// CPU figure (none from an invalid one), the kernel parts were not measured (NaN, not 0).
TEST(RunnerResults, OlderResultsGetCapacityFromCpuAndNoKernelFigures) {
  nlohmann::json j = {{"server", "evented"}, {"connections", 10}, {"cpu_us_per_request", 50.0}};
  auto p = shootout::runner::point_from_json(j);
  EXPECT_DOUBLE_EQ(p.capacity_rps, 20'000.0);
  EXPECT_TRUE(std::isnan(p.kernel_per_conn_kb));
  EXPECT_TRUE(std::isnan(p.whole_per_conn_kb));
  j["cpu_us_per_request"] = nullptr;
  p = shootout::runner::point_from_json(j);
  EXPECT_TRUE(std::isnan(p.capacity_rps));
  // And a NaN is written out as null (results.json), and read back as NaN again.
  p.capacity_rps = std::numeric_limits<double>::quiet_NaN();
  const auto written = nlohmann::json::parse(shootout::runner::to_json(p).dump());
  EXPECT_TRUE(written["capacity_rps"].is_null());
  EXPECT_TRUE(std::isnan(shootout::runner::point_from_json(written).capacity_rps));
}

TEST_F(RunnerSweep, PlotRedrawsFromResultsJson) {
  ASSERT_EQ(status_, 0) << stderr_;
  fs::remove_all(dir_ / "graphs");
  fs::remove(dir_ / "report.md");
  std::string err;
  ASSERT_EQ(run_cli({"plot", dir_.string()}, 60s, &err), 0) << err;
  expect_graphs(dir_);
  EXPECT_TRUE(fs::exists(dir_ / "report.md"));
}

// A small sweep can have no memory growth per connection anywhere (the PSS fell during every
// idle hold) and no context switch: a log-scale plot of such a column has no point, gnuplot
// fails on it and every graph after it was lost. Each such panel now says why it is empty.
TEST_F(RunnerSweep, PlotDrawsEveryGraphWhenAFigureIsZeroAtEveryPoint) {
  ASSERT_EQ(status_, 0) << stderr_;
  const fs::path dir = fs::path(testing::TempDir()) / ("runner-zero-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto j = nlohmann::json::parse(read_file(dir_ / "results.json"));
  ASSERT_FALSE(j["points"].empty());
  for (auto& p : j["points"]) {
    p["mem_per_conn_kb"] = 0.0;
    p["switches_per_request"] = 0.0;
  }
  std::ofstream(dir / "results.json") << j.dump();
  std::string err;
  ASSERT_EQ(run_cli({"plot", dir.string()}, 60s, &err), 0) << err;
  expect_graphs(dir);
  const std::string script = read_file(dir / "graphs/plot.gp");
  EXPECT_NE(script.find("no point has a memory growth per connection above 0"), std::string::npos);
  EXPECT_NE(script.find("no point has context switches above 0 per request"), std::string::npos);
  fs::remove_all(dir);
}

// A point that did not hold N idle connections and has no memory per connection (too few
// sockets held at the read: 2026-12-04, Apache event at 100,000): the memory graph's crosses
// get no label plot for that figure, since gnuplot fails (5.4 crashes) on a `with labels` plot
// none of whose points is defined; the PSS graph, where the point has a figure, keeps its label.
TEST_F(RunnerSweep, PlotLeavesOutALabelPlotWithNoDefinedPoint) {
  ASSERT_EQ(status_, 0) << stderr_;
  const fs::path dir =
      fs::path(testing::TempDir()) / ("runner-nolabel-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto j = nlohmann::json::parse(read_file(dir_ / "results.json"));
  ASSERT_FALSE(j["points"].empty());
  const std::string server = j["points"][0]["server"];
  for (auto& p : j["points"])
    if (p["server"] == server) {
      p["idle_at_n"] = false;
      p["pss_idle_mb"] = 5.0;
      p["mem_per_conn_kb"] = nullptr;
      p["whole_per_conn_kb"] = nullptr;
    }
  std::ofstream(dir / "results.json") << j.dump();
  std::string err;
  ASSERT_EQ(run_cli({"plot", dir.string()}, 60s, &err), 0) << err;
  expect_graphs(dir);
  const std::string script = read_file(dir / "graphs/plot.gp");
  const std::string pss_label = fmt::format(
      "$12 > 0 || !($4 > 0) ? 1/0 : $4):(strcol(22) eq '-' ? sprintf('{}: reached", server);
  const std::string kb_label = fmt::format(
      "$12 > 0 || !($5 > 0) ? 1/0 : $5):(strcol(22) eq '-' ? sprintf('{}: reached", server);
  EXPECT_NE(script.find(pss_label), std::string::npos) << script;
  EXPECT_EQ(script.find(kb_label), std::string::npos) << script;
  fs::remove_all(dir);
}

// The runner's next point must not start while a stopped server's processes still exit (they
// count against pid_max): await_group_gone waits for the whole group, not only its leader.
TEST(RunnerProcess, AwaitGroupGoneWaitsForEveryProcessOfTheGroup) {
  const fs::path dir = temp_dir("group-gone");
  shootout::runner::Child child({"/bin/sh", "-c", "sleep 60 & sleep 60"}, (dir / "log").string());
  EXPECT_FALSE(child.await_group_gone(200ms));  // the leader and its background sleep run
  // Stopping the leader also kills what it left in its group; then the group is empty.
  ASSERT_TRUE(child.stop(SIGKILL, 10s).has_value());
  EXPECT_TRUE(child.await_group_gone(30s));
  fs::remove_all(dir);
}

TEST(RunnerPeers, NginxConfigHasPortLogsAndLimits) {
  fs::path dir = temp_dir("nginx-conf");
  shootout::runner::HostLimits limits;
  limits.nofile = 1'000'000;
  auto s = shootout::runner::write_peer_config("nginx", dir.string(), 23456, 5000, limits);
  std::string conf = read_file(s.config_path);
  EXPECT_NE(conf.find("listen 127.0.0.1:23456"), std::string::npos) << conf;
  EXPECT_NE(conf.find("access_log off;"), std::string::npos);
  EXPECT_NE(conf.find("error_log " + (dir / "nginx.error.log").string()), std::string::npos);
  EXPECT_NE(conf.find("pid " + (dir / "nginx.pid").string()), std::string::npos);
  EXPECT_NE(conf.find("daemon off;"), std::string::npos);
  EXPECT_NE(conf.find("worker_processes 1;"), std::string::npos);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(conf, m, std::regex(R"(worker_connections (\d+);)")));
  // Room for two sets of 5,000 (one phase's connections still closing as the next one's
  // arrive), and a descriptor for each.
  const int worker_connections = std::stoi(m[1]);
  EXPECT_GE(worker_connections, 2 * 5000);
  ASSERT_TRUE(std::regex_search(conf, m, std::regex(R"(worker_rlimit_nofile (\d+);)")));
  EXPECT_GT(std::stoi(m[1]), worker_connections);
  EXPECT_EQ(read_file(dir / "htdocs/index.txt"), "Hello, World!");
  EXPECT_TRUE(s.notes.empty());
  // Where the hard limit is lower, nginx could not raise its own (it only logs an alert):
  // the config asks for what there is, and the report says so.
  limits.nofile = 8000;
  s = shootout::runner::write_peer_config("nginx", dir.string(), 23456, 5000, limits);
  conf = read_file(s.config_path);
  ASSERT_TRUE(std::regex_search(conf, m, std::regex(R"(worker_rlimit_nofile (\d+);)")));
  EXPECT_EQ(std::stoi(m[1]), 8000);
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NE(s.notes[0].find("capped at 8000"), std::string::npos) << s.notes[0];
  fs::remove_all(dir);
}

TEST(RunnerPeers, ApacheConfigsHavePortLogsAndSizedMpm) {
  shootout::runner::HostLimits limits;
  limits.pid_max = 4'000'000;
  limits.mem_available_kb = 64L << 20;
  for (std::string mpm : {"prefork", "worker", "event"}) {
    fs::path dir = temp_dir("apache-conf");
    auto s =
        shootout::runner::write_peer_config("apache-" + mpm, dir.string(), 23457, 1000, limits);
    std::string conf = read_file(s.config_path);
    EXPECT_NE(conf.find("Listen 127.0.0.1:23457"), std::string::npos) << conf;
    EXPECT_EQ(conf.find("CustomLog"), std::string::npos) << "access log must be off";
    EXPECT_NE(conf.find("ErrorLog \"" + (dir / "apache.error.log").string()), std::string::npos);
    EXPECT_NE(conf.find("PidFile \"" + (dir / "apache.pid").string()), std::string::npos);
    EXPECT_NE(conf.find("mod_mpm_" + mpm + ".so"), std::string::npos);
    EXPECT_NE(conf.find("User www-data"), std::string::npos);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(conf, m, std::regex(R"(MaxRequestWorkers (\d+))")));
    // event: twice the workers, so that not every worker of a process is busy (when they
    // are, its listener closes keep-alive connections), and no spare-thread target
    EXPECT_GE(std::stoi(m[1]), mpm == "event" ? 2000 : 1000) << mpm;
    if (mpm == "event") {
      EXPECT_NE(conf.find("MinSpareThreads 1\n"), std::string::npos) << conf;
    }
    EXPECT_TRUE(s.notes.empty()) << mpm;
    fs::remove_all(dir);
  }
}

TEST(RunnerPeers, ApachePreforkIsCappedByPidMaxOrMemoryAndSaysWhich) {
  shootout::runner::HostLimits limits;
  limits.pid_max = 5000;
  limits.tasks_now = 500;
  limits.mem_available_kb = 64L << 20;
  fs::path dir = temp_dir("apache-cap");
  auto s =
      shootout::runner::write_peer_config("apache-prefork", dir.string(), 23458, 10000, limits);
  std::string conf = read_file(s.config_path);
  EXPECT_NE(conf.find("MaxRequestWorkers 2500\n"), std::string::npos) << conf;  // 5000-500-2000
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NE(s.notes[0].find("capped at 2500 processes for 10000 connections by pid_max"),
            std::string::npos)
      << s.notes[0];
  EXPECT_FALSE(shootout::runner::apache_prefork_cap(limits).by_memory);
  fs::remove_all(dir);

  // With pid_max out of the way, half the available memory at the estimate per child binds,
  // and the note and the cap say that it is memory.
  limits.pid_max = 4'000'000;
  limits.mem_available_kb = 1L << 20;  // 1 GiB: half of it holds 1024 children of 512 KiB
  const auto cap = shootout::runner::apache_prefork_cap(limits);
  EXPECT_TRUE(cap.by_memory);
  EXPECT_EQ(cap.processes, (1L << 20) / 2 / cap.child_kb);
  dir = temp_dir("apache-cap-memory");
  s = shootout::runner::write_peer_config("apache-prefork", dir.string(), 23458, 10000, limits);
  conf = read_file(s.config_path);
  EXPECT_NE(conf.find(fmt::format("MaxRequestWorkers {}\n", cap.processes)), std::string::npos)
      << conf;
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NE(s.notes[0].find(fmt::format("capped at {} processes for 10000 connections by memory",
                                        cap.processes)),
            std::string::npos)
      << s.notes[0];
  fs::remove_all(dir);
}

// Starts a generated peer and GETs / from it.
void expect_peer_answers(const std::string& peer) {
  if (shootout::runner::peer_binary(peer).empty())
    GTEST_SKIP() << peer << " is not installed (scripts/setup.sh installs nginx and apache2)";
  fs::path dir = temp_dir(peer);
  auto port = shootout::runner::free_port();
  auto s = shootout::runner::write_peer_config(peer, dir.string(), port, 10,
                                               shootout::runner::host_limits());
  shootout::runner::Child child(s.argv, (dir / "stdout.log").string());
  ASSERT_TRUE(shootout::runner::wait_for_port(port, 20s, &child))
      << read_file(s.error_log) << child.log_tail();
  auto r = shootout::test::http_get(port, "/");
  EXPECT_EQ(r.status, 200) << read_file(s.error_log);
  EXPECT_EQ(r.body, "Hello, World!");
  auto status = child.stop(SIGTERM, 20s);
  ASSERT_TRUE(status.has_value()) << peer << " did not stop on SIGTERM";
  EXPECT_EQ(*status, 0) << child.log_tail();
  for (const auto& e : fs::recursive_directory_iterator(dir))  // no access log anywhere
    EXPECT_EQ(e.path().filename().string().find("access"), std::string::npos) << e.path();
  fs::remove_all(dir);
}

TEST(RunnerPeers, NginxAnswersFromGeneratedConfig) { expect_peer_answers("nginx"); }
TEST(RunnerPeers, ApacheEventAnswersFromGeneratedConfig) { expect_peer_answers("apache-event"); }

// A point is labelled N only when N connections were served in its window. The forked model
// capped at 50 live children, swept at 200 connections, serves 50 at a time (the other 150
// wait in the backlog, their requests time out and they reconnect): the point keeps its
// figures but says it reached at most 50, and the report never ranks it.
TEST(RunnerTruth, APointThatCannotReachNIsMarkedWithWhatItReached) {
  fs::path dir = temp_dir("truth");
  std::string err;
  ASSERT_EQ(run_cli({"run", "--models", "forked", "--server-args=--max-procs 50", "--connections",
                     "200", "--duration", "1s", "--warmup", "100ms", "--timeout", "1s",
                     "--idle-hold-seconds", "0.2", "--out", dir.string()},
                    300s, &err),
            0)
      << err;
  auto j = nlohmann::json::parse(read_file(dir / "results.json"));
  ASSERT_EQ(j["points"].size(), 1u);
  const auto& p = j["points"][0];
  ASSERT_EQ(p["status"], "ok") << p.dump();
  EXPECT_EQ(p["connections"].get<int>(), 200);
  EXPECT_FALSE(p["at_n"].get<bool>()) << p.dump();
  EXPECT_LE(p["reached"].get<int>(), 50) << p.dump();
  EXPECT_GT(p["reached"].get<int>(), 0) << p.dump();
  EXPECT_LE(p["ramp_reached"].get<int>(), 50) << p.dump();
  EXPECT_FALSE(p["idle_at_n"].get<bool>()) << p.dump();
  EXPECT_LE(p["idle_opened"].get<int>(), 50) << p.dump();
  EXPECT_GE(p["mem_per_conn_kb"].get<double>(), 0.0);
  bool said = false;
  for (const auto& n : p["notes"]) said = said || n.get<std::string>().find("reached") == 0;
  EXPECT_TRUE(said) << p["notes"].dump();
  const std::string report = read_file(dir / "report.md");
  EXPECT_NE(report.find("200 (reached "), std::string::npos) << report;
  const std::string csv = read_file(dir / "results.csv");
  EXPECT_NE(csv.find("\nforked,model,200,ok,"), std::string::npos) << csv;
  fs::remove_all(dir);
}

TEST(RunnerCli, CtrlCKillsServersAndKeepsResults) {
  for (bool stray_sigusr2 : {false, true}) {
    SCOPED_TRACE(stray_sigusr2 ? "after a stray SIGUSR2" : "plain");
    fs::path dir = temp_dir(stray_sigusr2 ? "interrupt-usr2" : "interrupt");
    Process p({shootout_binary(), "run", "--models", two_models().front(), "--connections",
               "1,10,100,1000", "--duration", "2s", "--warmup", "100ms", "--idle-hold-seconds",
               "0.2", "--out", dir.string()});
    // results.json is rewritten after every point: the first point is done once it exists.
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!fs::exists(dir / "results.json") && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(fs::exists(dir / "results.json")) << p.stderr_text();
    // Someone else's SIGUSR2 must not end the thread that watches for Ctrl-C.
    if (stray_sigusr2) {
      p.signal(SIGUSR2);
      // Taken by the watcher before Ctrl-C comes (sigwait would pick SIGINT first otherwise).
      auto usr2_pending = [&] {
        std::istringstream st(read_file("/proc/" + std::to_string(p.pid()) + "/status"));
        for (std::string line; std::getline(st, line);)
          if (line.rfind("ShdPnd:", 0) == 0)
            return (std::stoull(line.substr(7), nullptr, 16) >> (SIGUSR2 - 1)) & 1u;
        return 0ull;
      };
      for (int i = 0; i < 6000 && usr2_pending(); ++i) std::this_thread::sleep_for(10ms);
      EXPECT_FALSE(usr2_pending());
    }
    p.signal(SIGINT);
    EXPECT_EQ(p.wait(60s), 130) << p.stderr_text();
    auto j = nlohmann::json::parse(read_file(dir / "results.json"));
    EXPECT_TRUE(j["interrupted"].get<bool>());
    EXPECT_GE(j["points"].size(), 1u);
    EXPECT_LT(j["points"].size(), 4u);
    EXPECT_TRUE(fs::exists(dir / "report.md"));
    // No server of this run is left: none has this folder on its command line.
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::string cmd = read_file(e.path() / "cmdline");
      std::replace(cmd.begin(), cmd.end(), '\0', ' ');
      EXPECT_EQ(cmd.find(dir.string() + "/servers"), std::string::npos) << e.path() << ": " << cmd;
    }
    fs::remove_all(dir);
  }
}

TEST(RunnerCli, BadFlagsExit2) {
  EXPECT_EQ(run_cli({"run", "--connections", "abc"}), 2);
  EXPECT_EQ(run_cli({"run", "--bogus"}), 2);
  EXPECT_EQ(run_cli({"run", "--repeat", "0"}), 2);
  EXPECT_EQ(run_cli({"run", "--handler", "ftp"}), 2);
  std::string err;
  EXPECT_EQ(run_cli({"run", "--models", "nosuch", "--out", "/tmp/never"}, 30s, &err), 2);
  EXPECT_NE(err.find("unknown model 'nosuch'"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"run", "--peers", "lighttpd"}, 30s, &err), 2);
  EXPECT_NE(err.find("unknown peer 'lighttpd'"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"run", "--models", "none"}, 30s, &err), 2);
  EXPECT_NE(err.find("nothing to run"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"plot"}), 2);
  EXPECT_EQ(run_cli({"plot", "/nonexistent/folder"}), 2);
}

}  // namespace

// A model this machine cannot run is left out of the sweep, not run into failed points: under a
// seccomp filter that forbids io_uring (a container's profile), `run --models uring,evented`
// runs evented only, says on stderr and in the report why uring is missing, and exits 0.
TEST(RunnerCli, AModelThisMachineCannotRunIsLeftOutAndTheReportSaysWhy) {
  auto models = shootout::runner::available_models(shootout_binary());
  if (std::find(models.begin(), models.end(), "uring") == models.end())
    GTEST_SKIP() << "this build has no uring model (liburing missing)";
  fs::path dir = temp_dir("left-out");
  shootout::test::ChildSetup setup;
  setup.forbid_io_uring = true;
  Process p(
      {shootout_binary(), "run", "--models", "uring,evented", "--connections", "1", "--duration",
       "200ms", "--warmup", "100ms", "--idle-hold-seconds", "0.1", "--out", dir.string()},
      setup);
  ASSERT_EQ(p.wait(120s), 0) << p.stderr_text();
  EXPECT_NE(p.stderr_text().find("leaving out model uring: "), std::string::npos)
      << p.stderr_text();
  auto j = nlohmann::json::parse(read_file(dir / "results.json"));
  ASSERT_EQ(j["points"].size(), 1u) << j.dump();
  EXPECT_EQ(j["points"][0]["server"], "evented");
  EXPECT_EQ(j["points"][0]["status"], "ok");
  const std::string report = read_file(dir / "report.md");
  EXPECT_NE(report.find("Left out: model uring: "), std::string::npos) << report;
  EXPECT_NE(report.find("io_uring"), std::string::npos) << "the reason is not in the report";
  fs::remove_all(dir);
}

// --repeat K makes K passes over the points: the repeats of one point are not back to back,
// and after each run its point is summarized again from the runs so far.
TEST(RunnerCli, RepeatsAreInterleavedPasses) {
  fs::path dir = temp_dir("passes");
  std::string err;
  ASSERT_EQ(
      run_cli({"run", "--models", "evented", "--connections", "1,10", "--repeat", "2", "--duration",
               "200ms", "--warmup", "100ms", "--idle-hold-seconds", "0.1", "--out", dir.string()},
              120s, &err),
      0)
      << err;
  // Progress (not a terminal here: one line per finished run) counts runs, in pass order.
  std::size_t at = 0;
  for (const char* line :
       {"[1/4] evented c=1 (run 1 of 2): ", "[2/4] evented c=10 (run 1 of 2): ",
        "[3/4] evented c=1 (run 2 of 2): ", "[4/4] evented c=10 (run 2 of 2): "}) {
    at = err.find(line, at);
    ASSERT_NE(at, std::string::npos) << "missing or out of order: " << line << "\n" << err;
  }
  auto j = nlohmann::json::parse(read_file(dir / "results.json"));
  ASSERT_EQ(j["points"].size(), 2u) << "a pass must replace its points, not add to them";
  for (const auto& p : j["points"]) {
    EXPECT_EQ(p["status"], "ok") << p.dump();
    EXPECT_EQ(p["runs"].size(), 2u);
    EXPECT_EQ(p["repeats"], 2);
  }
  EXPECT_EQ(j["points"][0]["connections"], 1);
  EXPECT_EQ(j["points"][1]["connections"], 10);
  fs::remove_all(dir);
}

// A relative --out folder must still reach the peers, which run in their own directory; and
// `--models none` runs the peers alone.
TEST(RunnerCli, PeerRunsWithARelativeOutFolder) {
  if (!fs::exists("/usr/sbin/nginx")) GTEST_SKIP() << "nginx is not installed";
  fs::path cwd = temp_dir("relative");
  std::string cmd = "cd " + cwd.string() + " && exec " + shootout_binary() +
                    " run --models none --connections 1 --peers nginx --duration 300ms"
                    " --warmup 100ms --idle-hold-seconds 0.2 --out rel";
  Process p({"/bin/sh", "-c", cmd});
  ASSERT_EQ(p.wait(120s), 0) << p.stderr_text();
  std::string csv = read_file(cwd / "rel" / "results.csv");
  EXPECT_NE(csv.find("\nnginx,peer,1,ok,"), std::string::npos) << csv;
  EXPECT_EQ(csv.find(",model,"), std::string::npos) << "--models none ran a model: " << csv;
  fs::remove_all(cwd);
}
