// The scenarios of `shootout run` (runner/scenario.hpp) at tiny sizes, against the real
// build/shootout: each writes its results, graphs and report section, and its figures show the
// causes they are meant to show (the stall: a loop that burns holds GET / across the burn, a
// loop that offloads keeps answering; the wait: no server beats Little's law; a sweep that stops
// says why on the graph). No timing thresholds: deadlines only guard against hangs.
#include "scenario.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "files.hpp"
#include "machine.hpp"
#include "process.hpp"
#include "server_process.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using shootout::test::Process;
using shootout::test::shootout_binary;

using shootout::test::read_file;
using shootout::test::temp_dir;

namespace {

int run_cli(std::vector<std::string> args, std::string* err = nullptr,
            std::chrono::seconds timeout = 240s) {
  args.insert(args.begin(), shootout_binary());
  Process p(args);
  int status = p.wait(timeout);
  if (status == -1) p.signal(SIGKILL);
  if (err) *err = p.stderr_text();
  return status;
}

bool has_model(const std::string& m) {
  auto all = shootout::runner::available_models(shootout_binary());
  return std::find(all.begin(), all.end(), m) != all.end();
}

void expect_graph(const fs::path& dir, const std::string& name) {
  for (const char* ext : {".svg", ".png"}) {
    fs::path f = dir / "graphs" / (name + ext);
    ASSERT_TRUE(fs::exists(f)) << f;
    EXPECT_GT(fs::file_size(f), 0u) << f;
  }
}

nlohmann::json results_of(const fs::path& dir) {
  return nlohmann::json::parse(read_file(dir / "results.json"));
}

// ---- the stall ---------------------------------------------------------------------------

// One stall run of the evented model, inline and --offload-cpu, shared by the stall tests:
// 4 connections, a 2 s window, a 300 ms burn a second.
class StallScenario : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = temp_dir("stall");
    status_ = run_cli(
        {"run", "--scenario", "stall", "--models", "evented", "--connections", "4", "--duration",
         "2s", "--warmup", "200ms", "--burn-us", "300000", "--out", dir_.string()},
        &stderr_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static const nlohmann::json* variant(const nlohmann::json& r, const std::string& label) {
    for (const auto& v : r["scenarios"]["stall"]["variants"])
      if (v["label"] == label) return &v;
    return nullptr;
  }
  static fs::path dir_;
  static int status_;
  static std::string stderr_;
};
fs::path StallScenario::dir_;
int StallScenario::status_ = -1;
std::string StallScenario::stderr_;

TEST_F(StallScenario, WritesEachVariantsTimelineBurnsGraphAndReport) {
  ASSERT_EQ(status_, 0) << stderr_;
  auto r = results_of(dir_);
  EXPECT_EQ(r["meta"]["config"]["scenario"], "stall");
  ASSERT_EQ(r["scenarios"]["stall"]["variants"].size(), 2u);
  for (const char* label : {"evented inline", "evented offload"}) {
    const auto* v = variant(r, label);
    ASSERT_NE(v, nullptr) << label;
    ASSERT_EQ((*v)["status"], "ok") << v->dump();
    EXPECT_GT((*v)["requests"].get<long>(), 0) << label;
    EXPECT_EQ((*v)["errors"].get<long>(), 0) << label;
    EXPECT_LE((*v)["p50_us"].get<double>(), (*v)["p99_us"].get<double>()) << label;
    // At least one burn answered, with 200, inside the window.
    ASSERT_GE((*v)["burns"].size(), 1u) << label;
    EXPECT_EQ((*v)["burns"][0]["status"], 200) << label;
    EXPECT_GT((*v)["burn_requests"].get<long>(), 0) << label;
    // Every GET / of the window is in the raw file, one line each.
    const std::string tsv = read_file(dir_ / (*v)["timeline_file"].get<std::string>());
    long lines = 0;
    std::istringstream in(tsv);
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line[0] != '#') ++lines;
    EXPECT_EQ(lines, (*v)["requests"].get<long>()) << label;
  }
  expect_graph(dir_, "stall");
  const std::string report = read_file(dir_ / "report.md");
  EXPECT_NE(report.find("## The stall"), std::string::npos);
  EXPECT_NE(report.find("| evented inline |"), std::string::npos);
  EXPECT_NE(report.find("| evented offload |"), std::string::npos);
  EXPECT_NE(report.find("graphs/stall.svg"), std::string::npos);
}

