// The client side of resp (resp_handler.cpp), for the load generator:
//   shootout load --handler resp tcp://HOST:PORT/WORKLOAD
// WORKLOAD (the target's path) chooses request k of a connection:
//   /ping   PING
//   /get    GET key:<connection>:<k mod 100>   (missing keys answer $-1: still a response)
//   /set    SET key:<connection>:<k mod 100> <--size bytes, default 16>
//   /incr   INCR counter:<connection>
//   / or /mix  SET, GET, INCR in turn
// Each request is one RESP array, one command, so the responses counted equal the commands a
// server counts (redis's INFO stats total_commands_processed). An answer "-..." is an error
// answer (errors.status). Replies are parsed whole (the simple way of probe.hpp): a reply longer
// than kMaxUnconsumed is a body error.
#include <fmt/format.h>

#include <charconv>
#include <optional>
#include <stdexcept>

#include "probe.hpp"

namespace shootout {

namespace {

enum class Workload { ping, get, set, incr, mix };

constexpr std::size_t kDefaultValue = 16;
constexpr std::uint64_t kKeys = 100;  // per connection: the key space stays small
constexpr int kMaxDepth = 8;          // nested arrays: deeper is not a reply of this subset

// Appends a RESP array of bulk strings.
template <typename... Args>
void command(std::string& out, const Args&... args) {
  fmt::format_to(std::back_inserter(out), "*{}\r\n", sizeof...(args));
  ((fmt::format_to(std::back_inserter(out), "${}\r\n", std::string_view(args).size()),
    out.append(std::string_view(args)), out += "\r\n"),
   ...);
}

// The length of the reply at the front of `b`, 0 if it is not whole yet, nullopt if `b` is not
// a RESP reply.
std::optional<std::size_t> reply_length(std::string_view b, int depth = 0) {
  if (b.empty()) return 0;
  const auto cr = b.find("\r\n");
  if (cr == std::string_view::npos)
    return b.size() > 64 * 1024 ? std::nullopt : std::optional<std::size_t>(0);
  const std::size_t line = cr + 2;
  auto number = [&]() -> std::optional<long long> {
    long long n = 0;
    const char* first = b.data() + 1;
    auto [end, ec] = std::from_chars(first, b.data() + cr, n);
    if (ec != std::errc() || end != b.data() + cr) return std::nullopt;
    return n;
  };
  switch (b[0]) {
    case '+':
    case '-':
    case ':':
      return line;
    case '$': {
      const auto n = number();
      if (!n || *n < -1) return std::nullopt;
      if (*n == -1) return line;
      const std::size_t total = line + static_cast<std::size_t>(*n) + 2;
      if (b.size() < total) return 0;
      if (b[total - 2] != '\r' || b[total - 1] != '\n') return std::nullopt;
      return total;
    }
    case '*': {
      const auto n = number();
      if (!n || *n < -1 || depth >= kMaxDepth) return std::nullopt;
      std::size_t at = line;
      for (long long i = 0; i < *n; ++i) {
        const auto len = reply_length(b.substr(at), depth + 1);
        if (!len || *len == 0) return len;
        at += *len;
      }
      return at;
    }
    default:
      return std::nullopt;
  }
}

class RespProbe;

class RespProbeSession final : public ProbeSession {
 public:
  RespProbeSession(const RespProbe& p, std::size_t connection) : p_(p), conn_(connection) {}
  void request(std::uint64_t k, std::string& out) override;
  Scan scan(std::string_view in) override {
    const auto len = reply_length(in);
    if (!len) return Scan::bad();
    if (*len == 0) return Scan::more();
    return Scan::done(*len, in[0] == '-');
  }

 private:
  const RespProbe& p_;
  std::size_t conn_;
};

class RespProbe final : public Probe {
 public:
  explicit RespProbe(const ProbeConfig& c) : value_(c.size ? c.size : kDefaultValue, 'v') {
    const std::string_view p = c.path;
    if (p == "/" || p == "/mix")
      workload_ = Workload::mix;
    else if (p == "/ping")
      workload_ = Workload::ping;
    else if (p == "/get")
      workload_ = Workload::get;
    else if (p == "/set")
      workload_ = Workload::set;
    else if (p == "/incr")
      workload_ = Workload::incr;
    else
      throw std::invalid_argument(fmt::format(
          "resp: unknown workload '{}' (the target's path): use /ping, /get, /set, /incr or "
          "/mix",
          p));
  }
  std::unique_ptr<ProbeSession> new_session(std::size_t connection) const override {
    return std::make_unique<RespProbeSession>(*this, connection);
  }
  Workload workload() const { return workload_; }
  const std::string& value() const { return value_; }

 private:
  Workload workload_ = Workload::mix;
  std::string value_;
};

void RespProbeSession::request(std::uint64_t k, std::string& out) {
  Workload w = p_.workload();
  if (w == Workload::mix)
    w = k % 3 == 0 ? Workload::set : k % 3 == 1 ? Workload::get : Workload::incr;
  // The key of a GET is that of the SET just before it in the mix.
  const std::uint64_t slot = (p_.workload() == Workload::mix ? k / 3 : k) % kKeys;
  std::array<char, 64> key{};
  std::string_view name;
  switch (w) {
    case Workload::ping:
      return command(out, "PING");
    case Workload::incr: {
      auto r = fmt::format_to_n(key.data(), key.size(), "counter:{}", conn_);
      return command(out, "INCR", std::string_view(key.data(), r.size));
    }
    case Workload::get:
    case Workload::set:
    case Workload::mix: {
      auto r = fmt::format_to_n(key.data(), key.size(), "key:{}:{}", conn_, slot);
      name = std::string_view(key.data(), r.size);
      break;
    }
  }
  if (w == Workload::get) return command(out, "GET", name);
  command(out, "SET", name, p_.value());
}

}  // namespace

SHOOTOUT_REGISTER_PROBE("resp", [](const ProbeConfig& c) -> std::unique_ptr<Probe> {
  return std::make_unique<RespProbe>(c);
});

}  // namespace shootout
