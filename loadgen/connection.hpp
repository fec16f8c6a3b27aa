#pragma once
// Internal to the load generator: one load connection, the state machine every Worker runs one
// of per connection it drives. One class for the three modes (closed, rate, idle; load.hpp) and
// every protocol and both engines: what differs between the modes is asked through the small
// named helpers in the private part (paced(), holds_idle(), in_first_round(), ...), not by
// comparing the mode at each use; what differs between protocols is its probe's
// (common/probe.hpp): the bytes to send and where a response ends; what differs between the
// engines (Asio's readiness, io_uring's completions) is behind the Worker's Engine
// (engine.hpp): the Connection asks it to open, connect, send, read, time and close, and it
// calls back on_connect, on_data, on_read_end, on_send_error and on_timer. It makes no system
// call itself.
//
//   pending --start (the opener reaches it)--> connecting
//   connecting --connected--> active (requests outstanding, or waiting for the next send)
//   active --response--> active | held (idle mode, after the first response) | finished
//   any --error--> counted; closed; reopened after a pause (closed/rate) or finished (idle)
//   any --the worker's hard deadline--> counted (connect or timeout); finished
//
// A pending connection has no operation in flight and no connect time: the timeout sweep
// leaves it alone (with --connect-rate most connections wait there for the opener).
//
// Closing the socket bumps the connection's generation number: a batch deferred for the
// previous socket (send_deferred) is then not sent. The engine keeps its own generation per
// slot, so nothing of a closed socket is called back.
//
// Ownership: its Worker owns it (and outlives it); it keeps a reference to the Worker and to
// the Worker's Plan. It owns its probe session, the batch being sent (until its socket closes:
// an engine may still be writing it), and the bytes the probe has not consumed yet (a split
// header); its socket and timer are the engine's, in the slot of its index in the Worker. It
// counts into the Worker's stats.
//
// Threads: it is built on the thread that builds its Worker, before the Worker's thread
// starts. Every other member, and every callback, runs on the Worker's thread (the one in the
// engine's run()); in builds that check threads (common/owner_thread.hpp) the public members
// abort when called on another thread once the Worker has started.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "worker.hpp"

namespace shootout::load {

class Connection {
 public:
  // `slot`: its index in the Worker (the engine's slot); `index`: the connection's global
  // index (its phase in rate mode's send schedule).
  Connection(Worker& w, std::size_t slot, std::size_t index);

  // The Worker's thread only.

  // First connect; rate mode also sets this connection's place in the send schedule.
  void start();
  // The run is over: finish now unless a response is still due (then after it, or timeout).
  void stop();
  // Idle mode: the hold is over, prove the connection still works.
  void final_round();
  // The worker's hard deadline has passed: whatever has not finished is counted as failed
  // (never opened or never connected: connect; a response or the final round due: timeout).
  void expire();
  // The timeout sweep: fails a connect or a response that is late at `now`.
  void check_timeout(Clock::time_point now);
  // After the loop has stopped: close the socket (the engine then drains what is in flight).
  void shutdown();
  bool finished() const { return state_ == State::finished; }
  // The worker's flush: sends the batch deferred by next_after_response(), unless the
  // connection has since been closed (generation changed) or the window has ended.
  void send_deferred(std::uint64_t gen);

  // The engine's callbacks (engine.hpp).
  void on_connect(bool ok);
  // Bytes received, in order. The connection may close (or finish) inside.
  void on_data(std::string_view bytes);
  // The stream ended: the server closed it (eof), or an error.
  void on_read_end(bool eof);
  void on_send_error();
  void on_timer();

 private:
  enum class State { pending, connecting, active, held, finished };
  enum class ErrorKind { connect, read, write, timeout, status, body };

  // What the mode and the protocol decide, named.
  // Rate mode: sends follow a schedule (intended_), one request at a time, and latency is
  // measured from the intended send time.
  bool paced() const { return plan_.mode == Mode::rate; }
  // Idle mode: one request, the hold, one more request; a lost connection is not reopened.
  bool holds_idle() const { return plan_.mode == Mode::idle; }
  // Idle mode, before the first response: the worker counts this connection's first round.
  bool in_first_round() const { return holds_idle() && !second_round_; }
  // Closed and idle mode, until the first response: the wait for the server is bounded by the
  // plan's first_round_by as well as by the timeout (it may still be taking connections on).
  bool taking_on() const { return !paced() && !answered_; }
  // Requests written per send: the pipeline (closed and idle), one (rate).
  int requests_per_send() const { return paced() ? 1 : plan_.pipeline; }
  // After an error or a closing server: closed and rate mode reopen, until the window ends.
  bool reopens() const { return !holds_idle() && !w_.stopping_; }
  // Rate mode: the slot of the request just answered (or lost) is over; the next one is due
  // one send interval later.
  void next_slot() { intended_ += plan_.send_interval; }
  // The Worker's owner-thread check, naming the member.
  void owned(const char* what) const;

  void connect();
  void schedule_send();
  void send();
  void consume(std::string_view data);
  void keep_partial(std::string_view rest);
  void record(bool error, std::uint64_t bytes, Clock::time_point now);
  void response_done(bool error, bool keep_alive, std::uint64_t bytes);
  void next_after_response(bool keep_alive);
  void idle_step();
  void fail(ErrorKind kind);
  void count(ErrorKind kind);
  void close_socket();
  void reconnect();
  void reconnect_later();
  void finish();
  void give_up();

  Worker& w_;
  const Plan& plan_;
  Engine& io_;
  const std::size_t slot_;   // in the Worker and its engine
  const std::size_t index_;  // global index: the phase of this connection in rate mode
  // What the engine's per-connection timer is armed for: rate mode's next send, or the pause
  // before reconnecting.
  enum class TimerFor : std::uint8_t { send, reconnect } timer_for_ = TimerFor::send;
  State state_ = State::pending;
  std::uint64_t gen_ = 0;
  int outstanding_ = 0;            // responses still due for the batch sent
  bool second_round_ = false;      // idle mode: the first response has arrived
  bool answered_ = false;          // a response has arrived (any time)
  bool settled_ = false;           // answered before the ramp's release and again after it
  bool served_in_window_ = false;  // a response has arrived inside the window
  Clock::time_point sent_at_{}, intended_{}, connect_at_{};
  std::unique_ptr<ProbeSession> probe_;
  std::uint64_t next_request_ = 0;  // the probe's k of the next request on this socket
  std::string scratch_;             // a batch the probe builds (capacity reused), until written
  std::string partial_;             // received, not consumed by the probe (capacity reused)
};

}  // namespace shootout::load