// The loop's only thread burns: a GET / issued in the first half of a burn cannot be answered
// before the burn is over, so some are answered only after its middle.
TEST_F(StallScenario, InlineBurnHoldsGetRequestsAcrossTheBurn) {
  ASSERT_EQ(status_, 0) << stderr_;
  const auto r = results_of(dir_);
  const auto* v = variant(r, "evented inline");
  ASSERT_NE(v, nullptr);
  EXPECT_GT((*v)["held_across"].get<long>(), 0) << v->dump().substr(0, 600);
}

// With --offload-cpu the burn runs on a helper thread: the loop keeps answering GET /, so some
// are issued and answered inside the second half of a burn.
TEST_F(StallScenario, OffloadedBurnLeavesTheLoopAnswering) {
  ASSERT_EQ(status_, 0) << stderr_;
  const auto r = results_of(dir_);
  const auto* v = variant(r, "evented offload");
  ASSERT_NE(v, nullptr);
  EXPECT_GT((*v)["answered_inside"].get<long>(), 0) << v->dump().substr(0, 600);
}

TEST_F(StallScenario, PlotRedrawsTheStallFromResultsJson) {
  ASSERT_EQ(status_, 0) << stderr_;
  fs::remove(dir_ / "graphs" / "stall.svg");
  ASSERT_EQ(run_cli({"plot", dir_.string()}), 0);
  expect_graph(dir_, "stall");
}

