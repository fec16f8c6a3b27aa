// resp: a subset of the Redis protocol (RESP2), the second real protocol of the shootout and
// its worked example (docs/GUIDE.md, "Writing your own handler"); redis-server is its peer.
//
// Commands: PING [msg], ECHO msg, GET key, SET key value, INCR key, DEL key..., QUIT, and
// COMMAND/CONFIG (an empty array, so redis-cli and redis-benchmark get on). Requests are RESP
// arrays of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") or inline lines ("GET k\r\n"), any
// number pipelined. The answers are Redis's: +OK, $-1 for a missing key, :n, -ERR ... .
//
// Malformed input (not a RESP array or inline line, a bad length, a missing CRLF) is answered
// "-ERR Protocol error: ..." and the connection closed, as Redis does. Memory per connection is
// bounded: a bulk string at most --body-limit bytes (1 MiB; Redis allows 512 MB), an array at
// most 1,024 elements, a command at most --body-limit + 64 KiB, an inline line 64 KiB; past any
// of them, the same error and close. Answers are produced 64 KiB at a time (Next::resume), so a
// client that pipelines GETs and does not read costs no more.
//
// The store is one per process, shared by every connection of that process and guarded by
// striped mutexes: under threaded, evented, coroutine and uring every connection sees every
// other's SETs. Under forked, each child process has its own copy (a process per connection:
// a store per connection; --prefork N: one per worker): a SET is seen only by connections of
// the same process. The store holds at most 64 MiB of keys and values (with a per-entry
// overhead counted); past it, a SET or INCR of a new key answers -OOM, like Redis at maxmemory.
#include <array>
#include <atomic>
#include <boost/container/small_vector.hpp>
#include <charconv>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "handler.hpp"
#include "stats.hpp"

namespace shootout {

namespace {

constexpr std::size_t kMaxArgs = 1024;
constexpr std::size_t kInlineArgs = 3;
constexpr std::size_t kMaxInline = 64 * 1024;
constexpr std::size_t kMaxLengthLine = 32;  // "*1024\r\n", "$1048576\r\n": far less
constexpr std::size_t kYieldOutput = 64 * 1024;
constexpr std::size_t kStoreBytes = 64u << 20;
constexpr std::size_t kEntryOverhead = 64;  // counted per key: the node, the hash, two strings

// The process's key space. Thread-safe; shards so that loops and threads rarely meet.
class Store {
 public:
  // Appends the bulk reply for `key` ($-1 when absent).
  void get(std::string_view key, std::string& out) {
    Shard& s = shard(key);
    std::lock_guard lock(s.m);
    auto it = s.map.find(key);
    if (it == s.map.end()) {
      out += "$-1\r\n";
      return;
    }
    append_bulk(out, it->second);
  }
  // False when the store is full.
  bool set(std::string_view key, std::string_view value) {
    Shard& s = shard(key);
    std::lock_guard lock(s.m);
    auto it = s.map.find(key);
    const std::size_t old = it == s.map.end() ? 0 : cost(key, it->second);
    if (!reserve(cost(key, value), old)) return false;
    if (it == s.map.end())
      s.map.emplace(std::string(key), std::string(value));
    else
      it->second.assign(value);
    return true;
  }
  enum class Incr { ok, not_integer, overflow, full };
  Incr incr(std::string_view key, long long& result) {
    Shard& s = shard(key);
    std::lock_guard lock(s.m);
    auto it = s.map.find(key);
    long long v = 0;
    if (it != s.map.end() && !parse_integer(it->second, v)) return Incr::not_integer;
    if (v == std::numeric_limits<long long>::max()) return Incr::overflow;
    result = v + 1;
    std::array<char, 24> digits{};
    auto [end, ec] = std::to_chars(digits.begin(), digits.end(), result);
    const std::string_view text(digits.data(), static_cast<std::size_t>(end - digits.data()));
    const std::size_t old = it == s.map.end() ? 0 : cost(key, it->second);
    if (!reserve(cost(key, text), old)) return Incr::full;
    if (it == s.map.end())
      s.map.emplace(std::string(key), std::string(text));
    else
      it->second.assign(text);
    return Incr::ok;
  }
  bool del(std::string_view key) {
    Shard& s = shard(key);
    std::lock_guard lock(s.m);
    auto it = s.map.find(key);
    if (it == s.map.end()) return false;
    bytes_.fetch_sub(cost(key, it->second), std::memory_order_relaxed);
    s.map.erase(it);
    return true;
  }

