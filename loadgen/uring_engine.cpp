// The completion engine: one io_uring per load thread. See uring_engine.hpp.
#include "uring_engine.hpp"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "connection.hpp"
#include "uring_support.hpp"

namespace shootout::load {

namespace {

constexpr unsigned kSqEntries = 1024;  // submissions queued before a forced submit
constexpr unsigned kCqEntries = 8192;  // completions per enter (the kernel keeps any overflow)
constexpr unsigned kSetupFlags =
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
// Receive buffers per thread: 4,096 of 4 KiB (16 MiB of address space, touched as used). A
// batch of completions holds one buffer per response received since the last enter, so this is
// room for thousands of busy connections before a receive ends with -ENOBUFS (which costs a
// re-arm, not an error).
constexpr unsigned kBuffers = 4096;
constexpr unsigned kBufferSize = 4096;
constexpr int kBufferGroup = 0;
// See submit_wait().
constexpr auto kInlineSendWait = std::chrono::milliseconds(1);
// drain(): how long the cancelled operations may take to come back, in all.
constexpr auto kDrainBound = std::chrono::seconds(2);

}  // namespace

// One connection's socket as the engine sees it.
struct UringEngine::Slot {
  int fd = -1;
  std::uint32_t gen = 0;        // bumped by close(); in every operation's user_data
  std::uint32_t timer_gen = 0;  // bumped by arm_timer() and close(): older heap entries are stale
  bool connecting = false, reading = false, sending = false;  // this socket's, in the kernel
  std::string out;  // the bytes being sent (the kernel reads them after send() returned)
  std::size_t sent = 0;
  std::string more;  // given while a send was in flight; sent after it
};

const std::string& UringEngine::unavailable() {
  // No set-up flags: the engine falls back to a plain ring where they are refused.
  static const std::string why = uring_unavailable_for(
      0,
      {IORING_OP_CONNECT, IORING_OP_SEND, IORING_OP_RECV, IORING_OP_READ, IORING_OP_ASYNC_CANCEL},
      true);
  return why;
}

UringEngine::UringEngine(const Plan& plan, Worker& worker, std::size_t first_index,
                         std::size_t count)
    : plan_(plan), w_(worker), first_(first_index), slots_(count) {
  if (const std::string& why = unavailable(); !why.empty())
    throw LoadError("--engine uring cannot run here: " + why);
  io_uring_params p{};
  // Disabled until run(): the worker's thread enables it and becomes its single issuer.
  p.flags = kSetupFlags | IORING_SETUP_R_DISABLED | IORING_SETUP_CQSIZE;
  p.cq_entries = kCqEntries;
  int r = io_uring_queue_init_params(kSqEntries, &ring_, &p);
  enable_ = r == 0;
  if (r == -EINVAL) {  // a kernel before 6.1: no SINGLE_ISSUER or DEFER_TASKRUN
    p = {};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = kCqEntries;
    r = io_uring_queue_init_params(kSqEntries, &ring_, &p);
  }
  if (r < 0) throw std::system_error(-r, std::generic_category(), "io_uring_setup");
  ring_ready_ = true;

  buffers_.set_up(ring_, plan.uring.buffers ? plan.uring.buffers : kBuffers,
                  plan.uring.buffer_size ? plan.uring.buffer_size : kBufferSize, kBufferGroup);
  for (unsigned i = 0; i < buffers_.count(); ++i) buffers_.give_back(static_cast<std::uint16_t>(i));
  buffers_.publish();

  // Blocking: a read on it waits in the kernel (a non-blocking one would fail with EAGAIN).
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");

  const auto target = plan.endpoint.data();
  std::memcpy(&target_, target, plan.endpoint.size());
  target_len_ = static_cast<socklen_t>(plan.endpoint.size());
  heap_.reserve(2 * count + 2 * kWorkerTimers);
  ready_.reserve(kCqEntries);
  rearm_.reserve(count);
  to_close_.reserve(count);
}

UringEngine::~UringEngine() {
  // The ring first: the kernel lets go of the buffers before their memory goes.
  if (ring_ready_) io_uring_queue_exit(&ring_);
  close_descriptors();
  for (Slot& s : slots_)
    if (s.fd >= 0) ::close(s.fd);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

// ---- the seam -----------------------------------------------------------------------------

bool UringEngine::open(std::size_t slot, std::error_code& ec) {
  // Blocking: io_uring makes its own non-blocking attempt and waits for readiness itself; a
  // connect punted to a kernel worker on a non-blocking socket would return EINPROGRESS.
  const int fd = open_load_socket(plan_, first_ + slot, false, ec);
  if (fd < 0) return false;
  slots_[slot].fd = fd;
  return true;
}

bool UringEngine::is_open(std::size_t slot) const { return slots_[slot].fd >= 0; }

void UringEngine::connect(std::size_t slot) {
  w_.owner().check("UringEngine::connect");
  Slot& s = slots_[slot];
  io_uring_sqe* q = sqe();
  io_uring_prep_connect(q, s.fd, reinterpret_cast<const sockaddr*>(&target_), target_len_);
  io_uring_sqe_set_data64(q, tag(Op::connect, slot, s.gen));
  s.connecting = true;
}

// Copied: the kernel reads the bytes when it gets to the send, after this has returned. A send
// still in flight (its completion not reaped yet) is followed by this one.
void UringEngine::send(std::size_t slot, std::string_view bytes) {
  w_.owner().check("UringEngine::send");
  Slot& s = slots_[slot];
  if (s.sending) {
    s.more.append(bytes);
    return;
  }
  s.out.assign(bytes);
  s.sent = 0;
  send_rest(slot);
}

void UringEngine::start_reading(std::size_t slot) { arm_recv(slot); }

void UringEngine::arm_timer(std::size_t slot, Clock::time_point at) {
  w_.owner().check("UringEngine::arm_timer");
  Slot& s = slots_[slot];
  push_timer(static_cast<std::uint32_t>(slot), ++s.timer_gen, at);
}

// The socket's operations are cancelled (their completions, stale from now on, are dropped);
// its descriptor is closed after the next enter (close_descriptors). A send in flight keeps
// reading its buffer until it is back, so the buffer is retired rather than reused.
void UringEngine::close(std::size_t slot) {
  w_.owner().check("UringEngine::close");
  Slot& s = slots_[slot];
  ++s.timer_gen;
  if (s.fd < 0) return;
  if (s.connecting) cancel(tag(Op::connect, slot, s.gen));
  if (s.reading) cancel(tag(Op::recv, slot, s.gen));
  if (s.sending) {
    cancel(tag(Op::send, slot, s.gen));
    ++stale_sends_;
    retired_.push_back(std::move(s.out));
    s.out = std::string();
  }
  to_close_.push_back(s.fd);
  s.fd = -1;
  ++s.gen;
  s.connecting = s.reading = s.sending = false;
  s.more.clear();
  s.sent = 0;
}

void UringEngine::arm_timer(WorkerTimer which, Clock::time_point at) {
  w_.owner().check("UringEngine::arm_timer");
  const auto id = static_cast<std::uint32_t>(slots_.size() + static_cast<std::size_t>(which));
  push_timer(id, ++timer_gen(id), at);
}

void UringEngine::cancel_timer(WorkerTimer which) {
  ++timer_gen(static_cast<std::uint32_t>(slots_.size() + static_cast<std::size_t>(which)));
}

void UringEngine::flush_after_batch() { flush_ = true; }

void UringEngine::wake() {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

void UringEngine::stop() { stopped_ = true; }

// ---- the loop -------------------------------------------------------------------------------

void UringEngine::begin() {
  if (enable_) {
    if (int r = uring_enable_rings(ring_); r < 0)
      throw std::system_error(-r, std::generic_category(), "io_uring: enabling the ring");
  }
  io_uring_register_ring_fd(&ring_);  // saves a descriptor lookup per enter; optional
  arm_wake();
}

void UringEngine::run() {
  w_.owner().check("UringEngine::run");
  while (!stopped_ && w_.running()) {
    run_timers();
    if (stopped_ || !w_.running()) break;
    if (flush_) {
      flush_ = false;
      w_.flush_sends();
    }
    give_back();
    submit_wait();
    complete();
  }
}

void UringEngine::run_timers() {
  const auto now = Clock::now();
  while (!heap_.empty() && heap_.front().at <= now && !stopped_) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const Timer t = heap_.back();
    heap_.pop_back();
    if (t.gen != timer_gen(t.id)) continue;  // re-armed, cancelled or closed since
    if (t.id < slots_.size())
      w_.connection(t.id).on_timer();
    else
      w_.on_timer(static_cast<WorkerTimer>(t.id - slots_.size()));
  }
}

// Buffers of the last batch back to the ring in one tail update; then the receives that found
// none are armed again (they see the buffers: the tail is written before the enter).
void UringEngine::give_back() {
  buffers_.publish();
  for (const Ref r : rearm_) {
    const Slot& s = slots_[r.slot];
    if (s.gen != r.gen || s.fd < 0 || s.reading) continue;
    ++counts_.recv_rearms;
    arm_recv(r.slot);
  }
  rearm_.clear();
}

// The iteration's one system call: submits what the phases queued and waits for a completion,
// at most until the nearest live timer (stale ones on top are dropped first).
//
// A send the socket takes at once completes inside the very enter that submits it, and its
// completion alone would end the wait: the loop would come back with nothing to do but enter
// again, two system calls per batch. So the wait is for one completion more than the sends
// queued (what models/uring/loop.cpp does too). A send the socket cannot take at once leaves
// that count one short; the wait is then bounded by kInlineSendWait.
void UringEngine::submit_wait() {
  while (!heap_.empty() && heap_.front().gen != timer_gen(heap_.front().id)) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    heap_.pop_back();
  }
  const unsigned sends = sends_queued_;
  sends_queued_ = 0;
  io_uring_cqe* cqe = nullptr;
  int r;
  if (heap_.empty() && sends == 0) {
    r = io_uring_submit_and_wait(&ring_, 1);
  } else {
    Clock::duration wait = heap_.empty()
                               ? kInlineSendWait
                               : std::max<Clock::duration>(heap_.front().at - Clock::now(), {});
    if (sends > 0) wait = std::min<Clock::duration>(wait, kInlineSendWait);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    if (ns == 0) {
      r = io_uring_submit_and_get_events(&ring_);
    } else {
      __kernel_timespec ts{ns / 1'000'000'000, ns % 1'000'000'000};
      r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1 + sends, &ts, nullptr);
    }
  }
  ++counts_.enters;
  if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
    throw std::system_error(-r, std::generic_category(), "io_uring_enter");
  // Every submission naming a closed socket's descriptor is in the kernel now.
  close_descriptors();
}

