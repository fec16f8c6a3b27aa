#include "histogram.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace shootout::load {

namespace bh = boost::histogram;

LatencyHistogram::LatencyHistogram()
    : hist_(bh::make_histogram_with(bh::dense_storage<std::uint64_t>(),
                                    Axis(kBins, kLowestUs, kHighestUs))) {}

void LatencyHistogram::add(const LatencyHistogram& other) {
  hist_ += other.hist_;
  count_ += other.count_;
  sum_ += other.sum_;
  sum_sq_ += other.sum_sq_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void LatencyHistogram::clear() {
  hist_.reset();
  count_ = 0;
  sum_ = sum_sq_ = 0;
  min_ = 1e300;
  max_ = 0;
}

void LatencyHistogram::export_bins(std::span<std::uint64_t> out) const {
  if (out.size() != kStorageBins || hist_.size() != kStorageBins)
    throw std::invalid_argument("LatencyHistogram::export_bins: wrong size");
  std::copy(hist_.begin(), hist_.end(), out.begin());
}

void LatencyHistogram::import_raw(std::span<const std::uint64_t> bins, const Raw& raw) {
  if (bins.size() != kStorageBins || hist_.size() != kStorageBins)
    throw std::invalid_argument("LatencyHistogram::import_raw: wrong size");
  std::copy(bins.begin(), bins.end(), hist_.begin());
  count_ = raw.count;
  sum_ = raw.sum;
  sum_sq_ = raw.sum_sq;
  min_ = raw.min;
  max_ = raw.max;
}

double LatencyHistogram::quantile(double q) const {
  if (count_ == 0) return 0;
  // The rank of the wanted sample, 1-based: the smallest rank r with r >= q * count.
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  // coverage::all walks underflow first and overflow last.
  for (auto&& bin : bh::indexed(hist_, bh::coverage::all)) {
    seen += static_cast<std::uint64_t>(*bin);
    if (seen < rank) continue;
    const double upper = bin.bin().upper();
    return std::clamp(std::isfinite(upper) ? upper : max_, min_, max_);
  }
  return max_;
}

Percentiles LatencyHistogram::summary() const {
  Percentiles p;
  p.count = count_;
  if (count_ == 0) return p;
  const double n = static_cast<double>(count_);
  p.min_us = min_;
  p.max_us = max_;
  p.mean_us = sum_ / n;
  p.stdev_us = std::sqrt(std::max(0.0, sum_sq_ / n - p.mean_us * p.mean_us));
  p.p50_us = quantile(0.50);
  p.p90_us = quantile(0.90);
  p.p99_us = quantile(0.99);
  p.p999_us = quantile(0.999);
  p.p9999_us = quantile(0.9999);
  return p;
}

}  // namespace shootout::load
