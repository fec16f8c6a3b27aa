#include "evented/loop.hpp"

#include <fcntl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>

#include "log.hpp"
#include "net.hpp"
#include "stats.hpp"
#include "trace.hpp"

namespace shootout {

namespace {

constexpr std::size_t kReadBuffer = 64 * 1024;     // shared by every connection of the loop
constexpr std::size_t kKeepOutCapacity = 1 << 20;  // out_ gives back memory above this
constexpr std::size_t kSmallChunk = 64 * 1024;     // queued output below this is copied and merged
constexpr std::size_t kMaxIov = 64;                // chunks handed to one sendmsg

// Milliseconds from `now` to `due`, clamped to int. `now` is rounded down, so a poll that sleeps
// this long wakes no earlier than `due`; and a timer runs only once the clock has reached its due.
int ms_until(std::int64_t due, std::int64_t now) {
  std::int64_t d = due - now;
  if (d <= 0) return 0;
  return d > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(d);
}

bool transient(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

}  // namespace

// Output the socket has not taken yet, in order. Exists only while some is pending. A chunk
// leaves as soon as the socket has taken all of it, so the queue holds what is unsent plus the
// sent part of its first chunk, never what went out long ago; `unsent` is what the cap counts.
struct EventLoop::Output {
  std::deque<std::string> chunks;
  std::size_t sent = 0;    // bytes of chunks.front() already sent
  std::size_t unsent = 0;  // bytes of every chunk not sent yet
};

// One connection: 64 bytes, plus the Session (a few bytes while idle). No buffers while idle:
// reads go to the loop-wide in_, writes leave from the loop-wide out_, and only output the
// socket refuses is copied into an Output.
struct EventLoop::Conn : DeadlineLink {
  std::unique_ptr<Session> session;
  std::unique_ptr<Output> output;  // nullptr when nothing is queued
  int fd = -1;
  std::uint32_t gen = 0;      // distinguishes this connection from a later one on fd
  Next after = Next::read;    // what the session wants once the queued output is sent
  std::uint8_t interest = 0;  // what the poller watches now (PollEvents bits)
  bool closing = false;       // marked for the close phase; ignore further events
  bool eof = false;           // peer shut down its side: send what is queued, then close
};

EventLoop::EventLoop(const ServeOptions& options, const Handler& handler, HelperPool& pool,
                     int listen_fd)
    : options_(options),
      handler_(handler),
      pool_(pool),
      listen_fd_(listen_fd),
      poller_(Poller::create(options.poller, Trigger::edge)),  // edge if the backend has it
      work_(options, pool, inbox_),
      timers_(options),
      read_pause_(read_pause_bytes(options)),
      in_(kReadBuffer) {
  if (int err = poller_->add(inbox_.fd(), kReadable))
    throw std::system_error(err, std::generic_category(), "watching the wake-up eventfd");
  if (listen_fd_ >= 0) {
    if (int err = poller_->add(listen_fd_, kReadable))
      throw std::system_error(err, std::generic_category(), "watching the listener");
    accepting_ = true;
  }
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

EventLoop::~EventLoop() {
  for (auto& c : conns_)
    if (c) ::close(c->fd);
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

// ---- the iteration ----------------------------------------------------------------------

bool EventLoop::run() {
  // From here on this thread owns the loop, its poller and its timers (checked in builds that
  // check threads: common/owner_thread.hpp).
  owner_.bind();
  poller_->bind_to_this_thread();
  timers_.bind_to_this_thread();
  while (run_once()) {
  }
  return !timed_out_;
}

// With --trace, the iteration and each phase are spans (the iteration's ends after close).
bool EventLoop::run_once() {
  owner_.check("EventLoop::run_once");
  trace::Span iteration("iteration", "loop");
  iteration.arg("connections", static_cast<std::int64_t>(live_));
  trace::phase("update_time", [&] { update_time(); });
  trace::phase("timers", [&] { run_timers(); });
  trace::phase("pending", [&] { run_pending(); });
  int timeout = trace::phase("prepare", [&] { return prepare(); });
  poll(timeout);  // its span, with the timeout and the events, is poll()'s own
  trace::phase("check", [&] { check(); });
  trace::phase("close", [&] { close_pending_closes(); });
  if (stopping_ && live_ == 0) return false;
  return !timed_out_;
}

void EventLoop::update_time() { timers_.read_clock(); }

// /sleep timers and the accept pause first, then the connection deadlines. An expired
// connection is only marked: it closes in this iteration's close phase.
void EventLoop::run_timers() {
  timers_.run_due([this](DeadlineLink& link) { close_later(static_cast<Conn&>(link)); });
  if (stopping_ && timers_.now() >= grace_deadline_ && live_ > 0) {
    log_line("{} connections still busy after the {} ms grace period; giving up on them", live_,
             options_.grace.count());
    timed_out_ = true;
  }
}

// Work queued by the previous iterations: sessions to resume (the next /bytes chunk), and, with
// an edge-triggered poller, connections whose last read filled the buffer or whose last write
// took everything offered with more queued (no edge will say so: on_readable, on_writable). The
// queue is swapped out first, so a session that asks to be resumed again waits for the next
// iteration.
void EventLoop::run_pending() {
  pending_run_.swap(pending_);
  pending_.clear();
  for (Ref r : pending_run_) {
    Conn* c = live(r.fd);
    if (!c || c->gen != r.gen) continue;
    trace::Span span(r.again == Again::read    ? "read again"
                     : r.again == Again::write ? "write again"
                                               : "resume",
                     "dispatch");
    span.arg("fd", r.fd);
    try {
      if (r.again == Again::read) {
        // The end may be pending behind the data: read on until EOF, an error or EAGAIN. Not
        // while reading is paused: watching for it again re-reports what is waiting.
        if ((c->interest & kReadable) && !c->eof) on_readable(*c, true);
      } else if (r.again == Again::write) {
        on_writable(*c);  // no-op if the queue went meanwhile
      } else if (c->after == Next::resume && !c->output) {
        advance(*c, c->session->on_resume(out_));
      }
    } catch (const std::exception& e) {
      log_line("connection dropped: {}", e.what());
      out_.clear();
      close_later(*c);
    }
  }
  pending_run_.clear();
}

// Returns the poll timeout. Work already known (pending sessions, closes, the end of the
// loop) must not wait behind the kernel, so those make it 0.
int EventLoop::prepare() {
  if (!pending_.empty() || !closing_.empty() || (stopping_ && live_ == 0)) return 0;
  std::optional<std::int64_t> due = timers_.next_due();
  if (stopping_ && (!due || grace_deadline_ < *due)) due = grace_deadline_;
  return due ? ms_until(*due, timers_.now()) : -1;
}

// Traced: the phase carries the timeout prepare chose and the number of events returned; the
// kernel wait is a span of its own, then each dispatch.
void EventLoop::poll(int timeout_ms) {
  trace::Span phase("poll");
  {
    trace::Span wait("wait", "kernel");
    poller_->wait(ready_, timeout_ms);
  }
  phase.arg("timeout_ms", timeout_ms);
  phase.arg("events", static_cast<std::int64_t>(ready_.size()));
  if (timeout_ms != 0) update_time();  // we may have slept: deadlines armed below start now
  for (PollEvent ev : ready_) dispatch(ev);
}

// When stopping, a connection with nothing in flight closes now; the others are looked at
// again after each of their responses, on every iteration until the last one is gone.
void EventLoop::check() {
  if (!stopping_) return;
  for (auto& c : conns_)
    if (c && !c->closing && idle(*c)) close_later(*c);
}

void EventLoop::close_pending_closes() {
  for (int fd : closing_) {
    std::unique_ptr<Conn> c = std::move(conns_[fd]);
    DeadlineList::disarm(*c);
    poller_->closing(fd);  // before close(): poll and select must not see a closed fd
    ::close(fd);
    --live_;
  }
  closing_.clear();
}

// ---- dispatch ---------------------------------------------------------------------------

const char* EventLoop::dispatch_name(int fd) const {
  if (fd == inbox_.fd()) return "wake";
  if (fd == watched_fd_) return "signal";
  if (fd == listen_fd_) return "accept";
  return "io";
}

void EventLoop::dispatch(PollEvent ev) {
  trace::Span span(trace::on() ? dispatch_name(ev.fd) : nullptr, "dispatch");
  span.arg("fd", ev.fd);
  if (ev.fd == inbox_.fd()) return on_wake();
  if (ev.fd == watched_fd_) return on_watched_();
  if (ev.fd == listen_fd_) return on_acceptable();
  Conn* c = live(ev.fd);
  if (!c) return;  // closed by an earlier callback of this batch
  try {
    // Write first: it may empty the queue, so the reply to what we read next can go straight
    // out of out_ instead of being copied behind it.
    if (ev.events & kWritable) on_writable(*c);
    if (c->closing || !(ev.events & (kReadable | kHangup))) return;
    if (c->interest & kReadable)
      on_readable(*c, ev.events & (kHangup | kPeerClosed));
    else if (ev.events & kHangup)
      close_later(*c);  // reset while waiting on work: drop it (the result will be ignored)
  } catch (const std::exception& e) {  // bad_alloc in a session: that connection only
    log_line("connection dropped: {}", e.what());
    out_.clear();
    close_later(*c);
  }
}

// The eventfd: pool results, and the stop request.
void EventLoop::on_wake() {
  inbox_.take(completions_);
  for (Completion& done : completions_) {
    if (done.trace_id) trace::flow(false, done.trace_id);  // the arrow back from the pool
    work_done(done.fd, done.gen, std::move(done.result));
  }
  completions_.clear();
  if (!stopping_ && stop_requested_.load()) begin_stop();
}

void EventLoop::request_stop() {
  stop_requested_.store(true);
  inbox_.wake();
}

void EventLoop::begin_stop() {
  stopping_ = true;
  grace_deadline_ = timers_.now() + options_.grace.count();
  if (accepting_) poller_->remove(listen_fd_);
  accepting_ = false;
  // Shut, not closed (the caller owns the descriptor and closes it after run()): from now on a
  // newcomer is refused at once, and the backlog is reset, instead of waiting unaccepted
  // until the drain is over.
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
}

// Accepts until the backlog is empty (accept4 returns EAGAIN). Out of descriptors, a busy
// loop would follow (the listener stays readable), so either shed the connection with the
// spare descriptor, or stop watching the listener for the shared back-off (common/accept.hpp).
void EventLoop::on_acceptable() {
  while (accepting_) {
    const Accepted a = accept_connection(listen_fd_, SOCK_NONBLOCK | SOCK_CLOEXEC, accept_backoff_);
    if (a.fd >= 0) {
      counters().connections.fetch_add(1, std::memory_order_relaxed);
      set_nodelay(a.fd);
      add_connection(a.fd);  // accept4 made it non-blocking already
      continue;
    }
    switch (a.failure) {
      case AcceptFailure::retry:
        continue;
      case AcceptFailure::drained:
      case AcceptFailure::shut:
        return;
      case AcceptFailure::starved:
        if ((a.err == EMFILE || a.err == ENFILE) && shed_with_spare(listen_fd_, spare_fd_)) {
          refuse_connection("out of descriptors", "refused with the spare descriptor");
          continue;
        }
        return pause_accept(accept_backoff_.next_wait(a.err));
    }
  }
}

// Stops watching the listener for `wait`, then takes the spare descriptor again if it could
// not be kept, and watches again.
void EventLoop::pause_accept(std::chrono::milliseconds wait) {
  if (!accepting_) return;
  poller_->remove(listen_fd_);
  accepting_ = false;
  timers_.add(timers_.now() + wait.count(), [this] {
    if (stopping_) return;
    if (spare_fd_ < 0) spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    accepting_ = poller_->add(listen_fd_, kReadable) == 0;
  });
}

void EventLoop::watch(int fd, std::function<void()> on_readable) {
  owner_.check("EventLoop::watch");
  if (int err = poller_->add(fd, kReadable))
    throw std::system_error(err, std::generic_category(), "watching a descriptor");
  watched_fd_ = fd;
  on_watched_ = std::move(on_readable);
}

int EventLoop::adopt(int fd) {
  owner_.check("EventLoop::adopt");
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0 && !(flags & O_NONBLOCK)) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  return add_connection(fd);
}

int EventLoop::add_connection(int fd) {
  auto c = std::make_unique<Conn>();
  try {
    c->session = handler_.new_session();
  } catch (const std::exception& e) {
    log_line("cannot start a session: {}; connection closed", e.what());
    ::close(fd);
    return ENOMEM;
  }
  if (int err = poller_->add(fd, kReadable)) {
    counters().errors.fetch_add(1, std::memory_order_relaxed);
    static RateLimit rl;
    std::uint64_t dropped = 0;
    if (rl.allow(&dropped)) {
      if (err == EINVAL && poller_->name() == "select")
        log_line(
            "select cannot watch descriptor {} (FD_SETSIZE is {}): connection closed; use "
            "--poller poll or epoll for more connections ({} more)",
            fd, FD_SETSIZE, dropped);
      else
        log_line("cannot watch descriptor {}: {}; connection closed ({} more)", fd,
                 std::strerror(err), dropped);
    }
    ::close(fd);
    return err;
  }
  c->fd = fd;
  c->gen = ++next_gen_;
  c->interest = kReadable;
  timers_.arm_idle(*c);
  if (static_cast<std::size_t>(fd) >= conns_.size()) conns_.resize(fd + 1);
  conns_[fd] = std::move(c);
  ++live_;
  return 0;
}

// One read per readiness, so every ready connection gets its turn before anyone's second read.
// Level-triggered, the poller reports a connection with more waiting again on the next
// iteration. Edge-triggered, it will not: a read that filled the buffer may have left more in
// the socket, and a peer that closed or reset (`end_pending`) left its EOF or error behind the
// data, so the connection queues itself to read again in the next pending phase. A shorter
// read otherwise emptied the socket, and later data is a new edge (nginx's rule).
void EventLoop::on_readable(Conn& c, bool end_pending) {
  ssize_t n = ::recv(c.fd, in_.data(), in_.size(), 0);
  if (n > 0 && poller_->edge_triggered() && (end_pending || n == static_cast<ssize_t>(in_.size())))
    pending_.push_back({c.fd, c.gen, Again::read});
  if (n < 0) {
    if (!transient(errno)) close_later(c);  // ECONNRESET and friends
    return;
  }
  if (n == 0) {  // the peer is done sending: finish what is queued, then close
    c.eof = true;
    if (!c.output) return close_later(c);
    c.after = Next::close;
    return rearm(c);
  }
  // Over the cap already (one batch of output may be, see flush): whatever this input makes
  // would close the connection anyway, so do not make it.
  if (c.output && c.output->unsent > options_.max_output) return close_over_cap(c);
  advance(c, c.session->on_input({in_.data(), static_cast<std::size_t>(n)}, out_));
}

// One write per readiness, like on_readable's one read. A write the socket cut short (or
// refused) left it full: the kernel reports it writable again once it has room, edge-triggered
// too. A write that took every byte offered (kMaxIov chunks) with more queued behind them did
// not fill it, so an edge-triggered poller will not report it again (the socket never went
// from full to not full): the connection queues itself to write again in the next pending
// phase. Without that, a queue longer than kMaxIov chunks whose last readiness met a socket
// with room for kMaxIov of them was never sent: the connection sat with output queued, both
// sockets empty and nothing watched that would change (a 32 MiB echo to a client that reads
// as fast as the kernel, `shootout load --engine uring`).
void EventLoop::on_writable(Conn& c) {
  if (!c.output) return;
  Output& o = *c.output;
  iovec iov[kMaxIov];
  msghdr msg{};
  msg.msg_iov = iov;
  std::size_t offered = 0;
  std::size_t skip = o.sent;
  for (std::string& chunk : o.chunks) {
    if (msg.msg_iovlen == kMaxIov) break;
    iov[msg.msg_iovlen++] = {chunk.data() + skip, chunk.size() - skip};
    offered += chunk.size() - skip;
    skip = 0;
  }
  ssize_t n = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL);
  if (n < 0) {
    if (!transient(errno)) close_later(c);
    return;
  }
  if (static_cast<std::size_t>(n) == offered && o.unsent > offered && poller_->edge_triggered())
    pending_.push_back({c.fd, c.gen, Again::write});
  o.unsent -= static_cast<std::size_t>(n);
  for (std::size_t left = static_cast<std::size_t>(n); left > 0;) {
    std::size_t rest = o.chunks.front().size() - o.sent;
    if (left < rest) {
      o.sent += left;
      break;
    }
    left -= rest;
    o.chunks.pop_front();  // sent: its memory goes now, not when the whole queue has drained
    o.sent = 0;
  }
  if (o.unsent > 0) return timers_.arm_idle(c);  // progress: re-arm the stall timer
  c.output.reset();
  switch (c.after) {
    case Next::close:
      return close_later(c);
    case Next::resume:
      pending_.push_back({c.fd, c.gen, Again::resume});
      break;
    case Next::read:
    case Next::work:
      break;
  }
  rearm(c);
}

// ---- driving a session ------------------------------------------------------------------

// Sends out_, then does what `next` says. Mirrors serve_connection(); the differences are
// that waiting is done by returning to the loop instead of blocking.
void EventLoop::advance(Conn& c, Next next) {
  for (;;) {
    if (!flush(c)) return;
    c.after = next;
    if (next == Next::close && !c.output) return close_later(c);
    if (next == Next::resume && !c.output) pending_.push_back({c.fd, c.gen, Again::resume});
    if (next == Next::work) {
      const Work& w = c.session->pending_work();
      // On the loop's own thread, while every other client waits: /cpu without --offload-cpu
      // on purpose, and any work the pool cannot take (no helper thread could be started)
      // rather than failing the request.
      if (!work_.start(w, c.fd, c.gen, timers_,
                       [this, fd = c.fd, gen = c.gen] { work_done(fd, gen, {}); })) {
        trace::Span inline_work("inline work", "work");
        WorkResult result = run_work_inline(w);
        // Up to 10 s of /cpu: every timer and deadline armed after this, in this batch, starts
        // now, not at the clock read before the work.
        update_time();
        next = c.session->on_work_done(std::move(result), out_);
        continue;
      }
    }
    return rearm(c);
  }
}

// Writes out_ straight from the loop-wide buffer; only what the socket refuses goes into the
// connection's Output. Every path that produces output (input read, a pool job's result, a
// timer, a resume, requests parsed from input the session had buffered) comes through here, so
// here is where the cap is counted: output that would take a queue already holding some past
// --max-output closes the connection. One batch may exceed the cap on its own when nothing is
// queued (a --max-file larger than the cap is still served to a client that reads); the next
// batch then closes the connection if the queue has not drained below the cap. Returns false if
// the connection broke or was closed for the cap (it is then closing).
bool EventLoop::flush(Conn& c) {
  if (out_.empty()) return true;
  if (c.output) {  // already waiting for the socket: keep the order
    if (c.output->unsent + out_.size() > options_.max_output) {
      close_over_cap(c);
      return false;
    }
    enqueue(*c.output, 0);
  } else {
    ssize_t n = ::send(c.fd, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n < 0 && !transient(errno)) {
      release_out();
      close_later(c);
      return false;
    }
    std::size_t sent = n > 0 ? static_cast<std::size_t>(n) : 0;
    if (sent < out_.size()) {
      c.output = std::make_unique<Output>();
      enqueue(*c.output, sent);
    }
  }
  release_out();
  return true;
}

// Moves out_[from..] to the back of the queue. A large batch is moved, not copied (out_ gives
// up its buffer, and the first chunk may keep its sent head until all of it is sent); a small
// one is copied, joining the last chunk if that stays small, so a pipeline of small answers
// does not become a chunk (and an iovec) per answer.
void EventLoop::enqueue(Output& o, std::size_t from) {
  const std::size_t n = out_.size() - from;
  o.unsent += n;
  if (n > kSmallChunk && (from == 0 || o.chunks.empty())) {
    if (o.chunks.empty()) o.sent = from;
    o.chunks.push_back(std::move(out_));
    out_.clear();  // moved from: valid, and now certainly empty
  } else if (!o.chunks.empty() && o.chunks.back().size() + n <= kSmallChunk) {
    o.chunks.back().append(out_, from, n);
  } else {
    o.chunks.emplace_back(out_, from);
  }
}

void EventLoop::release_out() {
  out_.clear();
  if (out_.capacity() > kKeepOutCapacity) out_.shrink_to_fit();
}

// A client that asks for more than it reads. Its queue is freed now, not in the close phase:
// many such connections closed in one batch must not each hold up to a cap's worth until then.
void EventLoop::close_over_cap(Conn& c) {
  static RateLimit rl;
  if (rl.allow())
    log_line("a connection queued more than {} bytes of output; closing it", options_.max_output);
  c.output.reset();
  release_out();
  close_later(c);
}

void EventLoop::work_done(int fd, std::uint32_t gen, WorkResult result) {
  Conn* c = live(fd);
  if (!c || c->gen != gen || c->after != Next::work) return;  // it went away meanwhile
  try {
    advance(*c, c->session->on_work_done(std::move(result), out_));
  } catch (const std::exception& e) {
    log_line("connection dropped: {}", e.what());
    out_.clear();
    close_later(*c);
  }
}

// Brings the poller interest and the timeout in line with the connection's state:
//   output queued             watch writable (and readable if the session reads and the queue
//                             is below read_pause_bytes(): common/loop_core.hpp); stall timer
//   reading, request started  watch readable; request deadline, armed at its first byte
//   reading, idle             watch readable; idle timer from now
//   resume or work            watch nothing (hang-ups still arrive); no timer
// Reading paused for the queue resumes when the queue has drained (on_writable calls this);
// with epoll, watching for it again reports input that waited meanwhile (EPOLL_CTL_MOD
// re-checks readiness).
void EventLoop::rearm(Conn& c) {
  std::uint8_t want = 0;
  bool reading = c.after == Next::read && !c.eof && !(c.output && c.output->unsent >= read_pause_);
  if (reading) want |= kReadable;
  if (c.output) want |= kWritable;
  if (want != c.interest) {
    if (int err = poller_->modify(c.fd, want)) {
      log_line("poller modify fd {}: {}", c.fd, std::strerror(err));
      return close_later(c);
    }
    c.interest = want;
  }
  // Stopping: a connection whose response just finished closes in this iteration (waiting for
  // the check phase would let the poll phase sleep first).
  if (stopping_ && idle(c)) return close_later(c);
  timers_.arm(c, c.output != nullptr, reading, reading && c.session->mid_request());
}

void EventLoop::close_later(int fd) {
  owner_.check("EventLoop::close_later");
  if (Conn* c = live(fd)) close_later(*c);
}

void EventLoop::close_later(Conn& c) {
  if (c.closing) return;
  c.closing = true;
  closing_.push_back(c.fd);
}

EventLoop::Conn* EventLoop::live(int fd) const {
  if (fd < 0 || static_cast<std::size_t>(fd) >= conns_.size()) return nullptr;
  Conn* c = conns_[fd].get();
  return c && !c->closing ? c : nullptr;
}

// Nothing in flight: no request started, no output queued, no work or resume pending.
bool EventLoop::idle(const Conn& c) const {
  return c.after == Next::read && !c.output && !c.session->mid_request();
}

}  // namespace shootout
