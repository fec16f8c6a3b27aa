// `serve --trace FILE`: real servers record a trace, are stopped with SIGTERM, and the file they
// wrote is loaded with nlohmann-json and checked against the Chrome Trace Event format and
// against what each model promises to record (common/trace.hpp, docs/TRACE.md).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client.hpp"
#include "server_process.hpp"
#include "variants.hpp"

namespace shootout::test {
namespace {

using nlohmann::json;

constexpr double kBurnUs = 200'000;  // the inline /cpu every stall test sends
constexpr double kEps = 0.002;       // µs: ts and dur are printed to the nanosecond

std::string temp_path(const std::string& tag) {
  return (std::filesystem::temp_directory_path() /
          ("shootout-trace-" + tag + "-" + std::to_string(::getpid()) + ".json"))
      .string();
}

// Starts `serve <args> --trace FILE`, sends GET / twice, an inline /cpu?us=200000 and a
// /sleep, stops the server with SIGTERM, and returns the parsed file.
json record(std::vector<std::string> args, const std::string& tag) {
  const std::string path = temp_path(tag);
  std::filesystem::remove(path);
  args.insert(args.end(), {"--trace", path});
  ServerProcess s(args);
  EXPECT_EQ(http_get(s.port(), "/").status, 200);
  EXPECT_EQ(http_get(s.port(), "/cpu?us=200000").status, 200);
  EXPECT_EQ(http_get(s.port(), "/sleep?ms=5").status, 200);
  EXPECT_EQ(http_get(s.port(), "/").status, 200);
  EXPECT_EQ(s.stop(), 0) << s.process().stderr_text();
  std::ifstream in(path);
  EXPECT_TRUE(in) << "no trace file at " << path;
  json j = json::parse(in);  // throws (and fails the test) on invalid JSON
  std::filesystem::remove(path);
  return j;
}

// The fields each phase type needs to open in Perfetto and chrome://tracing.
void expect_valid_trace_events(const json& trace) {
  ASSERT_TRUE(trace.is_object());
  ASSERT_TRUE(trace.contains("traceEvents"));
  const json& events = trace["traceEvents"];
  ASSERT_TRUE(events.is_array());
  ASSERT_FALSE(events.empty());
  for (const json& e : events) {
    SCOPED_TRACE(e.dump());
    ASSERT_TRUE(e.contains("ph") && e["ph"].is_string());
    ASSERT_TRUE(e.contains("name") && e["name"].is_string());
    ASSERT_TRUE(e.contains("pid") && e["pid"].is_number_integer());
    ASSERT_TRUE(e.contains("tid") && e["tid"].is_number_integer());
    const std::string ph = e["ph"];
    if (ph == "X") {
      ASSERT_TRUE(e.contains("cat") && e["cat"].is_string());
      ASSERT_TRUE(e["ts"].is_number() && e["dur"].is_number());
      EXPECT_GE(e["ts"].get<double>(), 0);
      EXPECT_GE(e["dur"].get<double>(), 0);
      if (e.contains("args")) {
        EXPECT_TRUE(e["args"].is_object());
      }
    } else if (ph == "M") {
      ASSERT_TRUE(e["name"] == "thread_name" || e["name"] == "process_name");
      ASSERT_TRUE(e["args"]["name"].is_string());
    } else if (ph == "s" || ph == "f") {
      ASSERT_TRUE(e["id"].is_string() && e["ts"].is_number() && e["cat"].is_string());
      if (ph == "f") {
        EXPECT_EQ(e["bp"], "e");
      }
    } else if (ph == "C") {
      ASSERT_TRUE(e["ts"].is_number() && e["args"].is_object());
    } else {
      ADD_FAILURE() << "unexpected phase type " << ph;
    }
  }
}

std::vector<json> spans(const json& trace) {
  std::vector<json> out;
  for (const json& e : trace["traceEvents"])
    if (e["ph"] == "X") out.push_back(e);
  return out;
}

double end_of(const json& e) { return e["ts"].get<double>() + e["dur"].get<double>(); }

bool inside(const json& child, const json& parent) {
  return child["pid"] == parent["pid"] && child["tid"] == parent["tid"] &&
         child["ts"].get<double>() >= parent["ts"].get<double>() - kEps &&
         end_of(child) <= end_of(parent) + kEps;
}

std::vector<Variant> stall_variants() {
  std::vector<Variant> v = {
      {"evented_epoll", {"--model", "evented"}},
      {"evented_poll", {"--model", "evented", "--poller", "poll"}},
      {"evented_select", {"--model", "evented", "--poller", "select"}},
      {"evented_loops2", {"--model", "evented", "--loops", "2"}},
      {"coroutine", {"--model", "coroutine"}},
  };
#ifdef SHOOTOUT_HAVE_URING
  v.push_back({"uring", {"--model", "uring"}});
#endif
  return v;
}

class TraceOfModel : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (std::string why = unavailable(GetParam()); !why.empty()) GTEST_SKIP() << why;
  }
};