  static bool parse_integer(std::string_view text, long long& v) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    return ec == std::errc() && end == text.data() + text.size() && !text.empty();
  }
  static void append_bulk(std::string& out, std::string_view v) {
    out += '$';
    out += std::to_string(v.size());
    out += "\r\n";
    out.append(v);
    out += "\r\n";
  }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    std::mutex m;
    std::unordered_map<std::string, std::string, Hash, std::equal_to<>> map;
  };
  static std::size_t cost(std::string_view k, std::string_view v) {
    return k.size() + v.size() + kEntryOverhead;
  }
  // Accounts for an entry growing from `old` to `want` bytes; false (and no change) if that
  // would pass the cap.
  bool reserve(std::size_t want, std::size_t old) {
    std::size_t cur = bytes_.load(std::memory_order_relaxed);
    for (;;) {
      const std::size_t next = cur - old + want;
      if (want > old && next > kStoreBytes) return false;
      if (bytes_.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return true;
    }
  }
  Shard& shard(std::string_view key) { return shards_[Hash{}(key) % shards_.size()]; }

  std::array<Shard, 16> shards_;
  std::atomic<std::size_t> bytes_{0};
};

Store& store() {
  static Store s;
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  return true;
}

// A command name fit to quote in an error line: printable, at most 64 bytes.
std::string quoted(std::string_view name) {
  std::string q;
  for (char c : name.substr(0, 64)) q += (c >= 0x20 && c < 0x7f) ? c : '?';
  return q;
}

class RespSession final : public Session {
 public:
  explicit RespSession(std::size_t max_bulk) : max_bulk_(max_bulk) {}

  Next on_input(std::string_view in, std::string& out) override {
    if (in_.empty()) return process(in, false, out);  // the usual case: no copy
    in_.append(in);
    return process(in_, true, out);
  }
  Next on_resume(std::string& out) override { return process(in_, true, out); }
  bool mid_request() const override { return !in_.empty(); }

 private:
  enum class Parse { more, command, malformed };

  // Answers every whole command in `buf` (in_ itself if `owned`), keeps the rest in in_.
  Next process(std::string_view buf, bool owned, std::string& out) {
    std::size_t start = 0;
    Next next = Next::read;
    while (start < buf.size()) {
      const std::string_view cmd = buf.substr(start);
      const Parse p = parse(cmd);
      if (p == Parse::more) break;
      if (p == Parse::malformed) {
        out += "-ERR Protocol error: ";
        out += error_;
        out += "\r\n";
        return Next::close;
      }
      const bool quit = execute(cmd, out);
      start += cursor_;
      forget_command();
      if (quit) return Next::close;
      if (out.size() >= kYieldOutput && start < buf.size()) {
        next = Next::resume;  // the rest once this has been written
        break;
      }
    }
    if (owned)
      in_.erase(0, start);
    else
      in_.assign(buf.substr(start));
    if (in_.empty()) {  // idle: hold no buffer
      std::string().swap(in_);
      if (args_.capacity() > kInlineArgs) decltype(args_)().swap(args_);
    }
    return next;
  }

  // Parses one command at the front of `b`, resuming where the last call stopped (cursor_,
  // args_: offsets from the command's first byte, which stays first in in_ until it is whole).
  Parse parse(std::string_view b) {
    if (argc_ < 0) {
      if (b[0] != '*') return parse_inline(b);
      const auto line = find_line(b, 1, kMaxLengthLine);
      if (!line) return more_or("too big multibulk length line", b.size() > kMaxLengthLine);
      long long n = 0;
      if (!Store::parse_integer(b.substr(1, *line - 1), n) || n > static_cast<long long>(kMaxArgs))
        return malformed("invalid multibulk length");
      argc_ = n < 0 ? 0 : n;  // *-1 and *0: an empty command, skipped
      cursor_ = *line + 2;
    }
    while (args_.size() < static_cast<std::size_t>(argc_)) {
      if (bulk_ < 0) {
        if (cursor_ >= b.size()) return Parse::more;
        if (b[cursor_] != '$')
          return malformed("expected '$', got '" + quoted(b.substr(cursor_, 1)) + "'");
        const auto line = find_line(b, cursor_ + 1, kMaxLengthLine);
        if (!line) return more_or("too big bulk length line", b.size() - cursor_ > kMaxLengthLine);
        long long n = 0;
        if (!Store::parse_integer(b.substr(cursor_ + 1, *line - cursor_ - 1), n) || n < 0 ||
            static_cast<unsigned long long>(n) > max_bulk_)
          return malformed("invalid bulk length");
        if (*line + 2 + static_cast<std::size_t>(n) > max_bulk_ + 64 * 1024)
          return malformed("command too big");
        bulk_ = n;
        cursor_ = *line + 2;
      }
      const auto len = static_cast<std::size_t>(bulk_);
      if (b.size() - cursor_ < len + 2) return Parse::more;
      if (b[cursor_ + len] != '\r' || b[cursor_ + len + 1] != '\n')
        return malformed("expected CRLF after a bulk string");
      args_.push_back({cursor_, len});
      cursor_ += len + 2;
      bulk_ = -1;
    }
    return Parse::command;
  }

