// The worked example of docs/GUIDE.md: a handler of one's own, in one file.
//
// "lines" is a tiny line protocol. Each request is one line ending in "\n":
//   ECHO <text>    answers "<text>\n"
//   SLEEP <ms>     waits <ms> milliseconds (blocking work, done by the model), answers "OK\n"
//   COUNT          answers the number of lines this connection has sent so far
//   QUIT           answers "BYE\n" and closes the connection
//   anything else  answers "ERR unknown command\n"
// A line longer than 1024 bytes is an error: "ERR line too long\n", then close.
//
// The same compiled file runs under every model: it never touches a socket, it only turns the
// bytes it is given into the bytes to send and says what it wants next.
#include <charconv>

#include "handler.hpp"
#include "stats.hpp"

namespace shootout {

namespace {

constexpr std::size_t kMaxLine = 1024;

class LinesSession final : public Session {
 public:
  Next on_input(std::string_view in, std::string& out) override {
    partial_.append(in);  // keep everything; the model never holds input for us
    return answer_lines(out);
  }

  // SLEEP is done: answer it, then go on with any lines that arrived behind it.
  Next on_work_done(WorkResult, std::string& out) override {
    out += "OK\n";
    return answer_lines(out);
  }

  const Work& pending_work() const override { return work_; }
  bool mid_request() const override { return !partial_.empty(); }

 private:
  Next answer_lines(std::string& out) {
    for (;;) {
      auto nl = partial_.find('\n');
      if (nl == std::string::npos) break;
      std::string line = partial_.substr(0, nl);
      partial_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      ++lines_;
      counters().requests.fetch_add(1, std::memory_order_relaxed);
      Next next = answer(line, out);
      if (next != Next::read) return next;
    }
    if (partial_.size() > kMaxLine) {
      out += "ERR line too long\n";
      return Next::close;
    }
    if (partial_.empty()) std::string().swap(partial_);  // idle: hold no buffer
    return Next::read;
  }

  Next answer(std::string_view line, std::string& out) {
    if (line.rfind("ECHO ", 0) == 0) {
      out.append(line.substr(5));
      out += '\n';
    } else if (line.rfind("SLEEP ", 0) == 0) {
      unsigned ms = 0;
      auto arg = line.substr(6);
      auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), ms);
      if (ec != std::errc{} || end != arg.data() + arg.size() || ms > 60'000) {
        out += "ERR SLEEP takes 0..60000\n";
        return Next::read;
      }
      work_ = Work{Work::Kind::sleep, std::chrono::milliseconds(ms), {}, 0};
      return Next::work;  // the model waits, then calls on_work_done
    } else if (line == "COUNT") {
      out += std::to_string(lines_) + "\n";
    } else if (line == "QUIT") {
      out += "BYE\n";
      return Next::close;
    } else {
      out += "ERR unknown command\n";
    }
    return Next::read;
  }

  std::string partial_;  // bytes of lines not yet complete
  std::uint64_t lines_ = 0;
  Work work_;
};

class LinesHandler final : public Handler {
 public:
  std::unique_ptr<Session> new_session() const override { return std::make_unique<LinesSession>(); }
};

}  // namespace

SHOOTOUT_REGISTER_HANDLER("lines", [](const HandlerConfig&) -> std::unique_ptr<Handler> {
  return std::make_unique<LinesHandler>();
});

}  // namespace shootout
