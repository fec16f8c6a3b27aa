#pragma once
// Every model and configuration the real-process suites run against (integration, robustness,
// faults). A new model or backend joins every suite by adding its line here.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#ifdef SHOOTOUT_HAVE_URING
#include "uring/loop.hpp"
#endif

namespace shootout::test {

struct Variant {
  std::string name;               // a valid gtest parameter name
  std::vector<std::string> args;  // `shootout serve` arguments that select the configuration
};

inline void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

inline const std::vector<Variant>& all_variants() {
  static const std::vector<Variant> variants = {
      {"threaded", {"--model", "threaded"}},
      {"threaded_pool", {"--model", "threaded", "--pool", "256"}},
      {"forked", {"--model", "forked"}},
      {"forked_prefork", {"--model", "forked", "--prefork", "256"}},
      {"coroutine", {"--model", "coroutine"}},
      {"coroutine_threads2", {"--model", "coroutine", "--threads", "2"}},
      {"coroutine_pooled", {"--model", "coroutine", "--stack", "pooled"}},
      {"coroutine_offload", {"--model", "coroutine", "--offload-cpu"}},
      {"evented", {"--model", "evented"}},
      {"evented_poll", {"--model", "evented", "--poller", "poll"}},
      {"evented_select", {"--model", "evented", "--poller", "select"}},
      {"evented_loops2", {"--model", "evented", "--loops", "2"}},
      {"evented_offload", {"--model", "evented", "--offload-cpu"}},
#ifdef SHOOTOUT_HAVE_URING
      {"uring", {"--model", "uring"}},
      {"uring_loops2", {"--model", "uring", "--loops", "2"}},
      {"uring_offload", {"--model", "uring", "--offload-cpu"}},
#endif
  };
  return variants;
}

// One variant per model and per poller backend: for the heavy suites (100,000 connections),
// where every flag combination would only repeat the same code path.
inline std::vector<Variant> one_per_model_and_poller() {
  std::vector<Variant> out;
  for (const auto& v : all_variants())
    if (v.name == "threaded" || v.name == "threaded_pool" || v.name == "forked" ||
        v.name == "forked_prefork" || v.name == "coroutine" || v.name == "evented" ||
        v.name == "evented_poll" || v.name == "evented_select" || v.name == "uring")
      out.push_back(v);
  return out;
}

// Why this machine cannot run the variant's model, or "" if it can. A test of such a variant
// skips with this reason (GTEST_SKIP() << why): io_uring may be disabled by the kernel
// (kernel.io_uring_disabled) or by a seccomp profile.
inline std::string unavailable(const Variant& v) {
#ifdef SHOOTOUT_HAVE_URING
  if (v.args.size() >= 2 && v.args[1] == "uring") return uring_unavailable();
#endif
  (void)v;
  return {};
}

inline std::string variant_name(const ::testing::TestParamInfo<Variant>& info) {
  return info.param.name;
}

}  // namespace shootout::test