  // "GET k\r\n": words separated by spaces; an empty line is an empty command.
  Parse parse_inline(std::string_view b) {
    const auto nl = b.find('\n', cursor_);  // bytes before cursor_ were searched already
    if (nl == std::string_view::npos) {
      cursor_ = b.size();
      return more_or("too big inline request", b.size() > kMaxInline);
    }
    if (nl > kMaxInline) return malformed("too big inline request");
    std::size_t end = nl > 0 && b[nl - 1] == '\r' ? nl - 1 : nl;
    std::size_t i = 0;
    while (i < end) {
      while (i < end && (b[i] == ' ' || b[i] == '\t')) ++i;
      std::size_t j = i;
      while (j < end && b[j] != ' ' && b[j] != '\t') ++j;
      if (j > i) {
        if (args_.size() == kMaxArgs) return malformed("too many arguments");
        args_.push_back({i, j - i});
      }
      i = j;
    }
    argc_ = static_cast<long long>(args_.size());
    cursor_ = nl + 1;
    return Parse::command;
  }

  // The offset of the "\r\n" ending the line that starts before `from`, if it is within
  // `limit` bytes.
  static std::optional<std::size_t> find_line(std::string_view b, std::size_t from,
                                              std::size_t limit) {
    const auto cr = b.substr(0, from + limit + 2).find("\r\n", from);
    if (cr == std::string_view::npos) return std::nullopt;
    return cr;
  }
  Parse more_or(const char* why, bool too_long) { return too_long ? malformed(why) : Parse::more; }
  Parse malformed(std::string why) {
    error_ = std::move(why);
    return Parse::malformed;
  }
  void forget_command() {
    args_.clear();
    argc_ = -1;
    bulk_ = -1;
    cursor_ = 0;
  }

  // Answers the command; true if the connection is to close after the answer (QUIT).
  bool execute(std::string_view b, std::string& out) {
    if (args_.empty()) return false;
    auto arg = [&](std::size_t i) { return b.substr(args_[i].first, args_[i].second); };
    const std::string_view name = arg(0);
    const std::size_t n = args_.size();
    counters().requests.fetch_add(1, std::memory_order_relaxed);
    auto arity = [&](bool ok) {
      if (!ok) out += "-ERR wrong number of arguments for '" + quoted(name) + "' command\r\n";
      return !ok;
    };
    if (iequals(name, "GET")) {
      if (!arity(n == 2)) store().get(arg(1), out);
    } else if (iequals(name, "SET")) {
      if (arity(n >= 3)) return false;
      if (n > 3)
        out += "-ERR syntax error\r\n";  // EX, PX, NX, ...: not in this subset
      else if (store().set(arg(1), arg(2)))
        out += "+OK\r\n";
      else
        out += "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
    } else if (iequals(name, "INCR")) {
      if (arity(n == 2)) return false;
      long long v = 0;
      switch (store().incr(arg(1), v)) {
        case Store::Incr::ok:
          out += ':' + std::to_string(v) + "\r\n";
          break;
        case Store::Incr::not_integer:
          out += "-ERR value is not an integer or out of range\r\n";
          break;
        case Store::Incr::overflow:
          out += "-ERR increment or decrement would overflow\r\n";
          break;
        case Store::Incr::full:
          out += "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
          break;
      }
    } else if (iequals(name, "PING")) {
      if (arity(n <= 2)) return false;
      if (n == 1)
        out += "+PONG\r\n";
      else
        Store::append_bulk(out, arg(1));
    } else if (iequals(name, "ECHO")) {
      if (!arity(n == 2)) Store::append_bulk(out, arg(1));
    } else if (iequals(name, "DEL")) {
      if (arity(n >= 2)) return false;
      long long removed = 0;
      for (std::size_t i = 1; i < n; ++i) removed += store().del(arg(i)) ? 1 : 0;
      out += ':' + std::to_string(removed) + "\r\n";
    } else if (iequals(name, "QUIT")) {
      out += "+OK\r\n";
      return true;
    } else if (iequals(name, "COMMAND") || iequals(name, "CONFIG")) {
      out += "*0\r\n";
    } else {
      out += "-ERR unknown command '" + quoted(name) + "'\r\n";
    }
    return false;
  }

  const std::size_t max_bulk_;
  std::string in_;  // the start of a command not yet whole (empty when idle)
  // The command being parsed: its element count (-1: not yet known), the length of the bulk
  // string being read (-1: its $ line is next), the offset parsed up to, and the arguments
  // (offset, length) found so far.
  long long argc_ = -1, bulk_ = -1;
  std::size_t cursor_ = 0;
  // GET, SET, INCR fit inline; a longer command's vector is given back when idle.
  boost::container::small_vector<std::pair<std::size_t, std::size_t>, kInlineArgs> args_;
  std::string error_;
};

class RespHandler final : public Handler {
 public:
  explicit RespHandler(const HandlerConfig& c) : max_bulk_(c.body_limit) {
    store();  // built before any fork or thread: every child starts from the same empty store
  }
  std::unique_ptr<Session> new_session() const override {
    return std::make_unique<RespSession>(max_bulk_);
  }

 private:
  std::size_t max_bulk_;
};

}  // namespace

SHOOTOUT_REGISTER_HANDLER("resp", [](const HandlerConfig& c) -> std::unique_ptr<Handler> {
  return std::make_unique<RespHandler>(c);
});

}  // namespace shootout
