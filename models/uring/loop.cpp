#include "uring/loop.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "log.hpp"
#include "net.hpp"
#include "stats.hpp"
#include "trace.hpp"
#include "uring_support.hpp"

namespace shootout {

namespace {

constexpr unsigned kSqEntries = 1024;       // submissions queued per iteration before a flush
constexpr unsigned kCqEntries = 16 * 1024;  // completions reaped per enter (the kernel keeps
                                            // any overflow and hands it over next time)
// Receive buffers, shared by every connection of the loop: the ring has room for kBufferCount
// (16 MiB of address space), but only kFirstBuffers are provided at first, and more only when
// a batch found none left (-ENOBUFS), doubling up to the ring's size. The kernel takes buffers
// in ring order, so every provided buffer is touched in turn: providing only what the load
// needs keeps the memory touched to that (256 KiB for an idle or lightly loaded loop).
constexpr unsigned kBufferCount = 4096;
constexpr unsigned kFirstBuffers = 64;
constexpr unsigned kBufferSize = 4096;
constexpr int kBufferGroup = 0;
constexpr std::size_t kHoldLimit = 64 * 1024;        // input held for a busy session before the
                                                     // recv is cancelled (TCP then pushes back)
constexpr std::size_t kSmallChunk = 64 * 1024;       // queued output below this is merged
constexpr std::size_t kKeepChunk = 256 * 1024;       // recycled buffers are at most this big (a
                                                     // /bytes chunk of 64 KiB and its header fit),
constexpr std::size_t kSpareBytes = 2 << 20;         // and at most this much in all
constexpr std::size_t kSpareMax = 256;               // recycled Outputs kept
constexpr std::int64_t kInlineSendWait = 1'000'000;  // ns; see submit_wait
constexpr std::int64_t kPeerCheckMs = 100;           // see check()

constexpr unsigned kSetupFlags =
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;

}  // namespace

const std::string& uring_unavailable() {
  static const std::string why =
      uring_unavailable_for(kSetupFlags, {IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SEND,
                                          IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL});
  return why;
}

// Output owned by a connection until the kernel has sent it. chunks.front() is the one in
// flight while Conn::sending; later output joins the back.
struct UringLoop::Output {
  std::deque<std::string> chunks;
  std::size_t sent = 0;    // bytes of chunks.front() already sent
  std::size_t unsent = 0;  // bytes of every chunk not sent yet (what --max-output counts)
};

// One connection: about 80 bytes plus the Session. No buffers while idle: input comes in the
// loop's provided buffers, output is owned only until sent.
struct UringLoop::Conn : DeadlineLink {
  enum class Recv : std::uint8_t { idle, armed, cancelling };
  std::unique_ptr<Session> session;
  std::unique_ptr<Output> output;     // nullptr when nothing is queued or in flight
  std::unique_ptr<std::string> held;  // input that came while the session was busy
  int fd = -1;
  std::uint32_t gen = 0;    // distinguishes this connection from a later one on fd
  Next after = Next::read;  // what the session wants once the output is sent
  Recv recv = Recv::idle;   // the multishot recv
  bool sending = false;     // a send is in the kernel
  bool closing = false;     // marked for the close phase; ignore its completions
  bool cancelled = false;   // closing: its operations were cancelled, close when they are back
  bool eof = false;         // the peer shut down its side
  bool paused = false;      // reading paused: the output reached read_pause_ and has not all
                            // been sent yet (flush sets it, release_output clears it)
};

UringLoop::UringLoop(const ServeOptions& options, const Handler& handler, HelperPool& pool,
                     int listen_fd)
    : options_(options),
      handler_(handler),
      pool_(pool),
      listen_fd_(listen_fd),
      work_(options, pool, inbox_),
      timers_(options),
      read_pause_(read_pause_bytes(options)) {
  if (const std::string& why = uring_unavailable(); !why.empty())
    throw std::system_error(ENOSYS, std::generic_category(), why);
  io_uring_params p{};
  // Disabled until run(): the loop's own thread enables it and becomes its single issuer.
  p.flags = kSetupFlags | IORING_SETUP_R_DISABLED | IORING_SETUP_CQSIZE;
  p.cq_entries = kCqEntries;
  if (int r = io_uring_queue_init_params(kSqEntries, &ring_, &p); r < 0)
    throw std::system_error(-r, std::generic_category(), "io_uring_setup");
  ring_ready_ = true;

  buffers_.set_up(ring_, kBufferCount, kBufferSize, kBufferGroup);
  provide_buffers(kFirstBuffers);
  buffers_.publish();

  arm_poll(inbox_.fd(), Op::wake);
  if (listen_fd_ >= 0) {
    accepting_ = true;
    arm_accept();
  }
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

UringLoop::~UringLoop() {
  // The ring first: the kernel lets go of every buffer before the memory goes.
  if (ring_ready_) io_uring_queue_exit(&ring_);
  for (auto& c : conns_)
    if (c) ::close(c->fd);
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

// ---- the iteration ----------------------------------------------------------------------

bool UringLoop::run() {
  owner_.bind();
  timers_.bind_to_this_thread();
  if (int r = uring_enable_rings(ring_); r < 0) {
    log_line("io_uring: cannot enable the ring: {}", std::strerror(-r));
    return false;
  }
  io_uring_register_ring_fd(&ring_);  // saves a descriptor lookup per enter; optional
  while (run_once()) {
  }
  return !timed_out_;
}

// With --trace, the iteration and each phase are spans (the iteration's ends after close).
bool UringLoop::run_once() {
  owner_.check("UringLoop::run_once");
  trace::Span iteration("iteration", "loop");
  iteration.arg("connections", static_cast<std::int64_t>(live_));
  trace::phase("update_time", [&] { update_time(); });
  trace::phase("timers", [&] { run_timers(); });
  trace::phase("pending", [&] { run_pending(); });
  std::int64_t wait_ns = trace::phase("prepare", [&] { return prepare(); });
  submit_wait(wait_ns);  // its span, with the timeout and the completions, is its own
  trace::phase("complete", [&] { complete(); });
  trace::phase("check", [&] { check(); });
  trace::phase("close", [&] { close_pending_closes(); });
  if (stopping_ && live_ == 0) return false;
  return !timed_out_;
}

void UringLoop::update_time() { timers_.read_clock(); }

void UringLoop::run_timers() {
  timers_.run_due([this](DeadlineLink& link) { close_later(static_cast<Conn&>(link)); });
  if (stopping_ && timers_.now() >= grace_deadline_ && live_ > 0) {
    log_line("{} connections still busy after the {} ms grace period; giving up on them", live_,
             options_.grace.count());
    timed_out_ = true;
  }
}

// Sessions to resume, and input held for a session that reads again. Swapped out first, so a
// session that asks to be resumed again waits for the next iteration.
void UringLoop::run_pending() {
  pending_run_.swap(pending_);
  pending_.clear();
  for (Ref r : pending_run_) {
    Conn* c = live(r.fd);
    if (!c || c->gen != r.gen) continue;
    trace::Span span("pending", "dispatch");
    span.arg("fd", r.fd);
    try {
      if (c->after == Next::resume && !c->output) {
        advance(*c, c->session->on_resume(out_));
      } else if (c->after == Next::read && c->held) {
        std::unique_ptr<std::string> held = std::move(c->held);
        input(*c, *held);
      }
    } catch (const std::exception& e) {
      drop(*c, e);
    }
  }
  pending_run_.clear();
}

// The wait, in ns. Known work (pending sessions, closes, the end) must not wait behind the
// kernel. Timers are due in whole ms of the rounded-down clock: waiting until due * 1 ms on the
// precise clock wakes no earlier than that, and no later than needed.
std::int64_t UringLoop::prepare() {
  if (!pending_.empty() || !closing_.empty() || (stopping_ && live_ == 0)) return 0;
  std::optional<std::int64_t> due = timers_.next_due();
  if (stopping_) {
    const std::int64_t stop_due = std::min(grace_deadline_, next_peer_check_);
    if (!due || stop_due < *due) due = stop_due;
  }
  if (!due) return -1;
  std::int64_t wait = *due * 1'000'000 - timers_.read_clock();
  return wait > 0 ? wait : 0;
}

// The one system call of the iteration: submits what the phases queued and waits.
//
// A send the socket takes at once completes inside the very enter that submits it, and its
// completion alone would end the wait: the loop would come back with nothing to do but enter
// again, two system calls per batch. So the wait is for one completion more than the sends
// queued in this batch. A send the socket cannot take at once (a client that does not read)
// leaves that count one short; the wait is then bounded by kInlineSendWait.
//
// Not when a send is followed: its completion is what the loop waits for to go on with that
// connection (the next chunk of a queue, the session's on_resume(), reading paused for the
// output: send_front, advance). Waiting for one completion more would then wait for nothing
// but the bound, once per send: a 32 MiB echo or /bytes, sent a 64 KiB chunk a millisecond,
// took half a second (evented: 30 ms). So the wait is for the sends alone.
void UringLoop::submit_wait(std::int64_t wait_ns) {
  trace::Span phase("submit_wait");  // the reactor's phase, with the timeout and what came back
  phase.arg("timeout_us", wait_ns < 0 ? -1 : wait_ns / 1000);
  const unsigned sends = sends_queued_;
  const unsigned want = sends + (sends_followed_ ? 0 : 1);
  sends_queued_ = 0;
  sends_followed_ = false;
  int r;
  if (wait_ns == 0) {
    r = io_uring_submit_and_get_events(&ring_);
  } else if (wait_ns < 0 && sends == 0) {
    r = io_uring_submit_and_wait(&ring_, 1);
  } else {
    if (sends > 0 && (wait_ns < 0 || wait_ns > kInlineSendWait)) wait_ns = kInlineSendWait;
    __kernel_timespec ts{wait_ns / 1'000'000'000, wait_ns % 1'000'000'000};
    io_uring_cqe* cqe = nullptr;
    r = io_uring_submit_and_wait_timeout(&ring_, &cqe, want, &ts, nullptr);
  }
  ++counts_.enters;
  if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
    static RateLimit rl;
    if (rl.allow()) log_line("io_uring_enter: {}", std::strerror(-r));
  }
  if (wait_ns != 0) update_time();  // we may have slept
  ready_.clear();
  unsigned head;
  unsigned n = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ready_.push_back({cqe->user_data, cqe->res, cqe->flags});
    ++n;
  }
  io_uring_cq_advance(&ring_, n);
  counts_.completions += n;
  phase.arg("events", static_cast<std::int64_t>(n));
}

void UringLoop::complete() {
  grown_this_batch_ = false;
  for (const Cqe& cqe : ready_) dispatch(cqe);
  buffers_.publish();
}

// When stopping: idle connections close. So do, at the stop and every kPeerCheckMs after it,
// connections waiting for the rest of a request from a client that is gone (peer_gone():
// reset, or closed with nothing unread). Their receive would normally have reported that, but
// a multishot recv can miss a reset that closely follows data: the socket is closed with
// ECONNRESET pending and no completion ever comes (a kernel race, about 1 in 20,000 such
// connections on this host's 6.18; docs/URING.md). Without this the stop waited for the request
// timeout or the grace period. Outside a stop those timeouts bound such a connection anyway.
void UringLoop::check() {
  if (!stopping_) return;
  const bool probe = timers_.now() >= next_peer_check_;
  if (probe) next_peer_check_ = timers_.now() + kPeerCheckMs;
  for (auto& c : conns_) {
    if (!c || c->closing) continue;
    if (idle(*c) || (probe && awaits_client(*c) && peer_gone(c->fd))) close_later(*c);
  }
}

// A connection with an operation in the kernel is cancelled, and closed once its last
// completion is back (op_ended() queues it here again): until then the kernel may still write
// into its receive buffer or read its output, and its descriptor number must not be reused.
void UringLoop::close_pending_closes() {
  for (int fd : closing_) {
    Conn& c = *conns_[fd];
    DeadlineList::disarm(c);
    if (c.recv != Conn::Recv::idle || c.sending) {
      if (!c.cancelled) {
        io_uring_prep_cancel_fd(sqe(), fd, IORING_ASYNC_CANCEL_ALL);
        c.cancelled = true;
      }
      continue;
    }
    conns_[fd].reset();
    ::close(fd);
    --live_;
  }
  closing_.clear();
}

// ---- the ring ---------------------------------------------------------------------------

std::uint64_t UringLoop::tag(Op op, int fd, std::uint32_t gen) {
  return (std::uint64_t{static_cast<std::uint8_t>(op)} << 56) |
         (std::uint64_t{static_cast<std::uint32_t>(fd) & 0xffffffu} << 32) | gen;
}

io_uring_sqe* UringLoop::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (!s) {  // full: hand the queue to the kernel now (an extra enter) and take a fresh entry
    io_uring_submit(&ring_);
    ++counts_.enters;
    s = io_uring_get_sqe(&ring_);
    if (!s) throw std::runtime_error("io_uring: the submission queue is full");
  }
  io_uring_sqe_set_data64(s, tag(Op::ignore));
  return s;
}