void UringEngine::complete() {
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
  for (const Cqe& c : ready_) dispatch(c);
}

void UringEngine::dispatch(const Cqe& cqe) {
  if (!(cqe.flags & IORING_CQE_F_MORE)) --in_flight_;
  const auto op = static_cast<Op>(cqe.user_data >> 56);
  const std::size_t slot = (cqe.user_data >> 32) & 0xffffffu;
  const auto gen = static_cast<std::uint32_t>(cqe.user_data);
  switch (op) {
    case Op::ignore:  // a cancellation's own completion
      return;
    case Op::wake:
      if (!stopped_ && !draining_) arm_wake();
      if (!draining_) w_.on_wake();
      return;
    case Op::connect:
    case Op::recv:
    case Op::send:
      break;
  }
  if (slot >= slots_.size() || slots_[slot].gen != gen) return stale(slot, op, cqe);
  switch (op) {
    case Op::connect:
      return on_connect(slot, cqe);
    case Op::recv:
      return on_recv(slot, cqe);
    default:
      return on_send(slot, cqe);
  }
}

// A completion of a socket closed since: its buffer goes back; a send's retired buffer may go.
void UringEngine::stale(std::size_t, Op op, const Cqe& cqe) {
  if (cqe.flags & IORING_CQE_F_BUFFER)
    buffers_.give_back(static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
  if (op == Op::send && --stale_sends_ == 0) retired_.clear();
}

void UringEngine::on_connect(std::size_t slot, const Cqe& cqe) {
  slots_[slot].connecting = false;
  w_.connection(slot).on_connect(cqe.res == 0);
}

// One completion of the multishot recv: bytes in one provided buffer, the end of the stream,
// an error, or no buffer left. Without IORING_CQE_F_MORE the receive has ended and is armed
// again if the socket is still wanted: at once after data, after the batch's buffers are back
// after -ENOBUFS.
void UringEngine::on_recv(std::size_t slot, const Cqe& cqe) {
  Slot& s = slots_[slot];
  const bool more = cqe.flags & IORING_CQE_F_MORE;
  if (!more) s.reading = false;
  const std::uint32_t gen = s.gen;
  if (cqe.res > 0 && (cqe.flags & IORING_CQE_F_BUFFER)) {
    const auto id = static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    w_.connection(slot).on_data({buffers_.data(id), static_cast<std::size_t>(cqe.res)});
    buffers_.give_back(id);  // the connection keeps what it has not consumed in its own memory
    if (!more && s.gen == gen && s.fd >= 0) {
      ++counts_.recv_rearms;
      arm_recv(slot);
    }
  } else if (cqe.res == -ENOBUFS) {
    ++counts_.no_buffers;
    rearm_.push_back({static_cast<std::uint32_t>(slot), gen});
  } else if (cqe.res == 0) {
    w_.connection(slot).on_read_end(true);
  } else if (cqe.res != -ECANCELED) {
    w_.connection(slot).on_read_end(false);
  }
}

void UringEngine::on_send(std::size_t slot, const Cqe& cqe) {
  Slot& s = slots_[slot];
  s.sending = false;
  if (cqe.res == -EAGAIN || cqe.res == -EINTR) return send_rest(slot);
  if (cqe.res <= 0) return w_.connection(slot).on_send_error();  // EPIPE, ECONNRESET, ...
  s.sent += static_cast<std::size_t>(cqe.res);
  if (s.sent < s.out.size()) {
    ++counts_.short_sends;
    return send_rest(slot);
  }
  if (s.more.empty()) return;
  s.out.swap(s.more);
  s.more.clear();
  s.sent = 0;
  send_rest(slot);
}

// ---- the ring -------------------------------------------------------------------------------

std::uint64_t UringEngine::tag(Op op, std::size_t slot, std::uint32_t gen) {
  return (std::uint64_t{static_cast<std::uint8_t>(op)} << 56) |
         (std::uint64_t{static_cast<std::uint32_t>(slot) & 0xffffffu} << 32) | gen;
}

// A free submission entry, counted as in flight: a full queue goes to the kernel first.
io_uring_sqe* UringEngine::sqe() {
  io_uring_sqe* q = io_uring_get_sqe(&ring_);
  if (!q) {
    io_uring_submit(&ring_);
    q = io_uring_get_sqe(&ring_);
    if (!q) throw std::runtime_error("io_uring: the submission queue is full");
  }
  ++in_flight_;
  io_uring_sqe_set_data64(q, tag(Op::ignore));
  return q;
}

void UringEngine::arm_recv(std::size_t slot) {
  Slot& s = slots_[slot];
  io_uring_sqe* q = sqe();
  io_uring_prep_recv_multishot(q, s.fd, nullptr, 0, 0);
  q->flags |= IOSQE_BUFFER_SELECT;
  q->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(q, tag(Op::recv, slot, s.gen));
  s.reading = true;
}

void UringEngine::send_rest(std::size_t slot) {
  Slot& s = slots_[slot];
  io_uring_sqe* q = sqe();
  io_uring_prep_send(q, s.fd, s.out.data() + s.sent, s.out.size() - s.sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(q, tag(Op::send, slot, s.gen));
  s.sending = true;
  ++sends_queued_;
}

void UringEngine::arm_wake() {
  io_uring_sqe* q = sqe();
  io_uring_prep_read(q, wake_fd_, &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(q, tag(Op::wake));
}

void UringEngine::cancel(std::uint64_t user_data) { io_uring_prep_cancel64(sqe(), user_data, 0); }

void UringEngine::close_descriptors() {
  for (int fd : to_close_) ::close(fd);
  to_close_.clear();
}

// The heap's order: the earliest on top.
bool UringEngine::later(const Timer& a, const Timer& b) { return a.at > b.at; }

void UringEngine::push_timer(std::uint32_t id, std::uint32_t gen, Clock::time_point at) {
  heap_.push_back({at, id, gen});
  std::push_heap(heap_.begin(), heap_.end(), later);
}

std::uint32_t& UringEngine::timer_gen(std::uint32_t id) {
  return id < slots_.size() ? slots_[id].timer_gen : worker_timer_gen_[id - slots_.size()];
}

// After the last close(): the eventfd read is cancelled too, and completions are reaped until
// every operation is back, so nothing the kernel holds points into memory about to go.
void UringEngine::drain() {
  w_.owner().check("UringEngine::drain");
  draining_ = true;
  cancel(tag(Op::wake));
  const auto bound = Clock::now() + kDrainBound;
  while (in_flight_ > 0 && Clock::now() < bound) {
    __kernel_timespec ts{0, 100'000'000};
    io_uring_cqe* cqe = nullptr;
    const int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    close_descriptors();
    if (r < 0 && r != -ETIME && r != -EINTR) break;
    complete();
  }
  close_descriptors();
}

}  // namespace shootout::load
