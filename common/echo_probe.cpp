// The echo probe: `size` bytes out, the same bytes back, every byte compared.
//
// The stream is periodic: the byte at stream position x is pattern[x % kPeriod], so a batch of
// requests is one contiguous slice of the pattern (sent without a copy) and every byte received
// can be checked against the position it arrives at. A prime period catches shifted or
// repeated chunks.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "probe.hpp"

namespace shootout {

namespace {

constexpr std::size_t kPeriod = 251;
constexpr std::size_t kDefaultSize = 64;
constexpr std::size_t kMaxSize = std::size_t{64} << 20;

class EchoProbe;

class EchoProbeSession final : public ProbeSession {
 public:
  explicit EchoProbeSession(const EchoProbe& p) : p_(p) {}
  void request(std::uint64_t k, std::string& out) override;
  std::string_view batch(std::uint64_t k, int count, std::string& scratch) override;
  Scan scan(std::string_view in) override;
  void reset() override { received_ = got_ = 0; }

 private:
  const EchoProbe& p_;
  std::uint64_t received_ = 0;  // stream position of the next byte expected
  std::size_t got_ = 0;         // bytes of the current response
};

class EchoProbe final : public Probe {
 public:
  explicit EchoProbe(const ProbeConfig& c) : size_(c.size ? c.size : kDefaultSize) {
    if (size_ > kMaxSize) throw std::invalid_argument("echo: --echo SIZE must be at most 64 MiB");
    pipeline_ = static_cast<std::size_t>(std::max(c.pipeline, 1));
    const std::size_t len = kPeriod + size_ * pipeline_;
    pattern_.resize(len);
    for (std::size_t i = 0; i < len; ++i)
      pattern_[i] = static_cast<char>(((i % kPeriod) * 7 + 13) & 0xFF);
  }
  std::unique_ptr<ProbeSession> new_session(std::size_t) const override {
    return std::make_unique<EchoProbeSession>(*this);
  }
  // Bytes of requests k .. k+count-1 (count <= the pipeline): a view of the pattern.
  std::string_view slice(std::uint64_t k, std::size_t count) const {
    return {pattern_.data() + (k * size_) % kPeriod, size_ * count};
  }
  const char* at(std::uint64_t position) const { return pattern_.data() + position % kPeriod; }
  std::size_t size() const { return size_; }
  std::size_t pipeline() const { return pipeline_; }

 private:
  std::size_t size_, pipeline_ = 1;
  std::string pattern_;
};

void EchoProbeSession::request(std::uint64_t k, std::string& out) { out.append(p_.slice(k, 1)); }

std::string_view EchoProbeSession::batch(std::uint64_t k, int count, std::string& scratch) {
  if (count < 1 || static_cast<std::size_t>(count) > p_.pipeline())
    return ProbeSession::batch(k, count, scratch);
  return p_.slice(k, static_cast<std::size_t>(count));
}

Scan EchoProbeSession::scan(std::string_view in) {
  const std::size_t take = std::min(in.size(), p_.size() - got_);
  if (std::memcmp(in.data(), p_.at(received_), take) != 0) return Scan::bad();
  received_ += take;
  got_ += take;
  if (got_ < p_.size()) return Scan::more(take);
  got_ = 0;
  return Scan::done(take, false, p_.size());
}

}  // namespace

SHOOTOUT_REGISTER_PROBE("echo", [](const ProbeConfig& c) -> std::unique_ptr<Probe> {
  return std::make_unique<EchoProbe>(c);
});

}  // namespace shootout