// The figures from a timeline written by hand: which GET / overlap a burn, which were held
// across it, which were answered inside it.
TEST(StallAnalysis, ClassifiesRequestsByTheirLifeAgainstTheBurns) {
  using shootout::load::TimelineEntry;
  using shootout::runner::BurnRecord;
  const std::int64_t ms = 1'000'000;
  auto entry = [&](std::int64_t sent_ms, std::int64_t done_ms) {
    const float us = static_cast<float>((done_ms - sent_ms) * 1000);
    return TimelineEntry{done_ms * ms, us, us};
  };
  // A burn sent at 100 ms, answered at 600 ms (middle 350 ms).
  std::vector<BurnRecord> burns{{100 * ms, 600 * ms, 200, ""}};
  std::vector<TimelineEntry> t{
      entry(0, 10),     // before: calm
      entry(110, 610),  // issued in the first half, answered after the middle: held across
      entry(400, 420),  // issued and answered in the second half: answered inside
      entry(700, 705),  // after: calm
  };
  auto j = shootout::runner::analyse_stall(t, burns);
  ASSERT_EQ(j["status"], "ok");
  EXPECT_EQ(j["requests"], 4);
  EXPECT_EQ(j["burn_requests"], 2);
  EXPECT_EQ(j["held_across"], 1);
  EXPECT_EQ(j["answered_inside"], 1);
  EXPECT_DOUBLE_EQ(j["max_burn_us"].get<double>(), 500'000);
  EXPECT_DOUBLE_EQ(j["max_us"].get<double>(), 500'000);
  EXPECT_DOUBLE_EQ(j["burns"][0]["sent_s"].get<double>(), 0.1);
  // A burn sent after the last GET / of the window is not one of its burns.
  burns.push_back({800 * ms, 0, 0, "cut short"});
  EXPECT_EQ(shootout::runner::analyse_stall(t, burns)["burns"].size(), 1u);
  EXPECT_EQ(shootout::runner::analyse_stall({}, burns)["status"], "failed");
}

// ---- the rate sweep ----------------------------------------------------------------------

TEST(RateSweep, OffersFractionsOfSaturationAndDrawsTheHockeyStick) {
  const fs::path dir = temp_dir("rate");
  std::string err;
  ASSERT_EQ(run_cli({"run", "--rate-sweep", "--models", "evented", "--connections", "4",
                     "--duration", "500ms", "--warmup", "100ms", "--out", dir.string()},
                    &err),
            0)
      << err;
  auto r = results_of(dir);
  const auto& rs = r["scenarios"]["rate_sweep"];
  EXPECT_EQ(rs["connections"], 4);
  ASSERT_EQ(rs["servers"].size(), 1u);
  const auto& s = rs["servers"][0];
  ASSERT_EQ(s["status"], "ok") << s.dump();
  const double saturation = s["saturation_rps"].get<double>();
  EXPECT_GT(saturation, 0);
  const auto& fractions = shootout::runner::rate_fractions();
  ASSERT_EQ(s["points"].size(), fractions.size());
  double last_offered = 0;
  for (std::size_t i = 0; i < fractions.size(); ++i) {
    const auto& p = s["points"][i];
    ASSERT_EQ(p["status"], "ok") << p.dump();
    EXPECT_DOUBLE_EQ(p["fraction"].get<double>(), fractions[i]);
    EXPECT_NEAR(p["offered_rps"].get<double>(), std::max(1.0, fractions[i] * saturation), 1e-6);
    EXPECT_GT(p["offered_rps"].get<double>(), last_offered);
    last_offered = p["offered_rps"].get<double>();
    EXPECT_LE(p["p50_us"].get<double>(), p["p99_us"].get<double>());
    EXPECT_LE(p["p99_us"].get<double>(), p["p999_us"].get<double>());
    EXPECT_GT(p["achieved_rps"].get<double>(), 0);
  }
  expect_graph(dir, "rate-sweep");
  const std::string report = read_file(dir / "report.md");
  EXPECT_NE(report.find("hockey stick"), std::string::npos);
  EXPECT_NE(report.find("graphs/rate-sweep.svg"), std::string::npos);
  fs::remove_all(dir);
}

// ---- the waiting-heavy sweep -------------------------------------------------------------

// Every request waits 20 ms, so N connections can get at most N / 20 ms answers a second; a
// forked server limited to 8 processes stops at 8 connections, and the graph says so at its end.
TEST(WaitScenario, NoServerBeatsLittlesLawAndAStoppedServerSaysWhyOnTheGraph) {
  if (!has_model("forked") || !has_model("evented")) GTEST_SKIP() << "needs forked and evented";
  const fs::path dir = temp_dir("wait");
  std::string err;
  ASSERT_EQ(
      run_cli({"run", "--scenario", "wait", "--models", "evented,forked", "--connections", "4,24",
               "--duration", "500ms", "--warmup", "200ms", "--idle-hold-seconds", "0.2",
               "--timeout", "2s", "--server-args=--max-procs 8", "--out", dir.string()},
              &err),
      0)
      << err;
  auto r = results_of(dir);
  EXPECT_EQ(r["meta"]["config"]["path"], "/sleep?ms=20");
  bool forked_stopped = false;
  for (const auto& p : r["points"]) {
    if (p["status"] != "ok") continue;
    const double little = p["connections"].get<double>() / 0.020;
    // Each request took at least its 20 ms: Little's law is a ceiling (1% for the window's
    // edges: a request answered in it may have been sent just before it opened).
    EXPECT_LE(p["rps"].get<double>(), little * 1.01) << p["server"] << " at " << p["connections"];
    EXPECT_GT(p["rps"].get<double>(), 0);
    if (p["server"] == "forked" && p["connections"] == 24) forked_stopped = !p["at_n"].get<bool>();
  }
  EXPECT_TRUE(forked_stopped) << "forked with --max-procs 8 measured at 24 connections";
  for (const char* g : {"wait-rps", "wait-memory", "wait-tasks"}) expect_graph(dir, g);
  const std::string gp = read_file(dir / "graphs" / "plot.gp");
  EXPECT_NE(gp.find("'forked: reached "), std::string::npos) << "no end marker for forked";
  EXPECT_NE(gp.find("Little"), std::string::npos);
  const std::string report = read_file(dir / "report.md");
  EXPECT_NE(report.find("## Waiting-heavy work"), std::string::npos);
  fs::remove_all(dir);
}

// ---- usage -------------------------------------------------------------------------------

TEST(ScenarioCli, BadScenarioCombinationsExit2WithTheReason) {
  std::string err;
  EXPECT_EQ(run_cli({"run", "--scenario", "nosuch"}, &err), 2);
  EXPECT_NE(err.find("--scenario"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"run", "--scenario", "stall", "--peers", "nginx"}, &err), 2);
  EXPECT_NE(err.find("peers have no /cpu"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"run", "--rate-sweep", "--connections", "1,10"}, &err), 2);
  EXPECT_NE(err.find("one connection count"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"run", "--scenario", "stall", "--rate-sweep"}, &err), 2);
  EXPECT_EQ(run_cli({"run", "--scenario", "wait", "--path", "/"}, &err), 2);
  EXPECT_NE(err.find("/sleep?ms=N"), std::string::npos) << err;
  EXPECT_EQ(run_cli({"run", "--scenario", "stall", "--models", "forked"}, &err), 2);
  EXPECT_NE(err.find("has a stall variant"), std::string::npos) << err;
}

}  // namespace