// Valid trace-event JSON, and the inline /cpu is one dispatch (a callback of the loop, a fiber's
// run slice for coroutine) at least as long as the burn, with the burn itself nested in it.
TEST_P(TraceOfModel, InlineCpuIsOneDispatchSpanAtLeastAsLongAsTheBurn) {
  json trace = record(GetParam().args, GetParam().name);
  expect_valid_trace_events(trace);
  std::vector<json> all = spans(trace);
  std::vector<json> long_dispatches, burns;
  for (const json& e : all) {
    if (e["dur"].get<double>() < kBurnUs) continue;
    if (e["cat"] == "dispatch") long_dispatches.push_back(e);
    if (e["cat"] == "work" && e["name"] == "inline work") burns.push_back(e);
  }
  ASSERT_EQ(burns.size(), 1u);
  // The dispatch that ran the burn; on a host so loaded that some other dispatch was
  // descheduled for 200 ms there may be more long ones, but only one holds the burn.
  std::vector<json> holders;
  for (const json& d : long_dispatches)
    if (inside(burns[0], d)) holders.push_back(d);
  ASSERT_EQ(holders.size(), 1u) << "dispatch spans holding the burn";
  EXPECT_GE(holders[0]["dur"].get<double>(), kBurnUs);
  // Every thread that recorded has a name.
  std::set<long> tids, named;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name")
      named.insert(e["tid"].get<long>());
    else if (e["ph"] != "M")
      tids.insert(e["tid"].get<long>());
  }
  for (long tid : tids) EXPECT_TRUE(named.count(tid)) << "thread " << tid << " has no name";
}

INSTANTIATE_TEST_SUITE_P(Models, TraceOfModel, ::testing::ValuesIn(stall_variants()), variant_name);

// The loops' iterations: each phase of run_once is a span inside its iteration, all of them,
// in run_once's order, and the wait phase says what timeout it chose and how many events came.
class LoopTrace : public TraceOfModel {};

TEST_P(LoopTrace, PhasesNestInTheirIterationInRunOnceOrder) {
  const bool uring = GetParam().args[1] == "uring";
  const std::vector<std::string> order =
      uring ? std::vector<std::string>{"update_time", "timers",   "pending", "prepare",
                                       "submit_wait", "complete", "check",   "close"}
            : std::vector<std::string>{"update_time", "timers", "pending", "prepare",
                                       "poll",        "check",  "close"};
  const std::string wait_phase = uring ? "submit_wait" : "poll";
  json trace = record(GetParam().args, GetParam().name);
  expect_valid_trace_events(trace);
  std::vector<json> all = spans(trace);
  // Stable: spans are written as they end, so equal timestamps keep the order they ran in.
  std::stable_sort(all.begin(), all.end(), [](const json& a, const json& b) {
    return a["ts"].get<double>() < b["ts"].get<double>();
  });
  std::map<long, std::vector<json>> phases_by_tid;
  for (const json& e : all)
    if (e["cat"] == "phase") phases_by_tid[e["tid"].get<long>()].push_back(e);
  int iterations = 0;
  std::size_t phases_seen = 0;
  for (const json& it : all) {
    if (it["name"] != "iteration") continue;
    ++iterations;
    std::vector<std::string> names;
    for (const json& p : phases_by_tid[it["tid"].get<long>()])
      if (inside(p, it)) {
        names.push_back(p["name"]);
        if (p["name"] == wait_phase) {
          EXPECT_TRUE(p["args"].contains("events")) << p;
          EXPECT_TRUE(p["args"].contains(uring ? "timeout_us" : "timeout_ms")) << p;
        }
      }
    phases_seen += names.size();
    ASSERT_EQ(names, order) << "iteration " << it;
  }
  EXPECT_GE(iterations, 4);  // at least one per request
  std::size_t phases_total = 0;
  for (auto& [tid, v] : phases_by_tid) phases_total += v.size();
  EXPECT_EQ(phases_seen, phases_total) << "a phase outside every iteration";
}

std::vector<Variant> loop_variants() {
  std::vector<Variant> v;
  for (const Variant& x : stall_variants())
    if (x.args[1] != "coroutine") v.push_back(x);
  return v;
}

INSTANTIATE_TEST_SUITE_P(Models, LoopTrace, ::testing::ValuesIn(loop_variants()), variant_name);

// Offloaded work: the loop's submit and the pool thread's job are joined by a flow arrow, and
// the result's way back by another, each between two different threads.
class TraceFlows : public TraceOfModel {};

