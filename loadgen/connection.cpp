// The hot path. Per request, a connection in closed mode asks its engine to send the whole
// batch (in closed loop the send is deferred to one flush per batch of completions,
// Worker::defer_send()), is handed the bytes received, and runs the probe's scan over them
// (HTTP: Beast's parser, re-made in place). The probe gives HTTP's and echo's batches as views
// of memory it keeps, and the engines keep their per-connection memory in slots, so nothing is
// allocated once the connections are up. What each engine does per request in system calls is
// in docs/LOADGEN.md ("Two engines").
#include "connection.hpp"

#include <algorithm>
#include <chrono>
#include <span>

namespace shootout::load {

Connection::Connection(Worker& w, std::size_t slot, std::size_t index)
    : w_(w),
      plan_(w.plan_),
      io_(w.engine()),
      slot_(slot),
      index_(index),
      probe_(plan_.probe->new_session(index)) {}

void Connection::owned(const char* what) const { w_.owner_.check(what); }

void Connection::start() {
  owned("Connection::start");
  if (state_ != State::pending) return;  // already finished by the hard deadline
  if (paced()) intended_ = plan_.start + plan_.rate_step * static_cast<long>(index_);
  connect();
}

void Connection::stop() {
  owned("Connection::stop");
  if (state_ == State::finished) return;
  if (outstanding_ == 0 || state_ != State::active) finish();
}

void Connection::final_round() {
  owned("Connection::final_round");
  if (state_ != State::held) return;
  state_ = State::active;
  send();
}

void Connection::expire() {
  owned("Connection::expire");
  if (state_ == State::finished) return;
  if (state_ == State::pending || state_ == State::connecting)
    count(ErrorKind::connect);
  else if (state_ == State::held || outstanding_ > 0)
    count(ErrorKind::timeout);
  give_up();
}

void Connection::check_timeout(Clock::time_point now) {
  owned("Connection::check_timeout");
  // Idle mode's first round, and closed mode's first answer of each connection (the ramp),
  // wait for the server as long as the plan allows: a connection still in the backlog, or on
  // its way to a new thread or process, is not lost.
  const bool opening = taking_on();
  auto late = [&](Clock::time_point since) {
    const Clock::time_point due = since + plan_.timeout;
    return now > (opening ? std::max(due, plan_.first_round_by) : due);
  };
  if (state_ == State::connecting && late(connect_at_))
    fail(ErrorKind::connect);
  else if (state_ == State::active && outstanding_ > 0 && late(sent_at_))
    fail(ErrorKind::timeout);
}

void Connection::shutdown() {
  owned("Connection::shutdown");
  state_ = State::finished;
  ++gen_;
  io_.close(slot_);
}

void Connection::send_deferred(std::uint64_t gen) {
  owned("Connection::send_deferred");
  if (gen != gen_ || state_ != State::active || outstanding_ > 0) return;
  if (w_.stopping_) return finish();
  send();
}

void Connection::connect() {
  if (!io_.is_open(slot_)) {
    std::error_code ec;
    if (!io_.open(slot_, ec)) return fail(ErrorKind::connect);
  }
  state_ = State::connecting;
  connect_at_ = Clock::now();
  io_.connect(slot_);
}

void Connection::on_connect(bool ok) {
  owned("Connection::on_connect");
  if (!ok) return fail(ErrorKind::connect);
  state_ = State::active;
  io_.start_reading(slot_);
  if (w_.stopping_) return finish();
  if (paced())
    schedule_send();
  else
    send();
}

// Rate mode: the next request goes at its intended time, or at once if that has passed.
void Connection::schedule_send() {
  if (Clock::now() >= intended_) return send();
  timer_for_ = TimerFor::send;
  io_.arm_timer(slot_, intended_);
}

void Connection::on_timer() {
  owned("Connection::on_timer");
  if (timer_for_ == TimerFor::reconnect) return connect();
  send();
}

// Writes one batch; the engine sends it all, or calls back on_send_error().
void Connection::send() {
  outstanding_ = requests_per_send();
  const std::string_view batch = probe_->batch(next_request_, outstanding_, scratch_);
  next_request_ += static_cast<std::uint64_t>(outstanding_);
  sent_at_ = Clock::now();
  w_.stats.sent_total += static_cast<std::uint64_t>(outstanding_);
  io_.send(slot_, batch);
}

void Connection::on_send_error() {
  owned("Connection::on_send_error");
  fail(ErrorKind::write);
}

void Connection::on_data(std::string_view bytes) {
  owned("Connection::on_data");
  consume(bytes);
}

void Connection::on_read_end(bool eof) {
  owned("Connection::on_read_end");
  // A response delimited by the end of the stream (HTTP without Content-Length) completes at
  // EOF; the probe knows.
  if (eof && outstanding_ > 0) {
    const Scan s = probe_->at_eof();
    if (s.kind == Scan::Kind::done) return response_done(s.error, false, s.length);
  }
  fail(ErrorKind::read);
}

// The probe consumes what it can; what it leaves (a header split across reads) is kept in
// partial_ and given again with the next bytes. Bytes past the last response asked for, or more
// than kMaxUnconsumed left unconsumed, are a body error.
void Connection::consume(std::string_view data) {
  std::string_view in = data;
  if (!partial_.empty()) {
    partial_.append(data);
    in = partial_;
  }
  const std::uint64_t gen = gen_;
  while (!in.empty()) {
    if (outstanding_ == 0) return fail(ErrorKind::body);  // bytes nobody asked for
    const Scan s = probe_->scan(in);
    if (s.kind == Scan::Kind::bad || s.used > in.size()) return fail(ErrorKind::body);
    in.remove_prefix(s.used);
    if (s.kind == Scan::Kind::more) break;
    response_done(s.error, !s.closes, s.length);
    if (gen != gen_ || state_ == State::finished) return;
  }
  if (in.size() > kMaxUnconsumed) return fail(ErrorKind::body);
  keep_partial(in);
}

void Connection::keep_partial(std::string_view rest) {
  if (rest.empty()) {
    partial_.clear();
  } else if (rest.data() >= partial_.data() && rest.data() < partial_.data() + partial_.size()) {
    partial_.erase(0, static_cast<std::size_t>(rest.data() - partial_.data()));
  } else {
    partial_.assign(rest);
  }
}

void Connection::record(bool error, std::uint64_t bytes, Clock::time_point now) {
  WorkerStats& s = w_.stats;
  ++s.responses_total;
  if (!answered_) {
    answered_ = true;
    w_.answered_once_.fetch_add(1, std::memory_order_relaxed);
  } else if (!settled_ && w_.ramp_released_) {
    settled_ = true;
    w_.settled_.fetch_add(1, std::memory_order_relaxed);
  }
  const Clock::time_point from = plan_.window->from_time();
  const bool in_window = now >= from && now < plan_.window->to_time();
  if (error) ++s.errors.status;
  if (!in_window) return;
  if (!served_in_window_) {
    served_in_window_ = true;
    ++s.connections_in_window;
  }
  ++s.requests;
  s.bytes_read += bytes;
  const auto second = static_cast<std::size_t>((now - from) / std::chrono::seconds(1));
  if (second < s.per_second.size()) ++s.per_second[second];
  const double actual = std::chrono::duration<double, std::micro>(now - sent_at_).count();
  if (paced()) {
    s.latency.record(std::chrono::duration<double, std::micro>(now - intended_).count());
    s.uncorrected.record(actual);
  } else {
    s.latency.record(actual);
  }
  if (s.timeline.on())
    s.timeline.add(
        now, paced() ? (now - intended_) / std::chrono::duration<double, std::micro>(1) : actual,
        actual);
}

void Connection::response_done(bool error, bool keep_alive, std::uint64_t bytes) {
  record(error, bytes, Clock::now());
  --outstanding_;
  if (outstanding_ > 0) {
    if (keep_alive) return;
    // The server closes after this response: the rest of the batch will never be answered.
    ++w_.stats.errors.read;
    if (reopens()) return reconnect();
    return finish();
  }
  next_after_response(keep_alive);
}

void Connection::next_after_response(bool keep_alive) {
  if (holds_idle()) return idle_step();
  if (w_.stopping_) return finish();
  if (paced()) next_slot();
  if (!keep_alive) return reconnect();
  if (paced()) return schedule_send();
  if (w_.ramp_holds()) return w_.hold_for_ramp(*this, gen_);
  w_.defer_send(*this, gen_);
}

void Connection::idle_step() {
  if (state_ == State::active && !second_round_) {
    ++w_.stats.idle_opened;
    state_ = State::held;
    second_round_ = true;
    w_.first_round_step();
    return;
  }
  ++w_.stats.idle_alive;
  finish();
}

// A per-connection failure: count it, close, and carry on.
void Connection::fail(ErrorKind kind) {
  if (state_ == State::finished) return;
  count(kind);
  if (holds_idle()) return give_up();
  if (w_.stopping_) return finish();
  if (kind == ErrorKind::connect) return reconnect_later();
  if (paced() && outstanding_ > 0) next_slot();
  reconnect();
}

void Connection::count(ErrorKind kind) {
  ErrorCounts& e = w_.stats.errors;
  switch (kind) {
    case ErrorKind::connect:
      ++e.connect;
      break;
    case ErrorKind::read:
      ++e.read;
      break;
    case ErrorKind::write:
      ++e.write;
      break;
    case ErrorKind::timeout:
      ++e.timeout;
      break;
    case ErrorKind::status:
      ++e.status;
      break;
    case ErrorKind::body:
      ++e.body;
      break;
  }
}

void Connection::close_socket() {
  ++gen_;
  io_.close(slot_);
  probe_->reset();
  partial_.clear();
  outstanding_ = 0;
  next_request_ = 0;
}

void Connection::reconnect() {
  close_socket();
  connect();
}

// After a failed connect, wait a little: a refusing server must not be hammered in a loop.
void Connection::reconnect_later() {
  close_socket();
  state_ = State::connecting;
  connect_at_ = Clock::now();
  timer_for_ = TimerFor::reconnect;
  io_.arm_timer(slot_, connect_at_ + std::chrono::milliseconds(10));
}

void Connection::finish() {
  if (state_ == State::finished) return;
  close_socket();
  state_ = State::finished;
  w_.connection_finished();
}

// Finishes a connection that will not be reopened (idle mode's losses, the hard deadline). In
// idle mode's first round that is also its part of the first round over.
void Connection::give_up() {
  const bool first_round = in_first_round();
  finish();
  if (first_round) w_.first_round_step();
}

}  // namespace shootout::load