void UringLoop::arm_accept() {
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, tag(Op::accept));
  accept_armed_ = true;
}

void UringLoop::arm_poll(int fd, Op op) {
  io_uring_sqe* s = sqe();
  io_uring_prep_poll_multishot(s, fd, POLLIN);
  io_uring_sqe_set_data64(s, tag(op, fd));
}

void UringLoop::arm_recv(Conn& c) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, c.fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(s, tag(Op::recv, c.fd, c.gen));
  c.recv = Conn::Recv::armed;
}

void UringLoop::cancel(std::uint64_t user_data) { io_uring_prep_cancel64(sqe(), user_data, 0); }

// `n` more buffers (as many as are left) join the ring, with the ids after the last provided.
void UringLoop::provide_buffers(unsigned n) {
  for (; n > 0 && buffers_provided_ < kBufferCount; --n)
    buffers_.give_back(static_cast<std::uint16_t>(buffers_provided_++));
  counts_.buffers = buffers_provided_;
}

// ---- dispatch ---------------------------------------------------------------------------

namespace {
const char* op_name(std::uint64_t user_data) {
  // In the order of UringLoop::Op.
  static constexpr const char* kNames[] = {"ignore", "accept", "recv", "send", "wake", "signal"};
  const auto op = user_data >> 56;
  return op < std::size(kNames) ? kNames[op] : "op";
}
}  // namespace

