// The Worker: one load thread's connections (connection.hpp) and what is decided around them
// (the opener, the timeout sweep, the window's end, the hard deadline and the closed loop's
// deferred sends), on either engine (engine.hpp).
#include "worker.hpp"

#include <algorithm>

#include "connection.hpp"

namespace shootout::load {

Worker::Worker(const Plan& plan, int first_index, int count) : plan_(plan) {
  conns_.reserve(static_cast<std::size_t>(count));
  stats.timeline.limit(plan.timeline_max);
  send_queue_.reserve(static_cast<std::size_t>(count));
  sending_.reserve(static_cast<std::size_t>(count));
  if (plan.mode == Mode::closed) {
    ramp_released_ = false;
    ramp_held_.reserve(static_cast<std::size_t>(count));
  }
  engine_ = make_engine(plan, *this, static_cast<std::size_t>(first_index),
                        static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i)
    conns_.push_back(std::make_unique<Connection>(*this, static_cast<std::size_t>(i),
                                                  static_cast<std::size_t>(first_index + i)));
  stats.per_second.assign(plan.seconds, 0);
  running_ = count;
  first_round_pending_ = count;
}

Worker::~Worker() = default;

int Worker::open_sockets(std::error_code& error) {
  int opened = 0;
  for (std::size_t i = 0; i < conns_.size(); ++i) {
    if (!engine_->open(i, error)) return opened;
    ++opened;
  }
  return opened;
}

void Worker::run() {
  // From here on this thread owns the Worker and its connections (checked in builds that
  // check threads: common/owner_thread.hpp).
  owner_.bind();
  if (conns_.empty()) return;
  engine_->begin();
  open_due();
  arm_sweep();
  // Closed and rate mode: the main thread says when the window ends (end_window_at). Idle
  // mode: the hard deadline now; start_final_round() brings it forward.
  if (plan_.mode == Mode::idle) arm_deadline(plan_.deadline);
  engine_->run();
  // Normally every connection has finished; after the hard deadline some have not. Close
  // them, and let the engine wait until nothing of theirs is left in flight.
  for (auto& c : conns_) c->shutdown();
  for (int t = 0; t < kWorkerTimers; ++t) engine_->cancel_timer(static_cast<WorkerTimer>(t));
  engine_->drain();
  stats.engine = engine_->counts();
}

void Worker::on_timer(WorkerTimer which) {
  owner_.check("Worker::on_timer");
  switch (which) {
    case WorkerTimer::opener:
      return open_due();
    case WorkerTimer::sweep:
      return sweep();
    case WorkerTimer::window_end:
      return on_end();
    case WorkerTimer::deadline:
      return on_deadline();
  }
}

// Opens the connections that are due (all of them without --connect-rate); the opener timer
// brings it back for the next one. At most kOpenBatch per call: when more are due the timer
// is armed for now, so the loop serves the connections already open (their responses, the
// timeout sweep, the window's end) between batches. A connect() can cost milliseconds: Apache
// prefork's 23,615 children all poll its one listener, and on loopback each connection's
// wake-up of all of them runs in the connecting thread's softirq (perf, 2026-12-04: 85% of the
// load thread's time). Opening 16,000 due connections in one call then kept the loop from
// everything else for minutes, past the run's deadline and the runner's bound.
void Worker::open_due() {
  owner_.check("Worker::open_due");
  if (stopping_) return;
  constexpr int kOpenBatch = 64;
  const auto now = Clock::now();
  for (int opened = 0; next_open_ < conns_.size(); ++opened) {
    const auto due = plan_.start + plan_.connect_interval * static_cast<long>(next_open_);
    if (plan_.connect_interval.count() > 0 && due > now)
      return engine_->arm_timer(WorkerTimer::opener, due);
    if (opened == kOpenBatch) return engine_->arm_timer(WorkerTimer::opener, now);
    conns_[next_open_++]->start();
  }
}

// The timeout sweep: one timer per thread instead of one per request.
void Worker::arm_sweep() {
  owner_.check("Worker::arm_sweep");
  const auto period = std::min<Clock::duration>(plan_.timeout / 4, std::chrono::milliseconds(100));
  engine_->arm_timer(WorkerTimer::sweep, Clock::now() + period);
}

void Worker::sweep() {
  if (running_ == 0) return;
  const auto now = Clock::now();
  for (auto& c : conns_) c->check_timeout(now);
  if (running_ > 0) arm_sweep();
}

// The window is over: connections without a response due finish now, the others after it
// (bounded by the timeout sweep); past the hard deadline the loop is stopped.
void Worker::on_end() {
  owner_.check("Worker::on_end");
  stopping_ = true;
  engine_->cancel_timer(WorkerTimer::opener);
  for (auto& c : conns_) c->stop();
  if (running_ == 0) return;
  arm_deadline(Clock::now() + plan_.timeout + std::chrono::seconds(1));
}

void Worker::end_window_at(Clock::time_point to) {
  end_at_.store(to.time_since_epoch().count(), std::memory_order_release);
  engine_->wake();
}

void Worker::release_ramp() {
  release_asked_.store(true, std::memory_order_release);
  engine_->wake();
}

void Worker::start_final_round() {
  final_round_asked_.store(true, std::memory_order_release);
  engine_->wake();
}

// The main thread's messages. Each is acted on once; a wake-up that finds nothing new (two
// messages, one wake-up each, the first of which took both) does nothing.
void Worker::on_wake() {
  owner_.check("Worker::on_wake");
  if (running_ == 0) return;
  if (const Clock::rep to = end_at_.load(std::memory_order_acquire); to != kNoEnd && !end_taken_) {
    end_taken_ = true;
    engine_->arm_timer(WorkerTimer::window_end, Clock::time_point(Clock::duration(to)));
  }
  if (final_round_asked_.load(std::memory_order_acquire) && !final_round_taken_) {
    final_round_taken_ = true;
    for (auto& c : conns_) c->final_round();
    // Each second request is bounded by the sweep's timeout; the deadline is the backstop.
    arm_deadline(std::min(plan_.deadline, Clock::now() + plan_.timeout + std::chrono::seconds(1)));
  }
  if (!ramp_released_ && release_asked_.load(std::memory_order_acquire)) {
    ramp_released_ = true;
    for (const auto& [conn, gen] : ramp_held_) defer_send(*conn, gen);
    ramp_held_.clear();
    ramp_held_.shrink_to_fit();
  }
}

// Past `at` nothing is waited for any more: every connection still running is counted as
// failed and finished, and the engine stops (the loop never waits without a bound).
void Worker::arm_deadline(Clock::time_point at) {
  owner_.check("Worker::arm_deadline");
  engine_->arm_timer(WorkerTimer::deadline, at);
}

void Worker::on_deadline() {
  for (auto& c : conns_) c->expire();
  engine_->stop();
}

// Closed loop: the next batch of a connection whose answers have all arrived is not written
// at once but queued, and the whole queue is written once the engine has handled every
// completion of the same wake-up (Asio: a posted handler, run after the other handlers of the
// same epoll_wait; io_uring: after the batch of completions, so the sends go to the kernel
// together in the next io_uring_enter). So the server finds many requests ready per wake-up
// instead of one (what wrk does by waiting for writability before each write). Measured
// against nginx at 100 connections: nginx made about twice as many epoll_wait calls per
// request when every answer was followed by its send at once (docs/LOADGEN.md).
void Worker::defer_send(Connection& c, std::uint64_t gen) {
  owner_.check("Worker::defer_send");
  send_queue_.push_back({&c, gen});
  if (flush_requested_) return;
  flush_requested_ = true;
  engine_->flush_after_batch();
}

void Worker::hold_for_ramp(Connection& c, std::uint64_t gen) {
  owner_.check("Worker::hold_for_ramp");
  ramp_held_.push_back({&c, gen});
}

void Worker::flush_sends() {
  owner_.check("Worker::flush_sends");
  flush_requested_ = false;
  // Swap, so a connection queued while flushing (it cannot be, but cheaply safe) waits for
  // the next flush; both vectors keep their capacity, so nothing is allocated.
  sending_.swap(send_queue_);
  for (const auto& [conn, gen] : sending_) conn->send_deferred(gen);
  sending_.clear();
}

void Worker::connection_finished() {
  owner_.check("Worker::connection_finished");
  if (--running_ > 0) return;
  for (int t = 0; t < kWorkerTimers; ++t) engine_->cancel_timer(static_cast<WorkerTimer>(t));
}

void Worker::first_round_step() {
  owner_.check("Worker::first_round_step");
  if (--first_round_pending_ == 0) first_round_done_.store(true, std::memory_order_release);
}

}  // namespace shootout::load
