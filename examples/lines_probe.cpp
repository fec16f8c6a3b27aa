// The client side of the worked example (lines_handler.cpp), for the load generator:
// `shootout load --handler-lib build/plugins/lines.so --handler lines tcp://HOST:PORT`.
//
// Request k is "ECHO <k, then padding to --size bytes>\n"; its answer is one line, and an answer
// that starts with "ERR" counts as an error answer. A probe says only where a response ends
// and whether it is an error: the load generator does the rest (probe.hpp).
#include <fmt/format.h>

#include "probe.hpp"

namespace shootout {

namespace {

constexpr std::size_t kMaxLine = 1024;  // the handler's limit

class LinesProbeSession final : public ProbeSession {
 public:
  explicit LinesProbeSession(std::size_t size) : size_(size) {}

  void request(std::uint64_t k, std::string& out) override {
    const std::size_t start = out.size();
    fmt::format_to(std::back_inserter(out), "ECHO {}", k);
    if (out.size() - start < size_) out.append(size_ - (out.size() - start), '.');
    out += '\n';
  }

  // The simple way: consume nothing until a whole line is there.
  Scan scan(std::string_view in) override {
    const auto nl = in.find('\n');
    if (nl == std::string_view::npos) return in.size() > kMaxLine ? Scan::bad() : Scan::more();
    return Scan::done(nl + 1, in.starts_with("ERR"));
  }

 private:
  std::size_t size_;
};

class LinesProbe final : public Probe {
 public:
  explicit LinesProbe(const ProbeConfig& c) : size_(c.size ? c.size : 16) {
    if (size_ > kMaxLine - 1) throw std::invalid_argument("lines: --size must be at most 1023");
  }
  std::unique_ptr<ProbeSession> new_session(std::size_t) const override {
    return std::make_unique<LinesProbeSession>(size_);
  }

 private:
  std::size_t size_;
};

}  // namespace

SHOOTOUT_REGISTER_PROBE("lines", [](const ProbeConfig& c) -> std::unique_ptr<Probe> {
  return std::make_unique<LinesProbe>(c);
});

}  // namespace shootout
