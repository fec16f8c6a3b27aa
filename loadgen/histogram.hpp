#pragma once
// Latency histogram: 1 µs to 60 s at three significant digits, on Boost.Histogram.
//
// The axis is logarithmic with 18,000 bins, so each bin is 0.1 % wide: any recorded value is
// reported within one part in a thousand (the "three significant digits" of HdrHistogram),
// from 1 µs up to 60 s. Values below 1 µs land in the underflow bin, above 60 s in the
// overflow bin; min, max, mean and standard deviation are kept exactly on the side.
//
// Threads: one histogram per load thread, filled only by that thread; merged with add() on
// the main thread after the load threads have stopped.
#include <boost/histogram.hpp>
#include <cstdint>
#include <span>
#include <vector>

namespace shootout::load {

struct Percentiles {
  std::uint64_t count = 0;
  double min_us = 0, mean_us = 0, stdev_us = 0, max_us = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, p9999_us = 0;
};

class LatencyHistogram {
 public:
  LatencyHistogram();
  // Hot path: no allocation.
  void record(double us) {
    hist_(us);
    ++count_;
    sum_ += us;
    sum_sq_ += us * us;
    if (us < min_) min_ = us;
    if (us > max_) max_ = us;
  }
  void add(const LatencyHistogram& other);
  void clear();
  std::uint64_t count() const { return count_; }
  // The value at quantile q (0..1): the upper edge of the bin that holds it, clamped to the
  // exact [min, max], so a percentile is never below the smallest latency actually seen.
  double quantile(double q) const;
  Percentiles summary() const;

  static constexpr double kLowestUs = 1.0;
  static constexpr double kHighestUs = 60e6;
  static constexpr unsigned kBins = 18'000;

  // The raw state, for an exact merge across processes (loadgen/group.hpp): the bin counts in
  // storage order (underflow, the kBins bins, overflow: kStorageBins of them) and the exact
  // side figures. Summing the bins (and count, sum, sum_sq) of several histograms and taking
  // the min of min and the max of max gives the histogram of all their samples, so its
  // percentiles are those of every sample, not an average of percentiles.
  static constexpr unsigned kStorageBins = kBins + 2;
  struct Raw {
    std::uint64_t count = 0;
    double sum = 0, sum_sq = 0;
    double min = 1e300, max = 0;  // as kept: min is 1e300 when empty
  };
  void export_bins(std::span<std::uint64_t> out) const;  // out.size() == kStorageBins
  Raw raw() const { return {count_, sum_, sum_sq_, min_, max_}; }
  // Replaces this histogram's state by `bins` (kStorageBins counts) and `raw`.
  void import_raw(std::span<const std::uint64_t> bins, const Raw& raw);

 private:
  using Axis = boost::histogram::axis::regular<double, boost::histogram::axis::transform::log>;
  using Hist =
      boost::histogram::histogram<std::tuple<Axis>, boost::histogram::dense_storage<std::uint64_t>>;
  Hist hist_;
  std::uint64_t count_ = 0;
  double sum_ = 0, sum_sq_ = 0;
  double min_ = 1e300, max_ = 0;
};

}  // namespace shootout::load
