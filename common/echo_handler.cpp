// echo: raw TCP echo. Every byte that arrives goes back; the session holds no state at all.
#include "handler.hpp"
#include "stats.hpp"

namespace shootout {

namespace {
class EchoSession final : public Session {
 public:
  Next on_input(std::string_view in, std::string& out) override {
    out.append(in);
    counters().requests.fetch_add(1, std::memory_order_relaxed);
    return Next::read;
  }
};

class EchoHandler final : public Handler {
 public:
  std::unique_ptr<Session> new_session() const override { return std::make_unique<EchoSession>(); }
};
}  // namespace

SHOOTOUT_REGISTER_HANDLER("echo", [](const HandlerConfig&) -> std::unique_ptr<Handler> {
  return std::make_unique<EchoHandler>();
});

}  // namespace shootout