void UringLoop::dispatch(const Cqe& cqe) {
  trace::Span span(trace::on() ? op_name(cqe.user_data) : nullptr, "dispatch");
  span.arg("res", cqe.res);
  const auto op = static_cast<Op>(cqe.user_data >> 56);
  const bool more = cqe.flags & IORING_CQE_F_MORE;
  switch (op) {
    case Op::ignore:
      return;
    case Op::wake:
      if (!more) arm_poll(inbox_.fd(), Op::wake);
      return on_wake();
    case Op::watched:
      if (!more && watched_fd_ >= 0) arm_poll(watched_fd_, Op::watched);
      return on_watched_();
    case Op::accept:
      return on_accept(cqe);
    case Op::recv:
    case Op::send:
      break;
  }
  const int fd = static_cast<int>((cqe.user_data >> 32) & 0xffffffu);
  Conn* c = find(fd, static_cast<std::uint32_t>(cqe.user_data));
  if (!c) {  // cannot happen (a connection outlives its operations); keep the buffer anyway
    if (cqe.flags & IORING_CQE_F_BUFFER)
      buffers_.give_back(static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
    return;
  }
  try {
    if (op == Op::recv)
      on_recv(*c, cqe);
    else
      on_send(*c, cqe);
  } catch (const std::exception& e) {  // bad_alloc in a session: that connection only
    drop(*c, e);
  }
}

void UringLoop::on_wake() {
  inbox_.take(completions_);
  for (Completion& done : completions_) {
    if (done.trace_id) trace::flow(false, done.trace_id);  // the arrow back from the pool
    work_done(done.fd, done.gen, std::move(done.result));
  }
  completions_.clear();
  if (!stopping_ && stop_requested_.load()) begin_stop();
}

void UringLoop::request_stop() {
  stop_requested_.store(true);
  inbox_.wake();
}

void UringLoop::begin_stop() {
  stopping_ = true;
  grace_deadline_ = timers_.now() + options_.grace.count();
  accepting_ = false;
  if (accept_armed_) cancel(tag(Op::accept));
  // Shut, not closed (the caller owns it): newcomers are refused at once from now on.
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
}

// A multishot accept completes once per connection. An error ends it (no IORING_CQE_F_MORE);
// the shared policy (common/accept.hpp) says whether to re-arm at once or after the back-off.
void UringLoop::on_accept(const Cqe& cqe) {
  if (!(cqe.flags & IORING_CQE_F_MORE)) accept_armed_ = false;
  if (cqe.res >= 0) {
    accept_backoff_.reset();
    counters().connections.fetch_add(1, std::memory_order_relaxed);
    set_nodelay(cqe.res);
    add_connection(cqe.res);
  } else if (const int err = -cqe.res; err != ECANCELED) {
    switch (classify_accept_error(err)) {
      case AcceptFailure::retry:
      case AcceptFailure::drained:
        break;
      case AcceptFailure::shut:
        accepting_ = false;
        break;
      case AcceptFailure::starved:
        if ((err == EMFILE || err == ENFILE) && shed_with_spare(listen_fd_, spare_fd_)) {
          refuse_connection("out of descriptors", "refused with the spare descriptor");
          break;
        }
        pause_accept(accept_backoff_.next_wait(err));
        break;
    }
  }
  if (accepting_ && !accept_armed_) arm_accept();
}

void UringLoop::pause_accept(std::chrono::milliseconds wait) {
  if (!accepting_) return;
  accepting_ = false;
  if (accept_armed_) cancel(tag(Op::accept));
  timers_.add(timers_.now() + wait.count(), [this] {
    if (stopping_) return;
    if (spare_fd_ < 0) spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    accepting_ = true;
    if (!accept_armed_) arm_accept();
  });
}

void UringLoop::watch(int fd, std::function<void()> on_readable) {
  owner_.check("UringLoop::watch");
  watched_fd_ = fd;
  on_watched_ = std::move(on_readable);
  arm_poll(fd, Op::watched);
}

int UringLoop::adopt(int fd) {
  owner_.check("UringLoop::adopt");
  return add_connection(fd);
}

int UringLoop::add_connection(int fd) {
  if (fd > 0xffffff) {  // the descriptor does not fit in an operation's tag
    ::close(fd);
    return EMFILE;
  }
  auto c = std::make_unique<Conn>();
  try {
    c->session = handler_.new_session();
  } catch (const std::exception& e) {
    log_line("cannot start a session: {}; connection closed", e.what());
    ::close(fd);
    return ENOMEM;
  }
  c->fd = fd;
  c->gen = ++next_gen_;
  // The receive first: if no submission entry can be had (a full queue before run() has enabled
  // the ring), nothing else refers to the connection yet.
  try {
    arm_recv(*c);
  } catch (const std::exception& e) {
    log_line("cannot start receiving on descriptor {}: {}; connection closed", fd, e.what());
    ::close(fd);
    return EAGAIN;
  }
  timers_.arm_idle(*c);
  if (static_cast<std::size_t>(fd) >= conns_.size()) conns_.resize(fd + 1);
  conns_[fd] = std::move(c);
  ++live_;
  return 0;
}

// One completion of a connection's multishot recv: bytes in one provided buffer, the end, or
// an error. The buffer goes back to the ring once the session has had the bytes.
void UringLoop::on_recv(Conn& c, const Cqe& cqe) {
  if (!(cqe.flags & IORING_CQE_F_MORE)) c.recv = Conn::Recv::idle;
  struct GiveBack {
    UringLoop* loop;
    int id;
    ~GiveBack() {
      if (id >= 0)
        loop->buffers_.give_back(static_cast<std::uint16_t>(id));  // seen after complete()
    }
  } give_back{this, (cqe.flags & IORING_CQE_F_BUFFER)
                        ? static_cast<int>(cqe.flags >> IORING_CQE_BUFFER_SHIFT)
                        : -1};
  if (c.closing) return op_ended(c);
  if (cqe.res > 0 && give_back.id >= 0) {
    input(c, {buffers_.data(static_cast<std::uint16_t>(give_back.id)), std::size_t(cqe.res)});
  } else if (cqe.res == 0) {  // the peer is done sending
    c.eof = true;
    if (c.after == Next::read && !c.held) {
      if (!c.output) return close_later(c);
      c.after = Next::close;
      return rearm(c);
    }
  } else if (cqe.res == -ENOBUFS) {  // the ring ran dry in this batch; the data waits
    ++counts_.no_buffers;
    if (!grown_this_batch_) provide_buffers(buffers_provided_);  // double them, once a batch
    grown_this_batch_ = true;
  } else if (cqe.res != -ECANCELED) {
    return close_later(c);  // ECONNRESET and friends
  }
  if (!c.closing && c.recv == Conn::Recv::idle && c.after == Next::read && !c.eof && !c.held &&
      !c.paused)
    arm_recv(c);
}

void UringLoop::on_send(Conn& c, const Cqe& cqe) {
  c.sending = false;
  if (c.closing) return op_ended(c);
  if (cqe.res <= 0) {
    if (cqe.res == -EAGAIN || cqe.res == -EINTR) return send_front(c);
    return close_later(c);  // EPIPE, ECONNRESET, or a send that took nothing
  }
  Output& o = *c.output;
  o.unsent -= static_cast<std::size_t>(cqe.res);
  o.sent += static_cast<std::size_t>(cqe.res);
  if (o.sent == o.chunks.front().size()) {
    recycle_chunk(o.chunks.front());
    o.chunks.pop_front();
    o.sent = 0;
  }
  if (o.unsent > 0) {
    timers_.arm_idle(c);  // progress: re-arm the stall timer
    return send_front(c);
  }
  release_output(c);
  switch (c.after) {
    case Next::close:
      return close_later(c);
    case Next::resume:
      pending_.push_back({c.fd, c.gen});
      break;
    case Next::read:
    case Next::work:
      break;
  }
  rearm(c);
}

// An operation of a closing connection is back; with none left, it can close.
void UringLoop::op_ended(Conn& c) {
  if (c.cancelled && c.recv == Conn::Recv::idle && !c.sending) closing_.push_back(c.fd);
}

// ---- driving a session ------------------------------------------------------------------

// Bytes that arrived. A session that reads gets them now; one that waits on work or resume
// (or has older bytes held, or output that pauses reading) gets them when it reads again
// (run_pending, queued by rearm()).
void UringLoop::input(Conn& c, std::string_view bytes) {
  if (c.after == Next::read && !c.held && !c.paused) {
    // Over the cap already (one batch may be): what this input makes would close it anyway.
    if (c.output && c.output->unsent > options_.max_output) return close_over_cap(c);
    return advance(c, c.session->on_input(bytes, out_));
  }
  if (!c.held) c.held = std::make_unique<std::string>();
  c.held->append(bytes);
  if (c.held->size() > kHoldLimit && c.recv == Conn::Recv::armed) {
    cancel(tag(Op::recv, c.fd, c.gen));
    c.recv = Conn::Recv::cancelling;
  }
}

// Sends out_, then does what `next` says: the evented loop's advance(), step for step.
void UringLoop::advance(Conn& c, Next next) {
  for (;;) {
    if (!flush(c)) return;
    c.after = next;
    if (next == Next::close && !c.output) return close_later(c);
    if (next == Next::resume && !c.output) pending_.push_back({c.fd, c.gen});
    if (next == Next::resume && c.sending) sends_followed_ = true;  // on_resume() once it is back
    if (next == Next::work) {
      const Work& w = c.session->pending_work();
      if (!work_.start(w, c.fd, c.gen, timers_,
                       [this, fd = c.fd, gen = c.gen] { work_done(fd, gen, {}); })) {
        trace::Span inline_work("inline work", "work");
        WorkResult result = run_work_inline(w);
        update_time();
        next = c.session->on_work_done(std::move(result), out_);
        continue;
      }
    }
    return rearm(c);
  }
}

// Hands out_ to the connection (the kernel reads it later) and starts a send if none is in
// flight. Counted against --max-output like the evented loop counts its queue: output that
// would join some still unsent past the cap closes the connection; one batch alone may exceed
// it. Returns false if the connection was closed for the cap.
bool UringLoop::flush(Conn& c) {
  if (out_.empty()) return true;
  if (c.output && c.output->unsent + out_.size() > options_.max_output) {
    close_over_cap(c);
    return false;
  }
  if (!c.output) {
    if (spare_.empty()) {
      c.output = std::make_unique<Output>();
    } else {
      c.output = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  Output& o = *c.output;
  o.unsent += out_.size();
  // Join the last chunk if it is small and not the one in flight; else out_ becomes a chunk
  // and a recycled buffer takes its place.
  if (o.chunks.size() >= 2 && o.chunks.back().size() + out_.size() <= kSmallChunk) {
    o.chunks.back() += out_;
    out_.clear();
  } else {
    o.chunks.push_back(std::move(out_));
    out_.clear();
    if (!spare_chunks_.empty()) {
      spare_bytes_ -= spare_chunks_.back().capacity();
      out_.swap(spare_chunks_.back());
      spare_chunks_.pop_back();
    }
  }
  if (o.unsent >= read_pause_) c.paused = true;  // until all of it has been sent
  if (!c.sending) send_front(c);
  return true;
}

// One send: the front chunk's unsent part. Followed (submit_wait) if the loop goes on with the
// connection once it is back: more output behind it, a session to resume, or reading paused.
void UringLoop::send_front(Conn& c) {
  Output& o = *c.output;
  const std::string& front = o.chunks.front();
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c.fd, front.data() + o.sent, front.size() - o.sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, tag(Op::send, c.fd, c.gen));
  c.sending = true;
  ++sends_queued_;
  if (o.unsent > front.size() - o.sent || c.after == Next::resume || c.paused)
    sends_followed_ = true;
}

// An output buffer the kernel is done with is kept for the next output (so out_ does not grow
// again from nothing, reallocating on the way, for every answer), within kKeepChunk/kSpareBytes.
void UringLoop::recycle_chunk(std::string& chunk) {
  if (chunk.capacity() > kKeepChunk || spare_bytes_ + chunk.capacity() > kSpareBytes) return;
  chunk.clear();
  spare_bytes_ += chunk.capacity();
  spare_chunks_.push_back(std::move(chunk));
}

// Every chunk sent (or the connection is closing and none is in flight): the Output and its
// buffers are recycled.
void UringLoop::release_output(Conn& c) {
  c.paused = false;
  if (!c.output) return;
  for (std::string& chunk : c.output->chunks) recycle_chunk(chunk);
  c.output->chunks.clear();
  c.output->sent = c.output->unsent = 0;
  if (spare_.size() < kSpareMax) spare_.push_back(std::move(c.output));
  c.output.reset();
}

void UringLoop::close_over_cap(Conn& c) {
  static RateLimit rl;
  if (rl.allow())
    log_line("a connection queued more than {} bytes of output; closing it", options_.max_output);
  out_.clear();
  close_later(c);
}

void UringLoop::work_done(int fd, std::uint32_t gen, WorkResult result) {
  Conn* c = live(fd);
  if (!c || c->gen != gen || c->after != Next::work) return;  // it went away meanwhile
  try {
    advance(*c, c->session->on_work_done(std::move(result), out_));
  } catch (const std::exception& e) {
    drop(*c, e);
  }
}

// Brings the receive and the timeouts in line with the connection's state:
//   reading, input held       feed it in the next pending phase
//   reading, the peer is done close once the output is sent
//   reading                   a multishot recv armed; request deadline or idle timer
//   output in flight          stall timer
//   paused for the output     neither fed nor re-armed (input that comes is held) until the
//                             output has all been sent: on_send() calls this then
//   resume or work            no timer (input that comes meanwhile is held)
void UringLoop::rearm(Conn& c) {
  if (c.after == Next::read) {
    if (c.held) {
      if (!c.paused) pending_.push_back({c.fd, c.gen});
    } else if (c.eof) {
      if (!c.output) return close_later(c);
      c.after = Next::close;
    } else if (c.recv == Conn::Recv::idle && !c.paused) {
      arm_recv(c);
    }
  }
  if (stopping_ && idle(c)) return close_later(c);
  const bool reading = c.after == Next::read;
  timers_.arm(c, c.output != nullptr, reading, reading && c.session->mid_request());
}

// Marks the connection for the close phase. Output not in flight is freed now: many
// connections closed in one batch must not each hold up to a cap's worth until then.
void UringLoop::close_later(Conn& c) {
  if (c.closing) return;
  c.closing = true;
  closing_.push_back(c.fd);
  c.held.reset();
  if (c.output && !c.sending) {
    release_output(c);
  } else if (c.output) {
    while (c.output->chunks.size() > 1) c.output->chunks.pop_back();
  }
}

void UringLoop::drop(Conn& c, const std::exception& e) {
  log_line("connection dropped: {}", e.what());
  out_.clear();
  close_later(c);
}

UringLoop::Conn* UringLoop::find(int fd, std::uint32_t gen) const {
  if (fd < 0 || static_cast<std::size_t>(fd) >= conns_.size()) return nullptr;
  Conn* c = conns_[fd].get();
  return c && c->gen == gen ? c : nullptr;
}

UringLoop::Conn* UringLoop::live(int fd) const {
  if (fd < 0 || static_cast<std::size_t>(fd) >= conns_.size()) return nullptr;
  Conn* c = conns_[fd].get();
  return c && !c->closing ? c : nullptr;
}

// Reading, with nothing of ours in flight or held: only the client can move it on.
bool UringLoop::awaits_client(const Conn& c) const {
  return c.after == Next::read && !c.output && !c.held;
}

// Nothing in flight: no request started, no output, no work or resume pending, nothing held.
bool UringLoop::idle(const Conn& c) const { return awaits_client(c) && !c.session->mid_request(); }

}  // namespace shootout