TEST_P(TraceFlows, OffloadedCpuHasArrowsToThePoolAndBack) {
  json trace = record(GetParam().args, GetParam().name);
  expect_valid_trace_events(trace);
  std::map<std::string, json> starts, finishes;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] == "s") starts[e["id"]] = e;
    if (e["ph"] == "f") finishes[e["id"]] = e;
  }
  ASSERT_EQ(starts.size(), 2u) << "one arrow to the pool and one back, for the one /cpu";
  for (auto& [id, s] : starts) {
    ASSERT_TRUE(finishes.count(id)) << "arrow " << id << " has no end";
    EXPECT_NE(s["tid"], finishes[id]["tid"]) << "an arrow between two threads";
    EXPECT_LE(s["ts"].get<double>(), finishes[id]["ts"].get<double>());
  }
  // The pool's job is a span at least as long as the burn, on the pool thread.
  bool job = false;
  for (const json& e : spans(trace))
    job |= e["name"] == "pool job" && e["dur"].get<double>() >= kBurnUs;
  EXPECT_TRUE(job);
}

std::vector<Variant> offload_variants() {
  std::vector<Variant> v = {{"evented", {"--model", "evented", "--offload-cpu"}},
                            {"coroutine", {"--model", "coroutine", "--offload-cpu"}}};
#ifdef SHOOTOUT_HAVE_URING
  v.push_back({"uring", {"--model", "uring", "--offload-cpu"}});
#endif
  return v;
}

INSTANTIATE_TEST_SUITE_P(Models, TraceFlows, ::testing::ValuesIn(offload_variants()), variant_name);

// Threaded: each connection is a span on its own thread, named "conn".
TEST(TraceThreaded, ConcurrentConnectionsAreSpansOnTheirOwnThreads) {
  const std::string path = temp_path("threaded");
  json trace;
  {
    ServerProcess s({"--model", "threaded", "--trace", path});
    // Two connections open at once: two threads.
    {
      Conn a(s.port()), b(s.port());
      ASSERT_TRUE(a.send(get_request("/")));
      ASSERT_TRUE(b.send(get_request("/")));
      EXPECT_EQ(read_response(a).status, 200);
      EXPECT_EQ(read_response(b).status, 200);
    }
    EXPECT_EQ(s.stop(), 0) << s.process().stderr_text();
    std::ifstream in(path);
    trace = json::parse(in);
  }
  std::filesystem::remove(path);
  expect_valid_trace_events(trace);
  std::set<long> conn_tids, named_conn;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] == "X" && e["name"] == "connection") conn_tids.insert(e["tid"].get<long>());
    if (e["ph"] == "M" && e["name"] == "thread_name" && e["args"]["name"] == "conn")
      named_conn.insert(e["tid"].get<long>());
  }
  EXPECT_EQ(conn_tids.size(), 2u);
  EXPECT_EQ(named_conn, conn_tids);
}

// Forked: each child records its connection in the ring shared with the parent, under its own
// pid, and the parent's file holds them after the children are reaped.
TEST(TraceForked, ChildrenRecordTheirConnectionsUnderTheirOwnPid) {
  const std::string path = temp_path("forked");
  json trace;
  pid_t server = 0;
  {
    ServerProcess s({"--model", "forked", "--trace", path});
    server = s.pid();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(http_get(s.port(), "/").status, 200);
    EXPECT_EQ(s.stop(), 0) << s.process().stderr_text();
    std::ifstream in(path);
    trace = json::parse(in);
  }
  std::filesystem::remove(path);
  expect_valid_trace_events(trace);
  std::set<long> child_pids;
  int forks = 0;
  for (const json& e : spans(trace)) {
    if (e["name"] == "connection") {
      EXPECT_NE(e["pid"].get<long>(), server);
      child_pids.insert(e["pid"].get<long>());
    }
    if (e["name"] == "fork" && e["pid"].get<long>() == server) ++forks;
  }
  EXPECT_EQ(child_pids.size(), 3u);
  EXPECT_EQ(forks, 3);
}

TEST(TraceFlags, AnUnwritableTraceFileIsRefusedAtStart) {
  Process p({shootout_binary(), "serve", "--port", "0", "--trace", "/nonexistent-dir/t.json"});
  EXPECT_EQ(p.wait(std::chrono::seconds(30)), 2);
  EXPECT_NE(p.stderr_text().find("--trace /nonexistent-dir/t.json"), std::string::npos)
      << p.stderr_text();
}

TEST(TraceFlags, TooSmallARingIsAUsageError) {
  Process p({shootout_binary(), "serve", "--port", "0", "--trace", temp_path("small"),
             "--trace-events", "10"});
  EXPECT_EQ(p.wait(std::chrono::seconds(30)), 2);
}

}  // namespace
}  // namespace shootout::test
