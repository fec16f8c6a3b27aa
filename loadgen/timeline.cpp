#include "timeline.hpp"

#include <algorithm>

namespace shootout::load {

void Timeline::merge(const Timeline& other) {
  if (max_ == 0) max_ = other.max_;
  const auto middle = static_cast<std::ptrdiff_t>(entries_.size());
  entries_.insert(entries_.end(), other.entries_.begin(), other.entries_.end());
  std::inplace_merge(
      entries_.begin(), entries_.begin() + middle, entries_.end(),
      [](const TimelineEntry& a, const TimelineEntry& b) { return a.done_ns < b.done_ns; });
  dropped_ += other.dropped_;
}

}  // namespace shootout::load
