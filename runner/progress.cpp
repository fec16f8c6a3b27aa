#include "progress.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace shootout::runner {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
std::string duration_text(double s) {
  s = std::max(0.0, s);
  int m = static_cast<int>(s) / 60;
  return m ? fmt::format("{}m{:02d}s", m, static_cast<int>(s) % 60)
           : fmt::format("{}s", static_cast<int>(s));
}
}  // namespace

Progress::Progress(int total, double planned_total_s, bool tty, std::FILE* out)
    : out_(out),
      tty_(tty),
      total_(total),
      planned_total_s_(planned_total_s),
      started_(std::chrono::steady_clock::now()),
      point_started_(started_) {
  if (tty_) thread_ = std::thread([this] { ticker(); });
}

Progress::~Progress() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (tty_) fmt::print(out_, "\n");
}

std::string Progress::eta_text() {
  // Time left = planned time left x (actual / planned so far), never less than the plan of
  // the current point's remainder.
  double ratio = planned_done_s_ > 0 ? std::clamp(actual_done_s_ / planned_done_s_, 0.3, 5.0) : 1.0;
  double left_plan = planned_total_s_ - planned_done_s_ - planned_current_s_;
  double current_left = std::max(0.0, planned_current_s_ * ratio - seconds_since(point_started_));
  return duration_text(std::max(0.0, left_plan) * ratio + current_left);
}

void Progress::draw_locked() {
  if (!tty_) return;
  constexpr int width = 24;
  int filled = total_ ? done_ * width / total_ : width;
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(width, '-');
  std::string line = fmt::format("[{}] {}/{} {} {}  elapsed {}  ETA {}", bar, done_, total_, label_,
                                 phase_, duration_text(seconds_since(started_)), eta_text());
  if (line.size() > 110) line.resize(110);
  fmt::print(out_, "\r\033[K{}", line);
  std::fflush(out_);
}

void Progress::ticker() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    draw_locked();
    wake_.wait_for(lock, std::chrono::milliseconds(500));
  }
}

void Progress::begin(const std::string& label, double planned_s) {
  std::lock_guard lock(mutex_);
  label_ = label;
  phase_ = "starting";
  planned_current_s_ = planned_s;
  point_started_ = std::chrono::steady_clock::now();
  if (!tty_) fmt::print(out_, "[{}/{}] {} (ETA {})\n", done_ + 1, total_, label_, eta_text());
  draw_locked();
  std::fflush(out_);
}

void Progress::phase(const std::string& name) {
  std::lock_guard lock(mutex_);
  phase_ = name;
  draw_locked();
}

void Progress::end(const std::string& outcome) {
  std::lock_guard lock(mutex_);
  ++done_;
  planned_done_s_ += planned_current_s_;
  actual_done_s_ += seconds_since(point_started_);
  planned_current_s_ = 0;
  if (tty_) fmt::print(out_, "\r\033[K");
  fmt::print(out_, "[{}/{}] {}: {}\n", done_, total_, label_, outcome);
  phase_.clear();
  draw_locked();
  std::fflush(out_);
}

void Progress::forgo(int count, double planned_s) {
  std::lock_guard lock(mutex_);
  total_ -= count;
  planned_total_s_ -= planned_s;
}

void Progress::message(const std::string& line) {
  std::lock_guard lock(mutex_);
  if (tty_) fmt::print(out_, "\r\033[K");
  fmt::print(out_, "{}\n", line);
  draw_locked();
  std::fflush(out_);
}

}  // namespace shootout::runner
