// The readiness engine: Asio over epoll. See asio_engine.hpp.
#include "asio_engine.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "connection.hpp"

namespace shootout::load {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct AsioEngine::Link {
  Link(asio::io_context& ioc, std::size_t s) : sock(ioc), timer(ioc), slot(s) {}
  tcp::socket sock;
  asio::steady_timer timer;
  const std::size_t slot;
  std::uint64_t gen = 0;  // bumped by close(): handlers of the previous socket do nothing
  HandlerSlot connect_slot, read_slot, write_slot, timer_slot;
};

AsioEngine::AsioEngine(const Plan& plan, Worker& worker, std::size_t first_index, std::size_t count)
    : plan_(plan), w_(worker), first_(first_index), ioc_(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO) {
  links_.reserve(count);
  for (std::size_t i = 0; i < count; ++i) links_.push_back(std::make_unique<Link>(ioc_, i));
  timers_.reserve(kWorkerTimers);
  for (int i = 0; i < kWorkerTimers; ++i) timers_.emplace_back(ioc_);
}

AsioEngine::~AsioEngine() = default;

bool AsioEngine::open(std::size_t slot, std::error_code& ec) {
  const int fd = open_load_socket(plan_, first_ + slot, true, ec);
  if (fd < 0) return false;
  boost::system::error_code bec;
  tcp::socket& sock = links_[slot]->sock;
  sock.assign(tcp::v4(), fd, bec);
  // Asio keeps its own note of the mode: without it, read_some() on a socket that has nothing
  // would wait in poll() instead of saying would_block.
  if (!bec) sock.non_blocking(true, bec);
  if (bec) {
    ec.assign(bec.value(), std::system_category());
    sock.close(bec);
    return false;
  }
  return true;
}

bool AsioEngine::is_open(std::size_t slot) const { return links_[slot]->sock.is_open(); }

void AsioEngine::connect(std::size_t slot) {
  w_.owner().check("AsioEngine::connect");
  Link& l = *links_[slot];
  l.sock.async_connect(
      plan_.endpoint,
      bind_slot(l.connect_slot, [this, &l, g = l.gen](boost::system::error_code ec) {
        if (g == l.gen) w_.connection(l.slot).on_connect(!ec);
      }));
}

// Almost always one send() writes the whole batch; the rest goes asynchronously (the batch's
// memory is the connection's, kept until its socket is closed).
void AsioEngine::send(std::size_t slot, std::string_view bytes) {
  w_.owner().check("AsioEngine::send");
  Link& l = *links_[slot];
  boost::system::error_code ec;
  std::size_t n = l.sock.write_some(asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec == asio::error::would_block) {
    n = 0;
  } else if (ec) {
    return w_.connection(slot).on_send_error();
  }
  if (n == bytes.size()) return;
  asio::async_write(
      l.sock, asio::buffer(bytes.data() + n, bytes.size() - n),
      bind_slot(l.write_slot, [this, &l, g = l.gen](boost::system::error_code e, std::size_t) {
        if (g == l.gen && e) w_.connection(l.slot).on_send_error();
      }));
}

void AsioEngine::start_reading(std::size_t slot) { wait_readable(*links_[slot]); }

void AsioEngine::wait_readable(Link& l) {
  l.sock.async_wait(tcp::socket::wait_read,
                    bind_slot(l.read_slot, [this, &l, g = l.gen](boost::system::error_code ec) {
                      if (g != l.gen) return;
                      if (ec) return w_.connection(l.slot).on_read_end(false);
                      on_readable(l);
                    }));
}

// Reads until the socket is drained (a short read means it is, at that instant; anything
// arriving later wakes the wait again), handing every chunk to the connection.
void AsioEngine::on_readable(Link& l) {
  Connection& c = w_.connection(l.slot);
  for (;;) {
    boost::system::error_code ec;
    const std::size_t n = l.sock.read_some(asio::buffer(buffer_.data(), buffer_.size()), ec);
    if (ec == asio::error::would_block) break;
    if (ec) return c.on_read_end(ec == asio::error::eof);
    const std::uint64_t gen = l.gen;
    c.on_data({buffer_.data(), n});
    if (gen != l.gen) return;  // closed while consuming
    if (n < buffer_.size()) break;
  }
  wait_readable(l);
}

void AsioEngine::arm_timer(std::size_t slot, Clock::time_point at) {
  w_.owner().check("AsioEngine::arm_timer");
  Link& l = *links_[slot];
  l.timer.expires_at(at);
  l.timer.async_wait(bind_slot(l.timer_slot, [this, &l, g = l.gen](boost::system::error_code ec) {
    if (g == l.gen && !ec) w_.connection(l.slot).on_timer();
  }));
}

void AsioEngine::close(std::size_t slot) {
  w_.owner().check("AsioEngine::close");
  Link& l = *links_[slot];
  ++l.gen;
  boost::system::error_code ec;
  l.sock.close(ec);
  l.timer.cancel();
}

void AsioEngine::arm_timer(WorkerTimer which, Clock::time_point at) {
  w_.owner().check("AsioEngine::arm_timer");
  asio::steady_timer& t = timers_[static_cast<std::size_t>(which)];
  t.expires_at(at);
  t.async_wait([this, which](boost::system::error_code ec) {
    if (!ec) w_.on_timer(which);
  });
}

void AsioEngine::cancel_timer(WorkerTimer which) {
  timers_[static_cast<std::size_t>(which)].cancel();
}

// A posted handler runs after the handlers of the completions the same epoll_wait returned.
void AsioEngine::flush_after_batch() {
  asio::post(ioc_, bind_slot(flush_slot_, [this] { w_.flush_sends(); }));
}

void AsioEngine::wake() {
  asio::post(ioc_, [this] { w_.on_wake(); });
}

void AsioEngine::run() { ioc_.run(); }

void AsioEngine::stop() { ioc_.stop(); }

// Every socket is closed and every timer cancelled: let their aborted handlers run, so no
// operation outlives its memory.
void AsioEngine::drain() {
  w_.owner().check("AsioEngine::drain");
  ioc_.restart();
  ioc_.run();
}

}  // namespace shootout::load
