// merge_ranks(): a few collectives over flat arrays (merge.hpp says what is merged how).
#include "merge.hpp"

#include <fmt/format.h>
#include <sched.h>

#include <nlohmann/json.hpp>

namespace shootout::load {

namespace {

using Op = LoadGroup::Op;
constexpr std::size_t kBins = LatencyHistogram::kStorageBins;

// The u64 counters summed, in one array: the fixed fields, the two histograms' bins, then the
// per-second series.
struct Counters {
  std::vector<std::uint64_t> v;
  explicit Counters(const LoadResult& r) {
    const ErrorCounts& e = r.errors;
    v = {r.requests,    r.bytes_read, r.responses_total, r.sent_total,
         r.idle_opened, r.idle_alive, r.ramp_reached,    r.connections_in_window,
         e.connect,     e.read,       e.write,           e.timeout,
         e.status,      e.body,       r.latency.count(), r.latency_uncorrected.count()};
    fixed = v.size();
    v.resize(fixed + 2 * kBins + r.per_second.size());
    r.latency.export_bins({v.data() + fixed, kBins});
    r.latency_uncorrected.export_bins({v.data() + fixed + kBins, kBins});
    std::copy(r.per_second.begin(), r.per_second.end(), v.begin() + fixed + 2 * kBins);
  }
  std::size_t fixed = 0;
};

// This process's CPU affinity as a list: "1", "0-3,6".
std::string affinity_text() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return "";
  std::string out;
  for (int i = 0; i < CPU_SETSIZE; ++i) {
    if (!CPU_ISSET(i, &set)) continue;
    int j = i;
    while (j + 1 < CPU_SETSIZE && CPU_ISSET(j + 1, &set)) ++j;
    out += fmt::format("{}{}", out.empty() ? "" : ",",
                       i == j ? fmt::format("{}", i) : fmt::format("{}-{}", i, j));
    i = j;
  }
  return out;
}

}  // namespace

void merge_ranks(LoadResult& r, LoadGroup& group, RankSummary mine) {
  mine.requests = r.requests;
  mine.responses_total = r.responses_total;
  mine.errors = r.errors.total();
  mine.cpus = affinity_text();

  // Every rank sends arrays of one length: the per-second series are as long as the longest.
  std::uint64_t seconds[1] = {r.per_second.size()};
  group.all_reduce(Op::max, seconds);
  r.per_second.resize(seconds[0], 0);

  Counters c(r);
  group.all_reduce(Op::sum, c.v);
  const auto lat = r.latency.raw(), unc = r.latency_uncorrected.raw();
  double sums[] = {r.client_utime_us, r.client_stime_us,      lat.sum, lat.sum_sq, unc.sum,
                   unc.sum_sq,        r.client_sampler_cpu_us};
  group.all_reduce(Op::sum, sums);
  double mins[] = {lat.min, unc.min, r.client_cpu_from_s};
  group.all_reduce(Op::min, mins);
  double maxes[] = {lat.max, unc.max, r.ramp_s, r.elapsed_s, r.settle_s, r.client_cpu_to_s};
  group.all_reduce(Op::max, maxes);

  const std::uint64_t* v = c.v.data();
  r.requests = v[0];
  r.bytes_read = v[1];
  r.responses_total = v[2];
  r.sent_total = v[3];
  r.idle_opened = v[4];
  r.idle_alive = v[5];
  r.ramp_reached = v[6];
  r.connections_in_window = v[7];
  r.errors = {v[8], v[9], v[10], v[11], v[12], v[13]};
  r.latency.import_raw({v + c.fixed, kBins}, {v[14], sums[2], sums[3], mins[0], maxes[0]});
  r.latency_uncorrected.import_raw({v + c.fixed + kBins, kBins},
                                   {v[15], sums[4], sums[5], mins[1], maxes[1]});
  std::copy(v + c.fixed + 2 * kBins, v + c.v.size(), r.per_second.begin());
  r.client_utime_us = sums[0];
  r.client_stime_us = sums[1];
  r.client_sampler_cpu_us = sums[6];
  r.ramp_s = maxes[2];
  r.elapsed_s = maxes[3];
  r.settle_s = maxes[4];
  r.client_cpu_from_s = mins[2];
  r.client_cpu_to_s = maxes[5];
  r.ranks = group.size();

  const nlohmann::json line = {{"rank", mine.rank},
                               {"host", mine.host},
                               {"connections", mine.connections},
                               {"requests", mine.requests},
                               {"responses_total", mine.responses_total},
                               {"errors", mine.errors},
                               {"cpus", mine.cpus}};
  r.per_rank.clear();
  for (const std::string& text : group.gather(line.dump())) {
    const auto j = nlohmann::json::parse(text);
    r.per_rank.push_back({j.at("rank").get<int>(), j.at("host").get<std::string>(),
                          j.at("connections").get<std::uint64_t>(),
                          j.at("requests").get<std::uint64_t>(),
                          j.at("responses_total").get<std::uint64_t>(),
                          j.at("errors").get<std::uint64_t>(), j.at("cpus").get<std::string>()});
  }
}

}  // namespace shootout::load
