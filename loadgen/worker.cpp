// The Worker: one load thread's io_context and the connections it drives (connection.hpp),
// the timers around them (the opener, the timeout sweep, the window's end and the hard
// deadline) and the closed loop's deferred sends.
#include "worker.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "connection.hpp"

namespace shootout::load {

namespace asio = boost::asio;

Worker::Worker(const Plan& plan, int first_index, int count)
    : plan_(plan),
      ioc_(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO),
      sweep_(ioc_),
      end_(ioc_),
      opener_(ioc_) {
  conns_.reserve(static_cast<std::size_t>(count));
  stats.timeline.limit(plan.timeline_max);
  send_queue_.reserve(static_cast<std::size_t>(count));
  sending_.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i)
    conns_.push_back(
        std::make_unique<Connection>(*this, static_cast<std::size_t>(first_index + i)));
  stats.per_second.assign(plan.seconds, 0);
  running_ = count;
  first_round_pending_ = count;
}

Worker::~Worker() = default;

int Worker::open_sockets(boost::system::error_code& error) {
  int opened = 0;
  for (auto& c : conns_) {
    if (!c->open(error)) return opened;
    ++opened;
  }
  return opened;
}

void Worker::run() {
  // From here on this thread owns the Worker and its connections (checked in builds that
  // check threads: common/owner_thread.hpp).
  owner_.bind();
  if (conns_.empty()) return;
  arm_opener();
  arm_sweep();
  // Closed and rate mode: the main thread says when the window ends (end_window_at). Idle
  // mode: the hard deadline now; start_final_round() brings it forward.
  if (plan_.mode == Mode::idle) arm_deadline(plan_.deadline);
  ioc_.run();
  // Normally every connection has finished; after the hard deadline some have not. Close
  // them and let their cancelled handlers run, so no operation outlives its memory.
  for (auto& c : conns_) c->shutdown();
  sweep_.cancel();
  end_.cancel();
  opener_.cancel();
  ioc_.restart();
  ioc_.run();
}

// Opens the connections that are due (all of them without --connect-rate), then re-arms.
void Worker::arm_opener() {
  owner_.check("Worker::arm_opener");
  const auto now = Clock::now();
  while (next_open_ < conns_.size()) {
    const auto due = plan_.start + plan_.connect_interval * static_cast<long>(next_open_);
    if (plan_.connect_interval.count() > 0 && due > now) {
      opener_.expires_at(due);
      opener_.async_wait([this](boost::system::error_code ec) {
        if (!ec) arm_opener();
      });
      return;
    }
    conns_[next_open_++]->start();
  }
}

// The timeout sweep: one timer per thread instead of one per request.
void Worker::arm_sweep() {
  owner_.check("Worker::arm_sweep");
  const auto period = std::min<Clock::duration>(plan_.timeout / 4, std::chrono::milliseconds(100));
  sweep_.expires_after(period);
  sweep_.async_wait([this](boost::system::error_code ec) {
    if (ec || running_ == 0) return;
    const auto now = Clock::now();
    for (auto& c : conns_) c->check_timeout(now);
    if (running_ > 0) arm_sweep();
  });
}

// The window is over: connections without a response due finish now, the others after it
// (bounded by the timeout sweep); past the hard deadline the loop is stopped.
void Worker::on_end() {
  owner_.check("Worker::on_end");
  stopping_ = true;
  opener_.cancel();
  for (auto& c : conns_) c->stop();
  if (running_ == 0) return;
  arm_deadline(Clock::now() + plan_.timeout + std::chrono::seconds(1));
}

void Worker::end_window_at(Clock::time_point to) {
  asio::post(ioc_, [this, to] {
    if (running_ == 0) return;
    end_.expires_at(to);
    end_.async_wait([this](boost::system::error_code ec) {
      if (!ec) on_end();
    });
  });
}

// Past `at` nothing is waited for any more: every connection still running is counted as
// failed and finished, so run() returns (the loop never waits without a bound).
void Worker::arm_deadline(Clock::time_point at) {
  owner_.check("Worker::arm_deadline");
  end_.expires_at(at);
  end_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    for (auto& c : conns_) c->expire();
    ioc_.stop();
  });
}

// Closed loop: the next batch of a connection whose answers have all arrived is not written
// at once but queued, and the whole queue is written by one posted handler, which Asio runs
// after the other completions of the same epoll_wait. So the server finds many requests
// ready per wake-up instead of one (what wrk does by waiting for writability before each
// write). Measured against nginx at 100 connections: nginx made about twice as many
// epoll_wait calls per request when every answer was followed by its send at once
// (docs/LOADGEN.md).
void Worker::defer_send(Connection& c, std::uint64_t gen) {
  owner_.check("Worker::defer_send");
  send_queue_.push_back({&c, gen});
  if (flush_posted_) return;
  flush_posted_ = true;
  asio::post(ioc_, bind_slot(flush_slot_, [this] { flush_sends(); }));
}

void Worker::flush_sends() {
  owner_.check("Worker::flush_sends");
  flush_posted_ = false;
  // Swap, so a connection queued while flushing (it cannot be, but cheaply safe) waits for
  // the next flush; both vectors keep their capacity, so nothing is allocated.
  sending_.swap(send_queue_);
  for (const auto& [conn, gen] : sending_) conn->send_deferred(gen);
  sending_.clear();
}

void Worker::connection_finished() {
  owner_.check("Worker::connection_finished");
  if (--running_ > 0) return;
  sweep_.cancel();
  end_.cancel();
  opener_.cancel();
}

void Worker::first_round_step() {
  owner_.check("Worker::first_round_step");
  if (--first_round_pending_ == 0) first_round_done_.store(true, std::memory_order_release);
}

void Worker::start_final_round() {
  asio::post(ioc_, [this] {
    if (running_ == 0) return;
    for (auto& c : conns_) c->final_round();
    // Each second request is bounded by the sweep's timeout; the deadline is the backstop.
    arm_deadline(std::min(plan_.deadline, Clock::now() + plan_.timeout + std::chrono::seconds(1)));
  });
}

}  // namespace shootout::load
